/**
 * The interop suite's TestService as a real @grpc/grpc-js server (grpc's doc/interop-test-descriptions.md, "Server"
 * section), on plaintext HTTP/2 or TLS, port 0. It behaves as the spec asks of an interop server:
 *
 * - payloads of the requested sizes, one response per ResponseParameters, each after its `interval_us`;
 * - `response_status` → the call ends with that code and message (unary, and streaming after the responses);
 * - `x-grpc-test-echo-initial` is echoed in the initial metadata, `x-grpc-test-echo-trailing-bin` in the trailers;
 * - UnimplementedCall has no handler, so grpc-js answers UNIMPLEMENTED itself.
 *
 * and it records what it observed of every call, keyed by the client's `x-interop-call-id`: request payload sizes,
 * when each response was handed to grpc-js (performance.now(), the same clock as the test's, since everything runs
 * in one process), half-close, whether the call was cancelled, and the status it sent, if any.
 *
 * Telling a cancellation from outside apart. grpc-js 1.14 emits 'cancelled' on every call once it is over, also
 * after the handler sent its own status (notifyOnCancel() at the end of sendStatus), so 'cancelled' alone proves
 * nothing. And node:http2's `stream.close(NGHTTP2_CANCEL)` on a stream whose request side is still open sends an
 * empty DATA frame with END_STREAM before the RST_STREAM (seen on the wire: DATA flags=END_STREAM len=0, then
 * RST_STREAM code=CANCEL), which is what grpc-js's call.cancel() does, so a server first sees a half-close and may
 * answer it before the reset arrives. A call sent with `x-interop-hold-open` is therefore never ended by this
 * server: it ignores the half-close and sends no status, and `cancelled && status === undefined` on its record
 * (`cancelledFromOutside`) means the stream was reset by the peer (the gateway) or the connection was lost, or,
 * for a call that came with a grpc-timeout, that grpc-js's own deadline timer fired.
 *
 * What grpc-js 1.14 cannot do as an interop server (checked in node_modules/@grpc/grpc-js/build/src): it never
 * compresses responses ("response compression is currently not supported", server-interceptors.js), and it hides
 * `grpc-encoding` and each message's compressed flag from handlers, so `response_compressed` and
 * `expect_compressed` are ignored here (it does decompress gzip requests). The compression cases use
 * interop-wire-server.ts.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCert } from './certs.ts';
import { testService } from './interop-proto.ts';
import { createInteropHandlers, type ObservedCall } from './interop-service.ts';

export type { ObservedCall };

export interface InteropServer {
  readonly id: string;
  readonly port: number;
  /** `127.0.0.1:port`, an upstream node key. */
  readonly address: string;
  readonly tls: boolean;
  /** The self-signed certificate of a TLS server (its own root). */
  readonly rootCert: string | undefined;
  /** Every call seen so far, oldest first. */
  calls(): readonly ObservedCall[];
  /** Calls carrying this x-interop-call-id. */
  callsWithId(callId: string): ObservedCall[];
  /** Resolves with the first call with this id that satisfies `predicate`; rejects after a bounded wait. */
  waitForCall(callId: string, predicate: (call: ObservedCall) => boolean, what: string): Promise<ObservedCall>;
  /** Stops the server; calls still open after `graceMs` are cancelled. Idempotent. */
  close(graceMs?: number): Promise<void>;
}

/** How long waitForCall polls before it fails the test: long next to a loopback round trip, short for a test. */
export const OBSERVE_LIMIT_MS = 5_000;
const POLL_MS = 5;
const DEFAULT_CLOSE_GRACE_MS = 500;

export async function startInteropServer(options: { id: string; tls?: boolean }): Promise<InteropServer> {
  const pem = options.tls === true ? await makeCert({ sans: ['localhost', '127.0.0.1'] }) : undefined;
  const observed: ObservedCall[] = [];
  const server = new Server();
  server.addService(testService(), createInteropHandlers(options.id, observed));
  const credentials =
    pem === undefined
      ? ServerCredentials.createInsecure()
      : ServerCredentials.createSsl(null, [{ cert_chain: Buffer.from(pem.cert), private_key: Buffer.from(pem.key) }], false);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', credentials, (err, bound) => (err === null ? resolve(bound) : reject(err)));
  });

  let closing: Promise<void> | undefined;
  const callsWithId = (callId: string): ObservedCall[] => observed.filter((c) => c.callId === callId);
  return {
    id: options.id,
    port,
    address: `127.0.0.1:${port}`,
    tls: pem !== undefined,
    rootCert: pem?.cert,
    calls: () => observed,
    callsWithId,
    async waitForCall(callId, predicate, what) {
      const deadline = performance.now() + OBSERVE_LIMIT_MS;
      for (;;) {
        const found = callsWithId(callId).find(predicate);
        if (found !== undefined) return found;
        if (performance.now() > deadline) {
          const seen = JSON.stringify(callsWithId(callId).map(summary));
          throw new Error(`${options.id} did not observe ${what} within ${OBSERVE_LIMIT_MS} ms (calls seen: ${seen})`);
        }
        await sleep(POLL_MS);
      }
    },
    close(graceMs = DEFAULT_CLOSE_GRACE_MS) {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}

/** The call ended without this server having sent a status: reset by the peer, or by its own deadline timer. */
export function cancelledFromOutside(call: ObservedCall): boolean {
  return call.cancelled && call.status === undefined;
}

/** What a failed waitForCall prints about the calls it did see. */
export function summary(call: ObservedCall): object {
  return {
    method: call.method,
    requests: call.requestSizes.length,
    sent: call.sentAt.length,
    halfClosed: call.halfClosed,
    cancelled: call.cancelled,
    status: call.status,
  };
}

