import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RouteConf } from '../../shared/schema/route.ts';
import { Router, hostOf, type RouteEntry } from '../../data-plane/routing/router.ts';

const upstream = { nodes: { '127.0.0.1:1': 1 } };

function router(routes: Record<string, Omit<RouteConf, 'upstream'>>): Router<string> {
  return new Router(Object.entries(routes).map(([id, route]) => ({ id, route: { ...route, upstream }, target: id })));
}

function match(r: Router<string>, path: string, authority?: string, method = 'POST'): string | undefined {
  return r.match({ path, method, authority })?.target;
}

describe('router', () => {
  test('an exact uri matches only that path', () => {
    const r = router({ a: { uri: '/helloworld.Greeter/SayHello' } });
    assert.equal(match(r, '/helloworld.Greeter/SayHello'), 'a');
    assert.equal(match(r, '/helloworld.Greeter/SayHelloAgain'), undefined);
  });

  test('a /* uri matches by prefix and an exact uri wins over it', () => {
    const r = router({ prefix: { uri: '/helloworld.Greeter/*' }, exact: { uri: '/helloworld.Greeter/SayHello' } });
    assert.equal(match(r, '/helloworld.Greeter/SayHello'), 'exact');
    assert.equal(match(r, '/helloworld.Greeter/Other'), 'prefix');
    assert.equal(match(r, '/other.Service/Method'), undefined);
  });

  test('the longer prefix wins over the shorter one', () => {
    const r = router({ all: { uri: '/*' }, greeter: { uri: '/helloworld.Greeter/*' } });
    assert.equal(match(r, '/helloworld.Greeter/X'), 'greeter');
    assert.equal(match(r, '/x.Y/Z'), 'all');
  });

  test('higher priority wins on the same uri, whatever the ids', () => {
    const r = router({ a: { uri: '/s/m', priority: 1 }, b: { uri: '/s/m', priority: 5 } });
    assert.equal(match(r, '/s/m'), 'b');
  });

  test('uris lists several paths for one route', () => {
    const r = router({ a: { uris: ['/s/a', '/s/b'] } });
    assert.equal(match(r, '/s/a'), 'a');
    assert.equal(match(r, '/s/b'), 'a');
  });

  test('methods restrict the match and fall through to the next candidate', () => {
    const r = router({ get: { uri: '/s/m', methods: ['GET'], priority: 9 }, post: { uri: '/s/m', methods: ['POST'] } });
    assert.equal(match(r, '/s/m', undefined, 'POST'), 'post');
    assert.equal(match(r, '/s/m', undefined, 'GET'), 'get');
  });

  test('hosts match case-insensitively, ignore the port, and a wildcard covers exactly one label', () => {
    const r = router({ exact: { uri: '/s/m', host: 'API.example.com' }, wild: { uri: '/s/m', hosts: ['*.test.com'] } });
    assert.equal(match(r, '/s/m', 'api.EXAMPLE.com:9443'), 'exact');
    assert.equal(match(r, '/s/m', 'a.test.com'), 'wild');
    assert.equal(match(r, '/s/m', 'a.b.test.com'), undefined);
    assert.equal(match(r, '/s/m', 'test.com'), undefined);
    assert.equal(match(r, '/s/m', undefined), undefined);
  });

  test('a route with status 0 is not served', () => {
    const r = router({ off: { uri: '/s/m', status: 0 } });
    assert.equal(match(r, '/s/m'), undefined);
    assert.equal(r.size, 0);
  });

  test('hostOf strips ports, brackets stay for IPv6, trailing dots go', () => {
    assert.equal(hostOf('[::1]:9081'), '[::1]');
    assert.equal(hostOf('Example.COM.:1'), 'example.com');
    assert.equal(hostOf(undefined), undefined);
  });

  test('a uri with a prefix of its own length is matched through the prefix table', () => {
    const r = router({ all: { uri: '/*' }, exactlyPrefix: { uri: '/s.S/*' } });
    assert.equal(match(r, '/s.S/'), 'exactlyPrefix');
    assert.equal(match(r, '/s.S'), 'all');
    assert.equal(match(r, '/'), 'all');
  });

  test('a longer prefix whose methods do not match falls through to a shorter prefix', () => {
    const r = router({ long: { uri: '/s.S/*', methods: ['GET'] }, short: { uri: '/s*' } });
    assert.equal(match(r, '/s.S/M', undefined, 'POST'), 'short');
    assert.equal(match(r, '/s.S/M', undefined, 'GET'), 'long');
  });
});

function entry(id: string, route: Omit<RouteConf, 'upstream'>): RouteEntry<string> {
  return { id, route: { ...route, upstream }, target: id };
}

describe('router derived with with()', () => {
  test('adds and removes entries and leaves the router it came from unchanged', () => {
    const a = entry('a', { uri: '/s/a' });
    const b = entry('b', { uri: '/s/*' });
    const base = new Router([a, b]);
    const c = entry('c', { uri: '/s/c' });
    const next = base.with([b], [c]);
    assert.equal(match(next, '/s/c'), 'c');
    assert.equal(match(next, '/s/x'), undefined);
    assert.equal(match(next, '/s/a'), 'a');
    assert.equal(next.size, 2);
    assert.equal(match(base, '/s/c'), 'b');
    assert.equal(match(base, '/s/x'), 'b');
    assert.equal(base.size, 2);
  });

  test('a replaced entry takes its new place in the priority order of its path', () => {
    const low = entry('low', { uri: '/s/m', priority: 1 });
    const high = entry('high', { uri: '/s/m', priority: 5 });
    const base = new Router([low, high]);
    assert.equal(match(base, '/s/m'), 'high');
    const next = base.with([low], [entry('low', { uri: '/s/m', priority: 9 })]);
    assert.equal(match(next, '/s/m'), 'low');
  });

  test('entries with status 0 are neither counted nor matched', () => {
    const on = entry('a', { uri: '/s/a' });
    const base = new Router([on]);
    const off = entry('a', { uri: '/s/a', status: 0 });
    const next = base.with([on], [off]);
    assert.equal(match(next, '/s/a'), undefined);
    assert.equal(next.size, 0);
    assert.equal(next.with([off], [on]).size, 1);
  });

  test('a chain of with() matches every request as a router built from scratch does', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const live = new Map<string, RouteEntry<string>>();
    let derived = new Router<string>([]);
    const paths = ['/a.S/M', '/a.S/N', '/b.S/M', '/b.S/', '/c/M', '/', '/a.S'];
    for (let step = 0; step < 400; step++) {
      const removed: RouteEntry<string>[] = [];
      const added: RouteEntry<string>[] = [];
      for (let k = random(3); k >= 0; k--) {
        const id = `r${random(10)}`;
        const old = live.get(id);
        if (old !== undefined && !removed.includes(old) && !added.includes(old)) {
          removed.push(old);
          live.delete(id);
        }
        if (random(4) > 0 && !live.has(id)) {
          const uris = [['/a.S/M'], ['/a.S/*'], ['/b.S/*', '/b.S/M'], ['/*'], ['/a.S/*', '/a.S/*'], ['/c/M']][random(6)] ?? [];
          const next = entry(id, {
            uris,
            priority: random(3),
            ...(random(3) === 0 ? { methods: ['GET'] } : {}),
            ...(random(3) === 0 ? { hosts: ['*.example.com'] } : {}),
            ...(random(5) === 0 ? { status: 0 as const } : {}),
          });
          added.push(next);
          live.set(id, next);
        }
      }
      derived = derived.with(removed, added);
      const scratch = new Router([...live.values()]);
      assert.equal(derived.size, scratch.size, `step ${step}: size`);
      for (const path of paths) {
        for (const method of ['POST', 'GET']) {
          for (const authority of [undefined, 'a.example.com']) {
            assert.equal(match(derived, path, authority, method), match(scratch, path, authority, method), `step ${step}: ${method} ${path} @ ${String(authority)}`);
          }
        }
      }
    }
  });
});
