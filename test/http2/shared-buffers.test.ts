/**
 * The engine's buffers that live across connections (socket-reader.ts, the output slabs of connection.ts):
 * - every kind of socket the engine reads (accepted and dialled, plain and TLS) reads into the one shared buffer on
 *   this Node, and bytes cross intact whatever the sizes of the writes;
 * - a slab whose slices a socket still has queued is not reused: a client that stops reading its socket (so the
 *   gateway's writes queue) gets every byte of a 32 MiB server stream intact, while fast calls beside it reuse
 *   slabs with other bytes the whole time and get their own bytes back.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcCode, type Client } from '@grpc/grpc-js';
import { slabStats } from '../../data-plane/http2/connection.ts';
import { CLIENT_PREFACE, FrameFlag, FrameReader, FrameType, encodeFrame, encodeSettings } from '../../data-plane/http2/frame.ts';
import { HpackDecoder } from '../../data-plane/http2/hpack.ts';
import { HpackEncoder } from '../../data-plane/http2/hpack-encoder.ts';
import { SettingId } from '../../data-plane/http2/settings.ts';
import { readSocket, sharedReadsAvailable } from '../../data-plane/http2/socket-reader.ts';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { makeCert } from '../helpers/certs.ts';
import { greeterClient } from '../helpers/greeter.ts';
import { BULK_PATH, GRPC_PREFIX_BYTES, MESSAGE_HEADER, TOTAL_HEADER, patternFor, startBulkUpstream, type BulkUpstream } from '../flow/bulk-upstream.ts';
import { UNLIMITED_MESSAGES, callReverse, putRoute, sha256, startBytesServer, within, type BytesServer } from '../flow/flow-kit.ts';

const MiB = 1024 * 1024;

/** Sends `bytes` in writes of random sizes; resolves with the sha256 of what the other side read. */
async function cross(writer: net.Socket, bytes: Buffer, received: () => Buffer[]): Promise<void> {
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(bytes.length - at, 1 + Math.floor(Math.random() * 200_000));
    if (!writer.write(bytes.subarray(at, at + n))) await new Promise((resolve) => writer.once('drain', resolve));
    at += n;
  }
  const deadline = Date.now() + 20_000;
  while (received().reduce((sum, chunk) => sum + chunk.length, 0) < bytes.length && Date.now() < deadline) await sleep(5);
  assert.equal(sha256(Buffer.concat(received())), sha256(bytes), 'the bytes read differ from the bytes written');
}

describe('buffers the engine shares between connections', { timeout: 120_000 }, () => {
  test('accepted and dialled sockets, plain and TLS, read into the shared buffer, and 8 MiB cross intact both ways', async () => {
    assert.equal(sharedReadsAvailable(), true, 'this Node lost the onread slots: every read allocates again');
    const { cert, key } = await makeCert({ sans: ['localhost'] });
    for (const kind of ['tcp', 'tls'] as const) {
      const serverGot: Buffer[] = [];
      const clientGot: Buffer[] = [];
      let serverShared: boolean | undefined;
      let serverSocket: net.Socket | undefined;
      const onSocket = (socket: net.Socket): void => {
        serverSocket = socket;
        // A copy: the shared buffer is valid only during the callback.
        serverShared = readSocket(socket, (buffer, length) => serverGot.push(Buffer.from(buffer.subarray(0, length))));
      };
      const server = kind === 'tcp' ? net.createServer(onSocket) : tls.createServer({ cert, key }, onSocket);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as net.AddressInfo).port;
      const client =
        kind === 'tcp'
          ? net.connect({ port, host: '127.0.0.1' })
          : tls.connect({ port, host: '127.0.0.1', ca: cert, servername: 'localhost' });
      const clientShared = readSocket(client, (buffer, length) => clientGot.push(Buffer.from(buffer.subarray(0, length))));
      await new Promise((resolve) => client.once(kind === 'tcp' ? 'connect' : 'secureConnect', resolve));
      try {
        await cross(client, randomBytes(8 * MiB), () => serverGot);
        assert.equal(clientShared, true, `${kind}: the dialled socket reads with its own buffers`);
        assert.equal(serverShared, true, `${kind}: the accepted socket reads with its own buffers`);
        assert.ok(serverSocket !== undefined);
        await cross(serverSocket, randomBytes(8 * MiB), () => clientGot);
      } finally {
        client.destroy();
        serverSocket?.destroy();
        await new Promise((resolve) => server.close(resolve));
      }
    }
  });

  describe('through a gateway', () => {
    let gw: GatewayFixture;
    let bulk: BulkUpstream;
    let bytes: BytesServer;
    let client: Client | undefined;

    before(async () => {
      gw = await startGateway();
      bulk = await startBulkUpstream();
      bytes = await startBytesServer();
      await putRoute(gw, 'bulk', { uri: '/flow.Bulk/*', upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [bulk.address]: 1 } } });
      await putRoute(gw, 'bytes', { uri: '/flow.Bytes/*', upstream: { scheme: 'grpc', type: 'roundrobin', nodes: { [bytes.address]: 1 } } });
    });
    after(async () => {
      client?.close();
      await bulk.close();
      await bytes.close();
      await gw.close();
    });

    test('a client that stops reading its socket gets 32 MiB intact while fast calls beside it reuse the slabs', async (t) => {
      const total = 32 * MiB;
      const messageBytes = 64 * 1024;
      const before = { ...slabStats };
      const slow = nonReadingDownload(gw.h2cAddress, total, messageBytes);

      // Fast calls with random bytes of their own the whole time the slow one runs.
      client = greeterClient(gw.h2cAddress, { channelOptions: UNLIMITED_MESSAGES });
      let fastCalls = 0;
      const fast = async (): Promise<void> => {
        while (!slow.done) {
          const request = randomBytes(200_000 + Math.floor(Math.random() * 100_000));
          const outcome = await within(callReverse(client as Client, request), 20_000, 'a fast call');
          assert.equal(outcome.status.code, GrpcCode.OK, `fast call: ${outcome.status.details}`);
          assert.ok(outcome.reply !== undefined);
          assert.equal(sha256(outcome.reply), sha256(request.reverse()), 'a fast call got other bytes back');
          fastCalls++;
        }
      };
      await Promise.all([fast(), fast(), slow.result]);
      const result = await slow.result;
      const held = slabStats.heldWrites - before.heldWrites;
      t.diagnostic(`fast calls ${fastCalls}; slab writes held ${held}, released ${slabStats.releasedWrites - before.releasedWrites}; slabs allocated ${slabStats.allocated - before.allocated}`);
      assert.deepEqual(result.problems, [], 'the slow client got corrupted bytes');
      assert.equal(result.messages, total / messageBytes, 'not every message arrived');
      assert.equal(result.status, '0');
      assert.ok(fastCalls >= 4, `only ${fastCalls} fast calls ran beside the slow one`);
      // The case under test happened: the gateway's writes to the slow client were queued by its socket.
      assert.ok(held > 0, 'no write was ever queued: the slow client did not test held slabs');
    });
  });
});

interface DownloadResult {
  messages: number;
  problems: string[];
  status: string | undefined;
}

/**
 * A raw HTTP/2 client with windows as large as they go, so that only its socket can stop the gateway: it reads for
 * 30 ms, then stops reading its socket for 150 ms, over and over, and checks every message of the bulk stream.
 */
function nonReadingDownload(address: string, total: number, messageBytes: number): { result: Promise<DownloadResult>; done: boolean } {
  const [host, port] = address.split(':') as [string, string];
  const socket = net.connect({ host, port: Number(port) });
  const pattern = patternFor(messageBytes);
  const state = { done: false, result: undefined as unknown as Promise<DownloadResult> };
  const decoder = new HpackDecoder({ maxTableSize: 4096, maxHeaderListSize: 65_536 });
  const problems: string[] = [];
  let messages = 0;
  let status: string | undefined;
  let pending = Buffer.alloc(0);
  state.result = new Promise<DownloadResult>((resolve) => {
    const finish = (): void => {
      if (state.done) return;
      state.done = true;
      clearInterval(toggler);
      socket.destroy();
      resolve({ messages, problems, status });
    };
    const reader = new FrameReader((type, flags, id, payload) => {
      if (type === FrameType.SETTINGS && (flags & FrameFlag.ACK) === 0) socket.write(encodeSettings([], true));
      else if (type === FrameType.PING && (flags & FrameFlag.ACK) === 0) socket.write(encodeFrame(FrameType.PING, FrameFlag.ACK, 0, Buffer.from(payload)));
      else if (type === FrameType.DATA && id === 1) {
        pending = Buffer.concat([pending, payload]);
        while (pending.length >= GRPC_PREFIX_BYTES && pending.length >= GRPC_PREFIX_BYTES + pending.readUInt32BE(1)) {
          const length = pending.readUInt32BE(1);
          const message = pending.subarray(GRPC_PREFIX_BYTES, GRPC_PREFIX_BYTES + length);
          if (length !== messageBytes || message.readUInt32BE(0) !== messages || !message.subarray(4).equals(pattern.subarray(4))) {
            if (problems.length < 5) problems.push(`message ${messages}: length ${length}, sequence ${length >= 4 ? message.readUInt32BE(0) : '-'}`);
          }
          messages++;
          pending = pending.subarray(GRPC_PREFIX_BYTES + length);
        }
      } else if (type === FrameType.HEADERS && id === 1) {
        const fields = decoder.decode(Buffer.from(payload));
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'grpc-status') status = fields[i + 1];
        if ((flags & FrameFlag.END_STREAM) !== 0) finish();
      } else if (type === FrameType.RST_STREAM || type === FrameType.GOAWAY) {
        problems.push(`frame type ${type} from the gateway`);
        finish();
      }
    }, 1 << 24);
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', (err) => {
      problems.push(`socket: ${err.message}`);
      finish();
    });
    socket.on('close', finish);
    const limit = setTimeout(() => {
      problems.push(`not done after 60 s (${messages} messages)`);
      finish();
    }, 60_000);
    limit.unref();
    const hpack = new HpackEncoder();
    const request = hpack.encode([
      ':method', 'POST', ':scheme', 'http', ':path', BULK_PATH, ':authority', address,
      'content-type', 'application/grpc', 'te', 'trailers', TOTAL_HEADER, String(total), MESSAGE_HEADER, String(messageBytes),
    ]);
    socket.write(
      Buffer.concat([
        CLIENT_PREFACE,
        encodeSettings([[SettingId.INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]),
        encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(2 ** 31 - 1 - 65_535)),
        encodeFrame(FrameType.HEADERS, FrameFlag.END_HEADERS, 1, request),
        encodeFrame(FrameType.DATA, FrameFlag.END_STREAM, 1, Buffer.alloc(GRPC_PREFIX_BYTES)),
      ]),
    );
    let reading = true;
    let phaseStarted = Date.now();
    const toggler = setInterval(() => {
      const elapsed = Date.now() - phaseStarted;
      if (reading && elapsed >= 30) {
        socket.pause();
        reading = false;
        phaseStarted = Date.now();
      } else if (!reading && elapsed >= 150) {
        socket.resume();
        reading = true;
        phaseStarted = Date.now();
      }
    }, 10);
  });
  return state;
}

function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}
