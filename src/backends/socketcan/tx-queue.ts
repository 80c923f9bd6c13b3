/**
 * Non-blocking transmit with a bounded retry queue. A frame is written at once when nothing is
 * waiting; when the device's queue is full (EAGAIN/ENOBUFS — an MCP2515 has three tx buffers),
 * it waits in a bounded FIFO retried with a short growing delay, so frames keep their order and
 * the event loop never blocks. Beyond the limit frames are dropped and counted
 * (`errors_total{where="socketcan_tx_overflow"}`). Any other write error goes to `failed`.
 */
import type { CanFrame } from "../../can/frame.ts";
import type { Stats } from "../../ops/stats.ts";
import { Backoff, type BackoffOptions } from "../backoff.ts";
import { CANFD_FRAME_SIZE, CAN_FRAME_SIZE, encodeCanStruct } from "./can-struct.ts";
import { ERRNO } from "./ffi.ts";

export interface TxQueueOptions {
  /** Writes one struct without blocking: 0 on success, else errno. */
  readonly write: (struct: Uint8Array, length: number) => number;
  /** A write failed for another reason than a full queue (the frame is dropped). */
  readonly failed: (errno: number) => void;
  /** Most frames waiting for the device. */
  readonly limit: number;
  readonly stats: Stats;
  /** Retry delays while the device stays full (default 1 ms doubling to 50 ms). */
  readonly retry?: BackoffOptions;
}

export function isQueueFull(errno: number): boolean {
  return errno === ERRNO.EAGAIN || errno === ERRNO.ENOBUFS;
}

export class TxQueue {
  private readonly opts: TxQueueOptions;
  private readonly backoff: Backoff;
  private readonly scratch = new Uint8Array(CANFD_FRAME_SIZE);
  /** Encoded structs waiting; `head` is the next one to write. */
  private queue: Uint8Array[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(options: TxQueueOptions) {
    this.opts = options;
    this.backoff = new Backoff(options.retry ?? { initialMs: 1, maxMs: 50, factor: 2 });
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Writes `frame` now, or queues it behind earlier frames; never blocks, never throws. */
  send(frame: CanFrame): void {
    if (this.closed) return;
    if (this.pending === 0) {
      const size = encodeCanStruct(frame, this.scratch);
      const errno = this.opts.write(this.scratch, size);
      if (errno === 0) this.opts.stats.socketcanTxFrames++;
      else if (isQueueFull(errno)) this.enqueue(this.scratch.slice(0, size));
      else this.opts.failed(errno);
      return;
    }
    const struct = new Uint8Array(frame.fd ? CANFD_FRAME_SIZE : CAN_FRAME_SIZE);
    encodeCanStruct(frame, this.scratch);
    struct.set(this.scratch.subarray(0, struct.length));
    this.enqueue(struct);
  }

  /** Stops retrying; frames still waiting are dropped and counted. Returns how many. */
  close(): number {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const dropped = this.pending;
    this.opts.stats.backendTxDropped += dropped;
    this.queue = [];
    this.head = 0;
    return dropped;
  }

  private enqueue(struct: Uint8Array): void {
    if (this.pending >= this.opts.limit) {
      this.opts.stats.error("socketcan_tx_overflow");
      this.opts.stats.backendTxDropped++;
      return;
    }
    this.queue.push(struct);
    if (this.timer === null) this.timer = setTimeout(this.flush, this.backoff.next());
  }

  /** Writes waiting frames in order; stops at the first one the device still refuses. */
  private readonly flush = (): void => {
    this.timer = null;
    const firstHead = this.head;
    while (!this.closed && this.head < this.queue.length) {
      const struct = this.queue[this.head]!;
      const errno = this.opts.write(struct, struct.length);
      if (isQueueFull(errno)) {
        // The device took frames this round, so it is draining: retry soon instead of waiting
        // the delay grown while it was stuck (that would cap throughput below the bus rate).
        if (this.head !== firstHead) this.backoff.reset();
        // Keep the array from growing while the head advances under sustained load.
        if (this.head >= 256) {
          this.queue = this.queue.slice(this.head);
          this.head = 0;
        }
        this.timer = setTimeout(this.flush, this.backoff.next());
        return;
      }
      this.head++;
      if (errno === 0) this.opts.stats.socketcanTxFrames++;
      else this.opts.failed(errno);
    }
    this.queue = [];
    this.head = 0;
    this.backoff.reset();
  };
}
