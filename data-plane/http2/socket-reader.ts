/**
 * Reads of the engine's sockets into one buffer shared by the process, instead of a new ArrayBuffer per read.
 *
 * Node gives every read of a socket a fresh ArrayBuffer, and V8 counts those bytes as external memory: a gateway
 * relaying 1 MiB messages at 160 MiB/s in each direction ran a full mark-compact every 12 ms, and GC was 40 % of
 * the process's CPU (perf). `net.connect({ onread })` reads into a buffer the caller owns, and the same mechanism
 * (the handle's `useUserBuffer` and the socket's onread slots) serves sockets that a server accepted and TLS
 * sockets, which have no public option for it. One buffer serves every socket: reads are delivered one at a time
 * on this thread, and a reader never keeps a slice of it past its callback (the engine copies what it keeps:
 * DATA into the output slab or a queue, header block fragments, request bytes kept for a replay).
 *
 * The slots are found on a throwaway `net.Socket` built with `onread`; when this Node has none of it (or a future
 * one changes it), sockets fall back to 'data' events with their own buffers, which the same rule keeps correct.
 */
import { Socket } from 'node:net';
import { readEnded, readStarted } from '../read-clock.ts';

/** Size of the shared read buffer: what libuv asks for per read of a stream (64 KiB). */
const READ_BUFFER_BYTES = 64 * 1024;

/** Node's `onread` callback; returning false would pause reading, which this engine never asks for. */
type ReadCallback = (nread: number, buffer: Buffer) => void;

interface Slots {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}

function findSlots(): Slots | undefined {
  try {
    const probe = new Socket({ onread: { buffer: Buffer.alloc(1), callback: () => true } });
    const named = new Map<string, symbol>();
    for (const symbol of Object.getOwnPropertySymbols(probe)) if (symbol.description !== undefined) named.set(symbol.description, symbol);
    probe.destroy();
    const buffer = named.get('kBuffer');
    const callback = named.get('kBufferCb');
    const generator = named.get('kBufferGen');
    if (buffer === undefined || callback === undefined || generator === undefined) return undefined;
    return { buffer, callback, generator };
  } catch {
    return undefined;
  }
}

const slots = findSlots();
let shared: Buffer | undefined;

interface UserBufferHandle {
  useUserBuffer(buffer: Uint8Array): void;
}

/**
 * Delivers the socket's bytes to `onBytes(buffer, length)`: `buffer[0, length)` is valid only during the call.
 * Returns whether the shared buffer is used ('data' events otherwise). Bytes the socket read before this call
 * (a TLS socket's first records) are delivered first, in order.
 */
export function readSocket(socket: Socket, onBytes: (buffer: Buffer, length: number) => void): boolean {
  const handle = (socket as unknown as { _handle?: Partial<UserBufferHandle> | null })._handle;
  if (slots === undefined || handle == null || typeof handle.useUserBuffer !== 'function' || socket.listenerCount('data') > 0) {
    socket.on('data', (chunk: Buffer) => {
      readStarted();
      try {
        onBytes(chunk, chunk.length);
      } finally {
        readEnded();
      }
    });
    return false;
  }
  shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  const target = socket as unknown as Record<symbol, unknown>;
  const callback: ReadCallback = (nread, buffer) => {
    readStarted();
    try {
      onBytes(buffer, nread);
    } finally {
      readEnded();
    }
  };
  target[slots.buffer] = shared;
  target[slots.callback] = callback;
  target[slots.generator] = null;
  handle.useUserBuffer(shared);
  // What the stream buffered before the switch, then reading resumes into the shared buffer.
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) onBytes(chunk, chunk.length);
  socket.resume();
  return true;
}

/** Whether this Node lets the engine read into its shared buffer (a test asserts it, so that an upgrade that
 * loses it fails loudly instead of quietly costing GC time). */
export function sharedReadsAvailable(): boolean {
  return slots !== undefined;
}
