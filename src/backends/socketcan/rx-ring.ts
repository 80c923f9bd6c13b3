/**
 * The SharedArrayBuffer ring between the receive worker (single producer) and the main thread
 * (single consumer). The worker's recvmmsg writes kernel frame structs straight into the slots;
 * the main thread decodes them. Indices are free-running int32 counters (wrapping), slot =
 * counter & (slots - 1). The worker publishes with Atomics.store + notify on WRITE; the main
 * thread sleeps in Atomics.waitAsync on WRITE and frees slots by storing READ.
 */

/** Int32 header fields (index into the header Int32Array). */
export const H_WRITE = 0;
export const H_READ = 1;
/** Set to 1 by the main thread: the worker finishes its current receive and exits. */
export const H_STOP = 2;
/** RX_RUNNING while the worker reads; RX_STOPPED / RX_FAILED once it no longer touches the fd. */
export const H_STATE = 3;
/** errno that made the worker stop (RX_FAILED). */
export const H_ERRNO = 4;
const HEADER_INTS = 16;
export const HEADER_BYTES = HEADER_INTS * 4;

export const RX_RUNNING = 0;
export const RX_STOPPED = 1;
export const RX_FAILED = 2;

/**
 * A slot (80 bytes, little-endian):
 *   0  u32 struct size (16 or 72), as recvmmsg's msg_len
 *   4  u32 msg_flags of that message (MSG_CONFIRM: this socket's own frame coming back, the
 *      transmit confirmation; MSG_DONTROUTE: sent from this host) — ffi.ts, docs/protocols.md §1
 *   8  the kernel's can_frame / canfd_frame struct (up to 72 bytes), written there by recvmmsg
 */
export const SLOT_BYTES = 80;
export const SLOT_SIZE_OFFSET = 0;
export const SLOT_FLAGS_OFFSET = 4;
export const SLOT_FRAME_OFFSET = 8;

export interface RxRing {
  readonly buffer: SharedArrayBuffer;
  readonly header: Int32Array;
  readonly bytes: Uint8Array;
  readonly slots: number;
}

/** `slots` must be a power of two. */
export function createRxRing(slots: number): RxRing {
  if (slots < 2 || (slots & (slots - 1)) !== 0) throw new RangeError(`ring slots must be a power of two, got ${slots}`);
  const buffer = new SharedArrayBuffer(HEADER_BYTES + slots * SLOT_BYTES);
  return attachRxRing(buffer);
}

export function attachRxRing(buffer: SharedArrayBuffer): RxRing {
  const slots = (buffer.byteLength - HEADER_BYTES) / SLOT_BYTES;
  return { buffer, header: new Int32Array(buffer, 0, HEADER_INTS), bytes: new Uint8Array(buffer), slots };
}

/** Byte offset of slot `counter & (slots-1)` in `ring.bytes`. */
export function slotOffset(ring: RxRing, counter: number): number {
  return HEADER_BYTES + (counter & (ring.slots - 1)) * SLOT_BYTES;
}

/** The message the main thread posts to start a worker. */
export interface RxWorkerStart {
  readonly ring: SharedArrayBuffer;
  readonly fd: number;
  /** Most messages taken per recvmmsg call. */
  readonly batch: number;
}
