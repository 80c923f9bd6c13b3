/**
 * Non-blocking transmit with a short retry queue, following the Backend contract (../backend.ts).
 * A frame is written at once when nothing is waiting, and reported `sent()` when the kernel took
 * it. When the device's queue is full (EAGAIN/ENOBUFS — an MCP2515 has three tx buffers) it waits
 * in a FIFO retried with a short growing delay, so frames keep their order and the event loop
 * never blocks; `send` answers "accepted" while that FIFO has room and "busy" when it is full,
 * then `ready()` is called once it has room again. A waiting frame whose `expiresAt` passed is
 * `lost("expired")`, never written late; any other write error loses the frame
 * (`lost("write_failed")`) and goes to `failed`; close() loses what still waits
 * (`lost("backend_down")`). The hub counts those drops; this file counts frames really written.
 */
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import type { TxLoss, TxRequest } from "../backend.ts";
import { Backoff, type BackoffOptions } from "../backoff.ts";
import { CANFD_FRAME_SIZE, encodeCanStruct } from "./can-struct.ts";
import { ERRNO } from "./ffi.ts";

export interface TxQueueOptions {
  /** Writes one struct without blocking: 0 on success, else errno. */
  readonly write: (struct: Uint8Array, length: number) => number;
  /** A write failed for another reason than a full queue (the frame was lost("write_failed")). */
  readonly failed: (errno: number) => void;
  /** After send() answered "busy": there is room again. */
  readonly ready: () => void;
  /** Most frames waiting for the device. */
  readonly limit: number;
  readonly stats: Stats;
  /** Where a throwing sent()/lost()/ready() callback is reported. */
  readonly log: Logger;
  /** Retry delays while the device stays full (default 1 ms doubling to 50 ms). */
  readonly retry?: BackoffOptions;
}

/** Frames a full device queue may hold back before send() answers "busy" (a few write rounds). */
export const DEFAULT_SOCKETCAN_TX_QUEUE_LIMIT = 64;

export function isQueueFull(errno: number): boolean {
  return errno === ERRNO.EAGAIN || errno === ERRNO.ENOBUFS;
}

interface Waiting {
  readonly req: TxRequest;
  readonly struct: Uint8Array;
}

export class TxQueue {
  private readonly opts: TxQueueOptions;
  private readonly backoff: Backoff;
  private readonly scratch = new Uint8Array(CANFD_FRAME_SIZE);
  /** Frames waiting; `head` is the next one to write. */
  private queue: Waiting[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  /** send() answered "busy": ready() is owed once there is room. */
  private busyReported = false;

  constructor(options: TxQueueOptions) {
    this.opts = options;
    this.backoff = new Backoff(options.retry ?? { initialMs: 1, maxMs: 50, factor: 2 });
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Writes the frame now, or queues it behind earlier frames; never blocks, never throws. */
  send(req: TxRequest): "accepted" | "busy" {
    if (this.closed) {
      this.report(req, "backend_down");
      return "accepted";
    }
    if (performance.now() > req.expiresAt) {
      this.report(req, "expired");
      return "accepted";
    }
    if (this.pending === 0) {
      const size = encodeCanStruct(req.frame, this.scratch);
      const errno = this.opts.write(this.scratch, size);
      if (errno === 0) this.written(req);
      else if (isQueueFull(errno)) this.enqueue(req, this.scratch.slice(0, size));
      else this.writeFailed(req, errno);
      return "accepted";
    }
    if (this.pending >= this.opts.limit) {
      this.busyReported = true;
      return "busy";
    }
    const size = encodeCanStruct(req.frame, this.scratch);
    this.enqueue(req, this.scratch.slice(0, size));
    return "accepted";
  }

  /** Stops retrying; frames still waiting are lost("backend_down"). Returns how many. */
  close(): number {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const waiting = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const w of waiting) this.report(w.req, "backend_down");
    return waiting.length;
  }

  private enqueue(req: TxRequest, struct: Uint8Array): void {
    this.queue.push({ req, struct });
    if (this.timer === null) this.timer = setTimeout(this.flush, this.backoff.next());
  }

  private written(req: TxRequest): void {
    this.opts.stats.socketcanTxFrames++;
    this.report(req, "sent");
  }

  private writeFailed(req: TxRequest, errno: number): void {
    this.report(req, "write_failed");
    this.opts.failed(errno);
  }

  /** Drops waiting frames whose time is up (the queue is short: a few dozen frames at most). */
  private expire(): void {
    const now = performance.now();
    const expired: Waiting[] = [];
    const kept: Waiting[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const w = this.queue[i]!;
      if (now > w.req.expiresAt) expired.push(w);
      else kept.push(w);
    }
    if (expired.length === 0) return;
    this.queue = kept;
    this.head = 0;
    for (const w of expired) this.report(w.req, "expired");
  }

  /** Writes waiting frames in order; stops at the first one the device still refuses. */
  private readonly flush = (): void => {
    this.timer = null;
    this.expire();
    const firstHead = this.head;
    while (!this.closed && this.head < this.queue.length) {
      const { req, struct } = this.queue[this.head]!;
      const errno = this.opts.write(struct, struct.length);
      if (isQueueFull(errno)) {
        // The device took frames this round, so it is draining: retry soon instead of waiting
        // the delay grown while it was stuck (that would cap throughput below the bus rate).
        if (this.head !== firstHead) this.backoff.reset();
        this.queue = this.queue.slice(this.head);
        this.head = 0;
        this.timer = setTimeout(this.flush, this.backoff.next());
        this.readyIfRoom();
        return;
      }
      this.head++;
      if (errno === 0) this.written(req);
      else this.writeFailed(req, errno);
    }
    if (this.closed) return;
    this.queue = [];
    this.head = 0;
    this.backoff.reset();
    this.readyIfRoom();
  };

  private readyIfRoom(): void {
    if (!this.busyReported || this.closed || this.pending >= this.opts.limit) return;
    this.busyReported = false;
    try {
      this.opts.ready();
    } catch (e) {
      this.opts.log.error("socketcan_tx_callback_failed", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Reports an outcome; a throwing callback is logged and never stops the queue. */
  private report(req: TxRequest, outcome: TxLoss | "sent"): void {
    try {
      if (outcome === "sent") req.sent();
      else req.lost(outcome);
    } catch (e) {
      this.opts.log.error("socketcan_tx_callback_failed", { error: e instanceof Error ? e.message : String(e) });
    }
  }
}
