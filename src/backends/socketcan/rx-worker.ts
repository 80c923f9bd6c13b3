/**
 * The SocketCAN receive thread. It blocks in recvmmsg on the CAN socket the main thread opened
 * and writes the kernel's frame structs straight into the shared ring (each ring slot has its own
 * iovec, so there is no copy), with each message's size and msg_flags beside it, then wakes the
 * main thread with Atomics.notify. Blocking here keeps the main event loop free; one notify per
 * batch keeps it cheap (measure it in the VM with test/socketcan/bench-rx.ts). The socket's
 * receive timeout bounds each block, so a stop request is noticed within that time. Any receive
 * error other than a timeout ends the thread with the errno in the ring header (ENETDOWN when the
 * interface goes down); the main thread decides what happens next. In a compiled binary this file
 * is an extra `bun build --compile` entrypoint.
 */
import { addressOf, CANFD_MTU, ERRNO, IOVEC_SIZE, MMSGHDR_SIZE, MSGHDR_FLAGS_OFFSET, MSG_WAITFORONE, receiveBatch } from "./ffi.ts";
import {
  attachRxRing,
  H_ERRNO,
  H_READ,
  H_STATE,
  H_STOP,
  H_WRITE,
  RX_FAILED,
  RX_STOPPED,
  SLOT_FLAGS_OFFSET,
  SLOT_FRAME_OFFSET,
  SLOT_SIZE_OFFSET,
  slotOffset,
  type RxRing,
  type RxWorkerStart,
} from "./rx-ring.ts";

declare var self: Worker;

/** offsetof(struct mmsghdr, msg_len) on 64-bit Linux. */
const MSG_LEN_OFFSET = 56;
/** How long to sleep when the ring is full before looking again (the kernel buffers meanwhile). */
const RING_FULL_WAIT_MS = 20;

/**
 * One mmsghdr + iovec per ring slot, each pointing at its slot: built once. The kernel only sees
 * raw addresses, so both arrays stay referenced from `vectors` for the worker's lifetime.
 */
let vectors: { msgvec: Uint8Array; iovecs: Uint8Array } | null = null;

function buildMessageVectors(ring: RxRing): { msgvec: Uint8Array; iovecs: Uint8Array } {
  const msgvec = new Uint8Array(ring.slots * MMSGHDR_SIZE);
  const iovecs = new Uint8Array(ring.slots * IOVEC_SIZE);
  const mv = new DataView(msgvec.buffer);
  const iv = new DataView(iovecs.buffer);
  const ringBase = addressOf(ring.bytes);
  const iovBase = addressOf(iovecs);
  for (let i = 0; i < ring.slots; i++) {
    iv.setBigUint64(i * IOVEC_SIZE, BigInt(ringBase + slotOffset(ring, i) + SLOT_FRAME_OFFSET), true);
    iv.setBigUint64(i * IOVEC_SIZE + 8, BigInt(CANFD_MTU), true);
    const m = i * MMSGHDR_SIZE;
    mv.setBigUint64(m + 16, BigInt(iovBase + i * IOVEC_SIZE), true); // msg_iov
    mv.setBigUint64(m + 24, 1n, true); // msg_iovlen
  }
  vectors = { msgvec, iovecs };
  return vectors;
}

function run(start: RxWorkerStart): void {
  const ring = attachRxRing(start.ring);
  const h = ring.header;
  const { msgvec } = buildMessageVectors(ring);
  const lens = new DataView(msgvec.buffer);
  const slotView = new DataView(ring.bytes.buffer);
  let write = Atomics.load(h, H_WRITE);
  let failure = 0;
  while (Atomics.load(h, H_STOP) === 0) {
    const used = (write - Atomics.load(h, H_READ)) | 0;
    const free = ring.slots - used;
    if (free <= 0) {
      Atomics.wait(h, H_READ, Atomics.load(h, H_READ), RING_FULL_WAIT_MS);
      continue;
    }
    const index = write & (ring.slots - 1);
    // A batch never wraps: the message vectors are contiguous up to the end of the ring.
    const n = Math.min(start.batch, free, ring.slots - index);
    const got = receiveBatch(start.fd, msgvec, index * MMSGHDR_SIZE, n, MSG_WAITFORONE);
    if (got < 0) {
      const errno = -got;
      if (errno === ERRNO.EAGAIN || errno === ERRNO.EINTR) continue; // receive timeout: look at H_STOP
      failure = errno;
      break;
    }
    for (let i = 0; i < got; i++) {
      const m = (index + i) * MMSGHDR_SIZE;
      const slot = slotOffset(ring, write + i);
      slotView.setUint32(slot + SLOT_SIZE_OFFSET, lens.getUint32(m + MSG_LEN_OFFSET, true), true);
      // The kernel writes msg_flags back on every receive (MSG_CONFIRM marks our own frames).
      slotView.setUint32(slot + SLOT_FLAGS_OFFSET, lens.getUint32(m + MSGHDR_FLAGS_OFFSET, true), true);
    }
    write = (write + got) | 0;
    Atomics.store(h, H_WRITE, write);
    Atomics.notify(h, H_WRITE);
  }
  Atomics.store(h, H_ERRNO, failure);
  Atomics.store(h, H_STATE, failure === 0 ? RX_STOPPED : RX_FAILED);
  // Wake the main thread's waiter on WRITE (it checks H_STATE) and anyone waiting for the exit.
  Atomics.notify(h, H_WRITE);
  Atomics.notify(h, H_STATE);
  vectors = null;
}

self.onmessage = (event: MessageEvent<RxWorkerStart>) => {
  self.onmessage = null;
  run(event.data);
  process.exit(0);
};
