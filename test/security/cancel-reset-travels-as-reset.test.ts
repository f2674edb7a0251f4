/**
 * Issue #11, case 6: a client that resets a call must make the upstream see a reset, never a completed request.
 * The upstream here is a raw HTTP/2 endpoint that records every frame (h2-recorder.ts), and the client a raw one
 * that sends HEADERS, DATA and RST_STREAM(CANCEL) exactly when the test says, in each phase of a call:
 * before the upstream stream exists (the dial is held open), waiting for response headers, streaming both ways,
 * and after the client's own half-close. Legitimate grpc-js calls through the same gateway run beside every case.
 */
import assert from 'node:assert/strict';
import { constants } from 'node:http2';
import { after, afterEach, before, test } from 'node:test';
import type { Client } from '@grpc/grpc-js';
import { startGateway, type GatewayFixture } from '../e2e/gateway-fixture.ts';
import { grpcFrame, helloMessage } from '../helpers/fake-upstream.ts';
import { greeterClient, sayHello, startGreeterNode, type GreeterNode } from '../helpers/greeter.ts';
import {
  describeFrames,
  endStreamFrames,
  FrameFlag,
  FrameType,
  openRawClient,
  startRecordingUpstream,
  type HeaderList,
  type RawClient,
  type RecordingUpstream,
} from './h2-recorder.ts';

const TEST_TIMEOUT_MS = 30_000;
const CANCEL = constants.NGHTTP2_CANCEL;
const RECORDED_ROUTE = 'recorded';
const PATH = '/rec.Recorder/Upload';
const REQUEST: HeaderList = [
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', PATH],
  [':authority', 'gateway'],
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
];
const MESSAGE = grpcFrame(helloMessage('part'));

let gw: GatewayFixture;
let greeter: GreeterNode;
let grpc: Client;
let recorder: RecordingUpstream | undefined;
let client: RawClient | undefined;

before(async () => {
  gw = await startGateway();
  greeter = await startGreeterNode({ id: 'beside' });
  const res = await gw.admin('PUT', '/routes/greeter', { uri: '/helloworld.Greeter/*', upstream: { type: 'roundrobin', nodes: { [greeter.address]: 1 } } });
  assert.ok(res.status === 200 || res.status === 201, `greeter route: ${res.status}`);
  await gw.waitForSnapshot((s) => s.targets.has('greeter'), 'the greeter route');
  grpc = greeterClient(gw.h2cAddress);
});

afterEach(async () => {
  client?.close();
  client = undefined;
  await recorder?.close();
  recorder = undefined;
});

after(async () => {
  grpc.close();
  await greeter.close();
  await gw.close();
});

/** A fresh recording upstream behind `/rec.Recorder/*`, applied by the data plane, and a raw client to the gateway. */
async function setUp(options: { holdSettings?: boolean } = {}): Promise<{ up: RecordingUpstream; down: RawClient }> {
  const up = await startRecordingUpstream(options);
  recorder = up;
  const res = await gw.admin('PUT', `/routes/${RECORDED_ROUTE}`, { uri: '/rec.Recorder/*', upstream: { type: 'roundrobin', nodes: { [up.address]: 1 } } });
  assert.ok(res.status === 200 || res.status === 201, `recorded route: ${res.status}`);
  const key = `grpc://${up.address}`;
  await gw.waitForSnapshot(() => gw.routeNodes(RECORDED_ROUTE)?.[0] === key, `route to ${key}`);
  const down = await openRawClient(gw.h2cAddress);
  client = down;
  return { up, down };
}

/** A legitimate unary call through the same gateway, asserted to succeed. */
async function legitimateCall(name: string): Promise<void> {
  const outcome = await sayHello(grpc, name);
  assert.equal(outcome.status.code, 0, `a legitimate call beside the reset failed: ${outcome.status.details}`);
  assert.equal(outcome.message, `Hello ${name}`);
}

const upstreamRst = (up: RecordingUpstream, streamId: number) =>
  up.frames.find((f) => f.streamId === streamId && f.type === FrameType.RST_STREAM);

/** The upstream stream got RST_STREAM(CANCEL) and, before it, no END_STREAM beyond `allowedEnds` (the client's own). */
async function assertResetOnly(up: RecordingUpstream, streamId: number, allowedEnds = 0): Promise<void> {
  await up.waitFor(() => upstreamRst(up, streamId) !== undefined, `the upstream stream ${streamId} was never reset`);
  const frames = up.frames.filter((f) => f.streamId === streamId);
  assert.equal(upstreamRst(up, streamId)?.rstCode, CANCEL, `reset with another code: ${describeFrames(frames)}`);
  assert.equal(endStreamFrames(up.frames, streamId).length, allowedEnds, `the upstream saw END_STREAM for a cancelled call: ${describeFrames(frames)}`);
}

/** Client stream 1 sends HEADERS and one message, not half-closed; resolves with its upstream stream id once forwarded. */
async function startUpload(up: RecordingUpstream, down: RawClient): Promise<number> {
  down.headers(1, REQUEST);
  down.data(1, MESSAGE);
  await up.waitFor(() => up.frames.some((f) => f.type === FrameType.DATA && f.length > 0), 'the request data never reached the upstream');
  const [streamId = 0] = up.streams();
  return streamId;
}

test('a call reset while its upstream dial is still open never reaches the upstream', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { up, down } = await setUp({ holdSettings: true });
  const beside = legitimateCall('before the dial');
  down.headers(1, REQUEST);
  down.data(1, MESSAGE);
  // The gateway dialled (its SETTINGS arrived) but has no session to use until ours come.
  await up.waitFor(() => up.frames.some((f) => f.type === FrameType.SETTINGS && f.streamId === 0), 'the gateway did not dial');
  down.rst(1, CANCEL);
  await down.ping(); // the gateway has seen the reset
  // A second call waits on the same dial: once it reaches the upstream, the first one would have too.
  down.headers(3, REQUEST);
  down.data(3, MESSAGE, true);
  up.releaseSettings();
  await up.waitFor(() => up.streams().some((id) => endStreamFrames(up.frames, id).length > 0), 'the second call never arrived');
  assert.equal(up.streams().length, 1, `the reset call was forwarded: ${describeFrames(up.frames)}`);
  await beside;
});

test('a call reset while waiting for response headers reaches the upstream as RST_STREAM(CANCEL) only', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { up, down } = await setUp();
  const beside = legitimateCall('waiting');
  const streamId = await startUpload(up, down);
  down.rst(1, CANCEL);
  await assertResetOnly(up, streamId);
  await beside;
});

test('a call reset while streaming both ways reaches the upstream as RST_STREAM(CANCEL) only', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { up, down } = await setUp();
  const beside = legitimateCall('streaming');
  const streamId = await startUpload(up, down);
  up.respondHeaders(streamId);
  up.sendData(streamId, MESSAGE);
  await down.waitFor(() => down.frames.some((f) => f.streamId === 1 && f.type === FrameType.DATA && f.length > 0), 'the response never reached the client');
  down.data(1, MESSAGE);
  await up.waitFor(() => up.frames.filter((f) => f.streamId === streamId && f.type === FrameType.DATA && f.length > 0).length >= 2, 'the second request message never arrived');
  down.rst(1, CANCEL);
  await assertResetOnly(up, streamId);
  await beside;
});

test('a call reset after its half-close reaches the upstream as RST_STREAM(CANCEL) after the one END_STREAM it sent', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { up, down } = await setUp();
  const beside = legitimateCall('half-closed');
  down.headers(1, REQUEST);
  down.data(1, MESSAGE, true);
  await up.waitFor(() => up.streams().length > 0 && endStreamFrames(up.frames, up.streams()[0] ?? 0).length > 0, 'the half-close never reached the upstream');
  const [streamId = 0] = up.streams();
  up.respondHeaders(streamId);
  await down.waitFor(() => down.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS), 'the response headers never reached the client');
  down.rst(1, CANCEL);
  await assertResetOnly(up, streamId, 1);
  await beside;
});

test('a call reset in the same write as its headers and data never looks complete upstream', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { up, down } = await setUp();
  const beside = legitimateCall('all at once');
  // Warm the pool so the first call finds a ready session and is forwarded at once.
  down.headers(1, REQUEST);
  down.data(1, MESSAGE, true);
  await up.waitFor(() => up.streams().length === 1, 'the warm-up call never arrived');
  for (const id of [3, 5, 7, 9, 11]) {
    down.headers(id, REQUEST);
    down.data(id, MESSAGE);
    down.rst(id, CANCEL);
  }
  // A last call on the same connection: once it is upstream, every earlier one was forwarded or dropped.
  down.headers(13, REQUEST);
  down.data(13, MESSAGE, true);
  await up.waitFor(() => up.streams().filter((id) => endStreamFrames(up.frames, id).length > 0).length === 2, 'the last call never arrived');
  const reset = up.streams().slice(1, -1);
  for (const streamId of reset) await assertResetOnly(up, streamId);
  assert.ok(up.frames.every((f) => (f.flags & FrameFlag.END_STREAM) === 0 || f.type !== FrameType.DATA || !reset.includes(f.streamId)));
  await beside;
});
