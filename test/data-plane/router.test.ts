import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RouteConf } from '../../shared/schema/route.ts';
import { Router, hostOf } from '../../data-plane/routing/router.ts';

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
});
