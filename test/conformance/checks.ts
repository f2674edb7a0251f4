/** Assertions and bounded waits the conformance cases share. */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { status as GrpcStatus, type Client } from '@grpc/grpc-js';
import { statusText, type Outcome } from '../helpers/interop-client.ts';
import type { Payload } from '../helpers/interop-proto.ts';
import { OBSERVE_LIMIT_MS } from '../helpers/interop-server.ts';

const POLL_MS = 5;

export function assertOk(outcome: Outcome<unknown>): void {
  assert.equal(outcome.status.code, GrpcStatus.OK, statusText(outcome.status));
}

export function assertStatus(outcome: Outcome<unknown>, code: number, details?: string): void {
  assert.equal(outcome.status.code, code, statusText(outcome.status));
  if (details !== undefined) assert.equal(outcome.status.details, details);
}

/** A COMPRESSABLE payload of exactly `size` zero bytes. */
export function assertZeros(payload: Payload | undefined, size: number): void {
  const body = payload?.body ?? Buffer.alloc(0);
  assert.equal(body.length, size);
  assert.ok(body.equals(Buffer.alloc(size)), 'payload body is not all zeros');
}

/** Polls `condition` until it holds; fails after the same bounded wait the servers' waitForCall uses. */
export async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + OBSERVE_LIMIT_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`not within ${OBSERVE_LIMIT_MS} ms: ${what}`);
    await sleep(POLL_MS);
  }
}

/** Resolves once the client's channel is connected (bounded). */
export async function waitForReady(client: Client): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    client.waitForReady(Date.now() + OBSERVE_LIMIT_MS, (err) => (err === undefined ? resolve() : reject(err)));
  });
}
