/**
 * The example upstream and the grpcurl stand-in: every Greeter method over h2c and TLS, what the server records,
 * the TLS facts the helpers rely on (no SNI for an IP target, insecure really skips verification), the CLI's
 * grpcurl-shaped output and exit codes, and the example server as a program.
 */
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { callGreeter } from '../../examples/greeter-client.ts';
import { InvocationError, parseJsonStream } from '../../examples/grpcurl-args.ts';
import {
  DELAY_HEADER,
  greeterClient,
  sayHello,
  sayHelloBidirectionalStream,
  sayHelloClientStream,
  sayHelloServerStream,
  startGreeterNode,
  STATUS_HEADER,
  type GreeterNode,
} from '../helpers/greeter.ts';
import { freePort } from '../helpers/ports.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface ProgramRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runProgram(script: string, args: readonly string[]): Promise<ProgramRun> {
  const child = spawn(process.execPath, [script, ...args], { cwd: REPO_ROOT });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}

const runClient = (args: readonly string[]): Promise<ProgramRun> => runProgram('examples/greeter-client.ts', args);

function withHeader(key: string, value: string): Metadata {
  const metadata = new Metadata();
  metadata.set(key, value);
  return metadata;
}

describe('greeter over plaintext HTTP/2', () => {
  let node: GreeterNode;
  let client: ReturnType<typeof greeterClient>;
  before(async () => {
    node = await startGreeterNode({ id: 'plain-1' });
    client = greeterClient(node.address);
  });
  after(async () => {
    client.close();
    await node.close();
  });

  test('SayHello replies Hello <name> and names the node that served it', async () => {
    const result = await sayHello(client, 'apisix');
    assert.equal(result.status.code, status.OK);
    assert.equal(result.message, 'Hello apisix');
    assert.equal(result.servedBy, 'plain-1');
  });

  test('SayHelloServerStream replies five times', async () => {
    const result = await sayHelloServerStream(client, 'apisix');
    assert.equal(result.status.code, status.OK);
    assert.deepEqual(result.messages, Array(5).fill('Hello apisix'));
  });

  test('SayHelloClientStream concatenates a greeting per request', async () => {
    const result = await sayHelloClientStream(client, ['a', 'b', 'c']);
    assert.equal(result.status.code, status.OK);
    assert.equal(result.message, 'Hello a!Hello b!Hello c!');
  });

  test('SayHelloBidirectionalStream greets each request and says when the client half-closed', async () => {
    const result = await sayHelloBidirectionalStream(client, ['a', 'b']);
    assert.equal(result.status.code, status.OK);
    assert.deepEqual(result.messages, ['Hello a', 'Hello b', 'stream ended']);
    assert.equal(result.servedBy, 'plain-1');
  });

  test('the server records calls per method and the last call with its authority and metadata', async () => {
    node.resetRecord();
    await sayHello(client, 'x', withHeader('x-trace', 'abc'));
    await sayHelloServerStream(client, 'y');
    assert.equal(node.counts.SayHello, 1);
    assert.equal(node.counts.SayHelloServerStream, 1);
    assert.equal(node.totalCalls, 2);
    assert.equal(node.lastCall?.method, 'SayHelloServerStream');
    assert.equal(node.lastCall.path, '/helloworld.Greeter/SayHelloServerStream');
    assert.equal(node.lastCall.authority, node.address);
    await sayHello(client, 'z', withHeader('x-trace', 'def'));
    assert.equal(node.lastCall.metadata['x-trace'], 'def');
  });

  test('x-greeter-status makes the node fail with that status and still name itself in the trailers', async () => {
    const result = await sayHello(client, 'x', withHeader(STATUS_HEADER, String(status.PERMISSION_DENIED)));
    assert.equal(result.status.code, status.PERMISSION_DENIED);
    assert.equal(result.message, undefined);
    assert.equal(result.headers, undefined, 'a failure before any reply is trailers-only');
    assert.equal(result.servedBy, 'plain-1');
  });

  test('x-greeter-delay-ms holds the reply back past a deadline', async () => {
    const result = await sayHello(client, 'x', withHeader(DELAY_HEADER, '30000'), { deadline: Date.now() + 100 });
    assert.equal(result.status.code, status.DEADLINE_EXCEEDED);
  });
});

describe('greeter over TLS', () => {
  let node: GreeterNode;
  before(async () => {
    node = await startGreeterNode({ tls: true, id: 'tls-1', sans: ['test.com', '127.0.0.1'] });
  });
  after(() => node.close());

  test('answers all four methods to a client that verifies it against its own certificate', async () => {
    const client = greeterClient(node.address, { tls: { rootCert: node.rootCert ?? '' } });
    try {
      assert.equal((await sayHello(client, 'a')).message, 'Hello a');
      assert.equal((await sayHelloServerStream(client, 'b')).messages.length, 5);
      assert.equal((await sayHelloClientStream(client, ['c', 'd'])).message, 'Hello c!Hello d!');
      assert.deepEqual((await sayHelloBidirectionalStream(client, ['e'])).messages, ['Hello e', 'stream ended']);
      assert.equal(node.handshakes, 1, 'the four calls share one connection');
    } finally {
      client.close();
    }
  });

  test('an insecure client to an IP address sends no SNI, like grpcurl', async () => {
    const client = greeterClient(node.address, { tls: { insecure: true } });
    try {
      const result = await sayHello(client, 'x');
      assert.equal(result.message, 'Hello x');
      assert.equal(node.lastServername, null);
    } finally {
      client.close();
    }
  });

  test('servername is sent as SNI and verified', async () => {
    const good = greeterClient(node.address, { tls: { rootCert: node.rootCert ?? '', servername: 'test.com' } });
    const bad = greeterClient(node.address, { tls: { rootCert: node.rootCert ?? '', servername: 'other.com' } });
    try {
      assert.equal((await sayHello(good, 'x')).status.code, status.OK);
      assert.equal(node.lastServername, 'test.com');
      assert.equal((await sayHello(bad, 'x')).status.code, status.UNAVAILABLE);
    } finally {
      good.close();
      bad.close();
    }
  });

  test('a verifying client without the root refuses the self-signed node', async () => {
    const client = greeterClient(node.address, { tls: {} });
    try {
      const result = await sayHello(client, 'x');
      assert.equal(result.status.code, status.UNAVAILABLE);
      assert.match(result.status.details, /self-signed certificate/);
    } finally {
      client.close();
    }
  });

  test('grpc-js createSsl sends an IP target as SNI (why the helpers use client-tls.ts)', async () => {
    const builtin = new Client(node.address, credentials.createSsl(Buffer.from(node.rootCert ?? '')));
    // Node says so with a DEP0123 warning; the assertion below is the point, the warning is noise.
    const noDeprecation = process.noDeprecation ?? false;
    process.noDeprecation = true;
    try {
      assert.equal((await sayHello(builtin, 'x')).status.code, status.OK);
      assert.equal(node.lastServername, '127.0.0.1');
    } finally {
      process.noDeprecation = noDeprecation;
      builtin.close();
    }
  });

  test('grpc-js createSsl with a no-op checkServerIdentity still verifies the chain (why client-tls.ts exists)', async () => {
    const noop = credentials.createSsl(null, null, null, { checkServerIdentity: () => undefined });
    const builtin = new Client(node.address, noop);
    try {
      const result = await sayHello(builtin, 'x');
      assert.equal(result.status.code, status.UNAVAILABLE);
      assert.match(result.status.details, /self-signed certificate/);
    } finally {
      builtin.close();
    }
  });
});

describe('greeter-client, the grpcurl stand-in', () => {
  let plain: GreeterNode;
  let secure: GreeterNode;
  before(async () => {
    [plain, secure] = await Promise.all([startGreeterNode({ id: 'cli-plain' }), startGreeterNode({ tls: true })]);
  });
  after(async () => {
    await Promise.all([plain.close(), secure.close()]);
  });

  test('-plaintext prints the reply exactly as grpcurl does', async () => {
    const run = await runClient(['-plaintext', '-d', '{"name":"apisix"}', plain.address, 'helloworld.Greeter.SayHello']);
    assert.equal(run.stderr, '');
    assert.equal(run.stdout, '{\n  "message": "Hello apisix"\n}\n');
    assert.equal(run.code, 0);
  });

  test('-insecure reaches a TLS node without verification and without SNI', async () => {
    const run = await runClient([
      '-insecure', '-import-path', 'examples/proto', '-proto', 'helloworld.proto',
      '-d', '{"name":"apisix"}', secure.address, 'helloworld.Greeter.SayHello',
    ]);
    assert.equal(run.stdout, '{\n  "message": "Hello apisix"\n}\n');
    assert.equal(run.code, 0);
    assert.equal(secure.lastServername, null);
  });

  test('a server stream prints one object per reply', async () => {
    const run = await runClient(['-plaintext', '-d', '{"name":"s"}', plain.address, 'helloworld.Greeter/SayHelloServerStream']);
    assert.equal(run.stdout, '{\n  "message": "Hello s"\n}\n'.repeat(5));
    assert.equal(run.code, 0);
  });

  test('a failed call prints ERROR with the code name and exits with 64 + status', async () => {
    const run = await runClient(['-plaintext', '-H', `${STATUS_HEADER}: 12`, plain.address, 'helloworld.Greeter.SayHello']);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, 'ERROR:\n  Code: Unimplemented\n  Message: greeter cli-plain was asked to fail with status 12\n');
    assert.equal(run.code, 64 + status.UNIMPLEMENTED);
  });

  test('a port nobody listens on is a failed dial, exit 1', async () => {
    const run = await runClient(['-plaintext', `127.0.0.1:${await freePort()}`, 'helloworld.Greeter.SayHello']);
    assert.match(run.stderr, /^Failed to dial target host "127\.0\.0\.1:\d+": connect ECONNREFUSED/);
    assert.equal(run.code, 1);
  });

  test('-d splits objects written one after another, braces inside strings included', () => {
    assert.deepEqual(parseJsonStream('{"name":"a}"}{"name":"{b"}\n {"name":"c"}'), [
      { name: 'a}' },
      { name: '{b' },
      { name: 'c' },
    ]);
    assert.throws(() => parseJsonStream('{"name":'), InvocationError);
  });

  test('callGreeter sends -H metadata and -authority as given', async () => {
    const result = await callGreeter({
      address: plain.address,
      method: 'helloworld.Greeter.SayHelloClientStream',
      data: '{"name":"a"} {"name":"b"}',
      plaintext: true,
      authority: 'greeter.test',
      headers: ['X-Tenant: blue'],
    });
    assert.deepEqual(result.responses, [{ message: 'Hello a!Hello b!' }]);
    assert.equal(result.codeName, 'OK');
    assert.equal(result.headers['x-served-by'], 'cli-plain');
    assert.equal(plain.lastCall?.authority, 'greeter.test');
    assert.equal(plain.lastCall.metadata['x-tenant'], 'blue');
  });

  test('callGreeter with -servername sends it as SNI and as :authority, like grpcurl', async () => {
    const result = await callGreeter({
      address: secure.address,
      method: 'helloworld.Greeter.SayHello',
      data: '{"name":"sni"}',
      rootCert: secure.rootCert ?? '',
      servername: 'localhost',
    });
    assert.equal(result.code, status.OK);
    assert.equal(secure.lastServername, 'localhost');
    assert.equal(secure.lastCall?.authority, 'localhost');
  });
});

describe('greeter-server as a program', () => {
  test('serves grpc on the given address and stops cleanly on SIGTERM', async (t) => {
    const child = spawn(
      process.execPath,
      ['examples/greeter-server.ts', '--grpc-address', '127.0.0.1:0', '--grpcs-address', '', '--id', 'prog'],
      { cwd: REPO_ROOT },
    );
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    child.stdout.setEncoding('utf8');
    const address = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        const match = /grpc listening on (\S+)/.exec(stdout);
        if (match?.[1] !== undefined) resolve(match[1]);
      });
      child.once('exit', () => reject(new Error(`greeter-server exited early: ${stdout}`)));
    });
    const client = greeterClient(address);
    try {
      const result = await sayHello(client, 'program');
      assert.equal(result.message, 'Hello program');
      assert.equal(result.servedBy, 'prog');
    } finally {
      client.close();
    }
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    assert.match(stdout, /stopped/);
  });
});
