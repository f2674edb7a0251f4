/**
 * Resetting an upstream stream so that the upstream sees a reset and nothing else: RST_STREAM with the given code,
 * and never a DATA or HEADERS frame with END_STREAM before it.
 *
 * Why not `stream.close(code)`: node:http2's closeStream() ends the writable side first when it is still open
 * (`stream.end()`, to "close the writable side"), which asks nghttp2 to send END_STREAM; the native RST_STREAM then
 * flushes pending data before it (Http2Stream::SubmitRstStream: "force a purge of any currently pending data"), so
 * the upstream received DATA(END_STREAM) and then RST_STREAM(CANCEL): a cancelled upload looked complete first
 * (issue #11, case 6). RFC 9113 §8.1 and gRPC PROTOCOL-HTTP2.md make END_STREAM the client's statement that the
 * request is whole; a gateway must not say it for a client that cancelled.
 *
 * So the RST_STREAM is submitted on the stream's native handle directly, the way closeStream() itself does it after
 * end(). nghttp2 sends it ahead of any DATA still queued for the stream, closes the stream, and reports the close
 * back (onStreamClose), where node:http2 does its own bookkeeping ('close' with rstCode) without sending anything
 * more. When the handle is not there (a stream whose HEADERS are still queued, or a Node version without it),
 * stream.close() remains the fallback: there the upstream has seen nothing yet, or the old behaviour stays.
 *
 * Only used on the cancel path; the hot path never comes here.
 */
import type { ClientHttp2Stream } from 'node:http2';

interface NativeStreamHandle {
  rstStream(code: number): void;
}

/**
 * Streams reset through their handle: node:http2 marks them closed only once nghttp2 reports the close, and a
 * second RST_STREAM in between must not be submitted (RFC 9113 §5.4.2: no RST_STREAM for a closed stream).
 */
const resetByHandle = new WeakSet<ClientHttp2Stream>();

/** node:http2 keeps the native handle of a stream under a private symbol; found once, on the first reset. */
let handleSymbol: symbol | undefined;

function nativeHandle(stream: ClientHttp2Stream): NativeStreamHandle | undefined {
  handleSymbol ??= Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle');
  if (handleSymbol === undefined) return undefined;
  const handle: unknown = (stream as unknown as Record<symbol, unknown>)[handleSymbol];
  if (typeof handle !== 'object' || handle === null || !('rstStream' in handle) || typeof handle.rstStream !== 'function') return undefined;
  return handle as NativeStreamHandle;
}

/** Resets `stream` with `code` unless it is already closed; see the file comment. Never throws. */
export function resetStream(stream: ClientHttp2Stream, code: number): void {
  if (stream.closed || stream.destroyed || resetByHandle.has(stream)) return;
  try {
    const handle = stream.pending ? undefined : nativeHandle(stream);
    if (handle !== undefined) {
      handle.rstStream(code);
      resetByHandle.add(stream);
      return;
    }
  } catch {
    // fall back to the public API below
  }
  try {
    stream.close(code);
  } catch {
    // a stream that went away meanwhile: nothing left to reset
  }
}
