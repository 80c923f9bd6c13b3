/**
 * Non-blocking transmit with a short retry queue and, where the kernel confirms transmissions, a
 * confirmation FIFO, following the Backend contract (../backend.ts).
 *
 * Writing: a frame is written at once when nothing is waiting. When the device's queue is full
 * (EAGAIN/ENOBUFS — an MCP2515 has three tx buffers) it waits in a FIFO retried with a short
 * growing delay, so frames keep their order and the event loop never blocks. A waiting frame
 * whose `expiresAt` passed is `lost("expired")`, never written late; any other write error loses
 * the frame (`lost("write_failed")`) and goes to `failed`.
 *
 * Confirming (`confirm: true`: the socket has CAN_RAW_RECV_OWN_MSGS, docs/protocols.md §1): a
 * written frame is not sent yet. It waits, in write order, until the receive path hands its
 * MSG_CONFIRM copy to confirm() — with a driver that echoes on TX-done, the moment it left on the
 * bus — and only then is it `sent()`. The matching rule:
 * - the confirmation equals the oldest frame waiting for one (id, flags, data): that one is
 *   sent() (drivers transmit in order, so this is the rule);
 * - else the oldest waiting frame equal to it is sent(), and the confirmation is counted in
 *   errors_total{where="socketcan_tx_confirm_mismatch"}: the controller sent out of order, or the
 *   confirmations of the frames before it were lost (a receive-buffer overflow drops them like any
 *   frame, counted as socketcan_rx_overflow). The frames before it keep waiting for their own;
 * - a frame whose wait timed out is remembered (at most TIMED_OUT_KEEP_FRAMES, for
 *   TIMED_OUT_KEEP_MS): it may still sit in the kernel's queue and go out when the bus recovers.
 *   Everything given up was written before everything still waiting, and confirmations come in
 *   write order, so a confirmation equal to a given-up frame is checked against those first: it
 *   is that frame's, late (counted as a mismatch), and never settles a newer identical frame.
 *   But if the given-up frame was in fact gone (dropped by the kernel, or its confirmation lost
 *   to an overflow), that confirmation was the newer frame's: so the oldest waiting frame equal to
 *   it is marked, and if no confirmation of its own comes before its timeout, it is sent() then
 *   (late) instead of lost and given up in turn — else every later identical frame (a periodic
 *   command) would be taken for the one before it and reported unconfirmed, for good;
 *   A confirmation of a newer frame forgets the given-up frames written before it (in order, theirs
 *   would have come first: the kernel dropped them, e.g. on bus-off);
 * - else (nothing equals it) it is counted the same way and confirm() returns false.
 * A confirmation that settles no request is our socket's frame on the bus (socketcan_tx_frames_total)
 * but never delivered as a bus frame: its sender was already told it was lost, and would be shown
 * its own frame as new (nor is it counted as received).
 * A frame waits for its confirmation at most `confirmTimeoutMs` after it was written, then it is
 * `lost("unconfirmed")`: nothing acknowledged it (no other node, wrong bit rate, bus-off). The
 * window starts at the write, not at `expiresAt`, which says until when a frame may be *written*:
 * a frame written just before it must still get time to go out, and a written frame cannot be
 * taken back. (That also keeps the FIFO in deadline order, so the timer looks at its head only.)
 *
 * Never late (issue 18): after a confirmation timeout the queue probes — at most one frame in
 * flight (written and not yet confirmed or timed out) until the bus confirms anything again — so
 * a dead bus takes one frame per timeout into the kernel instead of `limit`; the hub's lanes hold
 * and expire the rest (-tx-max-age), and nothing stale piles up in the kernel to be flushed onto
 * the bus when it recovers.
 * Without confirmation (`confirm: false`: the kernel refused the option) a frame is sent() once
 * the kernel took it, as before.
 *
 * Back-pressure: frames waiting to be written plus frames waiting for their confirmation are at
 * most `limit` (1 while probing); then send() answers "busy", and `ready()` is called once there
 * is room again.
 * halt() stops writing and loses what still waits to be written (`lost("backend_down")`), while
 * confirmations may still come; close() also loses what still waits for one. Every accepted
 * request ends exactly once in sent() or lost(). The hub counts the drops; this file counts the
 * frames really on the bus (socketcan_tx_frames_total: confirmed, or written where the kernel
 * cannot confirm).
 */
import { formatFrame, framesEqual, type CanFrame } from "../../can/frame.ts";
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
  /** Most frames waiting for the device plus frames waiting for their confirmation. */
  readonly limit: number;
  readonly stats: Stats;
  /** Where a throwing sent()/lost()/ready() callback is reported. */
  readonly log: Logger;
  /** Retry delays while the device stays full (default 1 ms doubling to 50 ms). */
  readonly retry?: BackoffOptions;
  /** sent() only once confirm() matched the frame (default false: sent() once written). */
  readonly confirm?: boolean;
  /** How long a written frame may wait for its confirmation (default DEFAULT_TX_CONFIRM_TIMEOUT_MS). */
  readonly confirmTimeoutMs?: number;
}

/** Frames a full device queue may hold back before send() answers "busy" (a few write rounds). */
export const DEFAULT_SOCKETCAN_TX_QUEUE_LIMIT = 64;
/**
 * How long a written frame may wait for the kernel's transmit confirmation, at least: the gateway
 * passes max(this, -tx-max-age) (src/backends/create.ts). While frames are confirmed, at most
 * `limit` (64) of ours are ahead of a new one in the kernel, 64 × 2.6 ms on a 50 kbit/s bus; the
 * rest is room for other nodes' traffic winning arbitration. A frame that timed out may still sit
 * in the kernel's queue (a written frame cannot be taken back): when the bus dies, the up to
 * `limit` frames written before the first timeout, then one probe per timeout (never more than
 * the interface's txqueuelen holds), and those go out when the bus recovers.
 */
export const DEFAULT_TX_CONFIRM_TIMEOUT_MS = 2000;

/** How long a frame given up as unconfirmed is remembered for its late confirmation. */
export const TIMED_OUT_KEEP_MS = 10 * 60_000;
/** How many given-up frames are remembered at most (oldest forgotten first; txqueuelen is usually 10). */
export const TIMED_OUT_KEEP_FRAMES = 1024;

export function isQueueFull(errno: number): boolean {
  return errno === ERRNO.EAGAIN || errno === ERRNO.ENOBUFS;
}

interface Waiting {
  readonly req: TxRequest;
  readonly struct: Uint8Array;
}

interface Unconfirmed {
  readonly req: TxRequest;
  /** performance.now() after which it is lost("unconfirmed"). */
  readonly deadline: number;
  /** A confirmation equal to it went to a given-up frame while it waited (see the module comment). */
  shadowed: boolean;
}

interface GivenUp {
  readonly frame: CanFrame;
  /** performance.now() after which it is forgotten. */
  readonly forgetAt: number;
}

export class TxQueue {
  private readonly opts: TxQueueOptions;
  private readonly backoff: Backoff;
  private readonly scratch = new Uint8Array(CANFD_FRAME_SIZE);
  private readonly confirming: boolean;
  private readonly confirmTimeoutMs: number;
  /** Frames waiting to be written; `head` is the next one to write. */
  private queue: Waiting[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Written frames waiting for their confirmation, in write order (so in deadline order) from `uHead`. */
  private unconfirmed: Unconfirmed[] = [];
  private uHead = 0;
  private confirmTimer: ReturnType<typeof setTimeout> | null = null;
  /** No more writes (halt() or close()). */
  private halted = false;
  /** Confirmations are no longer expected either (close()). */
  private closed = false;
  /** send() answered "busy": ready() is owed once there is room. */
  private busyReported = false;
  private mismatchWarned = false;
  private timeoutWarned = false;
  /** Frames lost("unconfirmed") that may still be confirmed late, oldest first. */
  private givenUp: GivenUp[] = [];
  /** A confirmation timed out and none came since: at most one frame in flight. */
  private probing = false;

  constructor(options: TxQueueOptions) {
    this.opts = options;
    this.backoff = new Backoff(options.retry ?? { initialMs: 1, maxMs: 50, factor: 2 });
    this.confirming = options.confirm ?? false;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? DEFAULT_TX_CONFIRM_TIMEOUT_MS;
  }

  /** Frames waiting to be written. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** Frames written and waiting for their confirmation (always 0 without `confirm`). */
  get awaitingConfirmation(): number {
    return this.unconfirmed.length - this.uHead;
  }

  /** Frames given up as unconfirmed and remembered for a late confirmation. */
  get givenUpFrames(): number {
    return this.givenUp.length;
  }

  /** After a confirmation timeout, until the bus confirms again: one frame in flight at most. */
  get probingBus(): boolean {
    return this.probing;
  }

  /** Frames waiting to be written plus frames in flight may be at most this many. */
  private get inFlightLimit(): number {
    return this.probing ? 1 : this.opts.limit;
  }

  /** Writes the frame now, or queues it behind earlier frames; never blocks, never throws. */
  send(req: TxRequest): "accepted" | "busy" {
    if (this.halted) {
      this.report(req, "backend_down");
      return "accepted";
    }
    if (performance.now() > req.expiresAt) {
      this.report(req, "expired");
      return "accepted";
    }
    if (this.pending + this.awaitingConfirmation >= this.inFlightLimit) {
      this.busyReported = true;
      return "busy";
    }
    const size = encodeCanStruct(req.frame, this.scratch);
    if (this.pending === 0) {
      const errno = this.opts.write(this.scratch, size);
      if (errno === 0) this.written(req);
      else if (isQueueFull(errno)) this.enqueue(req, this.scratch.slice(0, size));
      else this.writeFailed(req, errno);
      return "accepted";
    }
    this.enqueue(req, this.scratch.slice(0, size));
    return "accepted";
  }

  /**
   * The kernel handed back one of this socket's own frames (MSG_CONFIRM): the frame it matches is
   * sent() (the rule is in the module comment). False when no frame waiting for a confirmation
   * matches it: the caller delivers it as a bus frame. Call afterConfirmations() after a batch.
   */
  confirm(frame: CanFrame): boolean {
    // Our socket's frame was transmitted, whichever request it belongs to: the bus works.
    this.opts.stats.socketcanTxFrames++;
    this.probing = false;
    this.forgetGivenUp(performance.now());
    for (let i = 0; i < this.givenUp.length; i++) {
      if (!framesEqual(this.givenUp[i]!.frame, frame)) continue;
      // Late: the frame was given up, its sender told so. Those given up before it are gone.
      this.givenUp.splice(0, i + 1);
      this.shadowNext(frame, this.uHead); // it may have been that one's: decided at its timeout
      this.mismatch(frame, "a frame given up as unconfirmed", this.awaitingConfirmation);
      return false;
    }
    const end = this.unconfirmed.length;
    if (this.uHead < end && framesEqual(this.unconfirmed[this.uHead]!.req.frame, frame)) {
      const { req, shadowed } = this.unconfirmed[this.uHead]!;
      this.uHead++;
      // Still one confirmation short for these identical frames: the doubt moves to the next one.
      if (shadowed) this.shadowNext(frame, this.uHead);
      this.givenUp = [];
      this.compactUnconfirmed();
      this.report(req, "sent");
      return true;
    }
    for (let i = this.uHead + 1; i < end; i++) {
      const { req, shadowed } = this.unconfirmed[i]!;
      if (!framesEqual(req.frame, frame)) continue;
      this.unconfirmed.splice(i, 1);
      if (shadowed) this.shadowNext(frame, i);
      this.givenUp = [];
      this.mismatch(frame, "a later frame", i - this.uHead);
      this.report(req, "sent");
      return true;
    }
    this.mismatch(frame, "none", this.awaitingConfirmation);
    return false;
  }

  /** Marks the oldest waiting frame from `from` equal to `frame` and not yet marked as shadowed. */
  private shadowNext(frame: CanFrame, from: number): void {
    for (let k = from; k < this.unconfirmed.length; k++) {
      const u = this.unconfirmed[k]!;
      if (u.shadowed || !framesEqual(u.req.frame, frame)) continue;
      u.shadowed = true;
      return;
    }
  }

  /** Drops given-up frames past their time, and the oldest beyond TIMED_OUT_KEEP_FRAMES. */
  private forgetGivenUp(now: number): void {
    let n = 0;
    while (n < this.givenUp.length && (this.givenUp[n]!.forgetAt <= now || this.givenUp.length - n > TIMED_OUT_KEEP_FRAMES)) n++;
    if (n > 0) this.givenUp.splice(0, n);
  }

  /** After a batch of confirm() calls: room may have been made (ready() if "busy" was answered). */
  afterConfirmations(): void {
    this.readyIfRoom();
  }

  /**
   * Stops writing: frames still waiting to be written are lost("backend_down"); later send()s are
   * lost("backend_down") at once. Frames already written may still be confirmed until close().
   * Returns how many were lost.
   */
  halt(): number {
    this.halted = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const waiting = this.queue.slice(this.head);
    this.queue = [];
    this.head = 0;
    for (const w of waiting) this.report(w.req, "backend_down");
    return waiting.length;
  }

  /**
   * halt(), and frames still waiting for their confirmation are lost("backend_down") too (the
   * socket is going: no confirmation can come any more). Returns how many were lost in all.
   */
  close(): number {
    const waiting = this.halt();
    this.closed = true;
    if (this.confirmTimer !== null) clearTimeout(this.confirmTimer);
    this.confirmTimer = null;
    const unconfirmed = this.unconfirmed.slice(this.uHead);
    this.unconfirmed = [];
    this.uHead = 0;
    this.givenUp = [];
    for (const u of unconfirmed) this.report(u.req, "backend_down");
    return waiting + unconfirmed.length;
  }

  private enqueue(req: TxRequest, struct: Uint8Array): void {
    this.queue.push({ req, struct });
    if (this.timer === null) this.timer = setTimeout(this.flush, this.backoff.next());
  }

  private written(req: TxRequest): void {
    if (!this.confirming) {
      this.opts.stats.socketcanTxFrames++;
      this.report(req, "sent");
      return;
    }
    this.unconfirmed.push({ req, deadline: performance.now() + this.confirmTimeoutMs, shadowed: false });
    this.armConfirmTimer();
  }

  private writeFailed(req: TxRequest, errno: number): void {
    this.report(req, "write_failed");
    this.opts.failed(errno);
  }

  private mismatch(frame: CanFrame, matched: string, behind: number): void {
    this.opts.stats.error("socketcan_tx_confirm_mismatch");
    const fields = { frame: formatFrame(frame), matched, waiting_before: behind };
    if (this.mismatchWarned) {
      this.opts.log.debug("socketcan_tx_confirm_mismatch", fields);
      return;
    }
    this.mismatchWarned = true;
    this.opts.log.warn("socketcan_tx_confirm_mismatch", {
      ...fields,
      hint: "a transmit confirmation was not for the oldest frame waiting for one (frames sent out of order, or confirmations lost to a receive overflow); counted in errors_total",
    });
  }

  /** Drops the consumed front of the confirmation FIFO now and then (amortised O(1)). */
  private compactUnconfirmed(): void {
    if (this.uHead === this.unconfirmed.length) {
      this.unconfirmed = [];
      this.uHead = 0;
    } else if (this.uHead >= 1024 && this.uHead * 2 >= this.unconfirmed.length) {
      this.unconfirmed = this.unconfirmed.slice(this.uHead);
      this.uHead = 0;
    }
  }

  /**
   * One timer for the FIFO's head. It fires a little after the deadline (a tenth of the timeout,
   * at most 20 ms), so frames written close together time out in one round: on a dead bus that
   * is one wake-up and one report per batch instead of one per frame — never early.
   */
  private armConfirmTimer(): void {
    if (this.confirmTimer !== null || this.closed || this.awaitingConfirmation === 0) return;
    const wait = this.unconfirmed[this.uHead]!.deadline - performance.now();
    const slack = Math.min(20, this.confirmTimeoutMs / 10);
    this.confirmTimer = setTimeout(this.expireUnconfirmed, Math.max(1, Math.ceil(wait + slack)));
  }

  /** Frames whose confirmation did not come in time are lost("unconfirmed"); FIFO = deadline order. */
  private readonly expireUnconfirmed = (): void => {
    this.confirmTimer = null;
    const now = performance.now();
    const timedOut: TxRequest[] = [];
    /** Their one confirmation went to a given-up twin that was gone: it was theirs. */
    const shadowed: TxRequest[] = [];
    while (this.uHead < this.unconfirmed.length && this.unconfirmed[this.uHead]!.deadline <= now) {
      const u = this.unconfirmed[this.uHead]!;
      (u.shadowed ? shadowed : timedOut).push(u.req);
      this.uHead++;
    }
    this.compactUnconfirmed();
    this.armConfirmTimer();
    for (const req of shadowed) this.report(req, "sent");
    if (timedOut.length === 0) {
      this.readyIfRoom();
      return;
    }
    // The bus did not confirm in time: probe with one frame at a time until it does, and
    // remember these for their late confirmations.
    this.probing = true;
    for (const req of timedOut) this.givenUp.push({ frame: req.frame, forgetAt: now + TIMED_OUT_KEEP_MS });
    this.forgetGivenUp(now);
    const fields = { frames: timedOut.length, timeout_ms: this.confirmTimeoutMs };
    if (!this.timeoutWarned) {
      this.timeoutWarned = true;
      this.opts.log.warn("socketcan_tx_unconfirmed", {
        ...fields,
        hint: "frames written to the CAN socket were never confirmed as transmitted: no other node acknowledges them (a bus with one node, wrong bit rate) or the controller is bus-off; counted in client_tx_dropped_total{reason=\"unconfirmed\"}",
      });
    } else {
      this.opts.log.debug("socketcan_tx_unconfirmed", fields);
    }
    for (const req of timedOut) this.report(req, "unconfirmed");
    this.readyIfRoom();
  };

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
    while (!this.halted && this.head < this.queue.length) {
      if (this.probing && this.awaitingConfirmation > 0) {
        // Probing: the next frame waits until the one in flight is confirmed or given up (or
        // expires meanwhile).
        this.queue = this.queue.slice(this.head);
        this.head = 0;
        this.timer = setTimeout(this.flush, this.backoff.next());
        return;
      }
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
    if (this.halted) return;
    this.queue = [];
    this.head = 0;
    this.backoff.reset();
    this.readyIfRoom();
  };

  private readyIfRoom(): void {
    if (!this.busyReported || this.halted || this.pending + this.awaitingConfirmation >= this.inFlightLimit) return;
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
