/**
 * Client frames on their way to the bus, shared fairly. Every producer (a TCP session, a UDP peer,
 * the MQTT bridge…) gets a TxLane: its own bounded queue. Lanes belong to a TxShare — one per
 * source host (all connections from one address), or one per lane with `-tx-fairness connection`
 * — which holds the token bucket (-client-tx-rate/-client-tx-burst). The scheduler offers the
 * heads of the shares to the backend in round-robin order (and within a share, its lanes in turn),
 * so a flooding host can delay another host's frame by at most one frame per other busy host —
 * never push it out of a shared FIFO, nor multiply its share by opening more connections.
 *
 * Three kinds of producer (TxFlow; issue 18, "shape, don't police"):
 * - paced (TCP sessions): the transport has flow control, so nothing is ever dropped for rate or
 *   queue. A frame waits in the lane until its share has a token; once the lane holds `pauseAt`
 *   frames it reports no room (`hasRoom` false) and the producer stops reading its socket until
 *   `onRoom` (TCP backpressure then paces the client at its share of the bus).
 * - buffered (the default: MQTT commands, the dashboard): no way to push back, but producers that
 *   send a burst now and then (a scene). Frames wait for a token in the lane like paced ones; only
 *   a frame that finds the lane's queueFrames full is dropped (tx_queue_full, counted).
 * - policed (UDP peers): no flow control and a stream that may never stop, so a frame over the
 *   rate (no token at arrival) is dropped as rate_limited and one that finds the lane full as
 *   tx_queue_full — counted.
 *
 * A frame is "sent" only when the backend says it reached the bus (TxRequest.sent(): written, or
 * on SocketCAN confirmed by the kernel); only then is it echoed to the other clients. Frames that
 * cannot go are dropped with a reason and counted per lane and in Stats: read_only, rate_limited,
 * tx_queue_full, unsupported, backend_down, expired (not on the bus within maxAgeMs of reaching the
 * gateway: a stale command is never flushed onto the bus after an outage), write_failed,
 * unconfirmed (written but never confirmed by the bus).
 */
import { stamp, type CanFrame, type StampedFrame } from "../can/frame.ts";
import { systemClock } from "../can/clock.ts";
import type { SendResult, TxLoss, TxRequest } from "../backends/backend.ts";
import { hostOfRemote } from "../net/address.ts";
import type { Logger } from "../ops/log.ts";
import type { Stats, TxDropReason } from "../ops/stats.ts";
import { BoundedQueue } from "./bounded-queue.ts";
import { TokenBucket } from "./token-bucket.ts";

/** What the scheduler needs of the backend. */
export interface TxBus {
  readonly up: boolean;
  txRefusal(frame: CanFrame): string | null;
  send(req: TxRequest): SendResult;
}

/** Who shares one rate and one round-robin turn: a source host (default) or each connection. */
export type TxFairness = "host" | "connection";

export interface TxLimits {
  /** Frames per second per share (host or connection); 0 = unlimited. */
  readonly rate: number;
  /** Token-bucket depth in frames (>= 1). */
  readonly burst: number;
  /** A frame not on the bus this many ms after it reached the gateway is dropped (expired). */
  readonly maxAgeMs: number;
  /** Frames one policed lane may hold while the backend is busy. */
  readonly queueFrames: number;
  /** What one rate and one round-robin turn belong to; default "host". */
  readonly fairness?: TxFairness;
}

/**
 * Frames a paced lane may hold beyond `pauseAt`: what one decode step of the producer can yield
 * after the lane reported no room (a session decodes at most PACED_SLICE_BYTES at a time, and a
 * frame takes at least one byte). Only a producer that ignores hasRoom could exceed it (then the
 * excess is dropped as tx_queue_full, counted).
 */
export const PACED_SLICE_BYTES = 512;

/**
 * Bytes a paced producer decodes per frame of room its lane has left (a Waveshare frame, or a
 * cannelloni frame with 8 data bytes): the slice shrinks with the room, so what one slice adds
 * beyond pauseAt stays about pauseAt, not a fixed 512 bytes (39 frames) per lane.
 */
export const PACED_BYTES_PER_FRAME = 13;

/**
 * The paced lanes of one share hold together at most the frames its rate sends in this fraction
 * of -tx-max-age (each lane its part), so a paced frame waits for its turn far less than
 * -tx-max-age however many connections its host opens; else the round-robin over many full lanes
 * (16 from one host: 16 × 256 frames at 1,908/s) made frames expire, a drop for rate.
 */
const PACED_WAIT_FRACTION = 1 / 4;

/** Who a lane belongs to (for logs and for the echo, which skips the origin). */
export interface TxOrigin {
  readonly id: number;
  readonly protocol: string;
  readonly remote: string;
}

/**
 * paced: the producer honours hasRoom/onRoom (TCP), never dropped for rate or queue; buffered:
 * shaped within queueFrames, dropped only when that is full; policed: dropped over the rate (UDP).
 */
export type TxFlow = "paced" | "buffered" | "policed";

export interface LaneOptions {
  /** A read-only lane's frames are all dropped (outside -tx-allow). */
  readonly readOnly: boolean;
  /** How the lane meets a producer faster than its share (default "buffered"). */
  readonly flow?: TxFlow;
  /** The source host it shares a rate with; default: the host part of origin.remote. */
  readonly host?: string;
}

export type SentHandler = (frame: StampedFrame, origin: TxOrigin) => void;

/** Stamps a client frame as it enters the hub (arrival time and bus, see StampedFrame). */
export type FrameStamper = (frame: CanFrame) => StampedFrame;

/** Flattens counts by reason into log fields `<prefix><reason>`, skipping zeros. */
export function droppedFields(counts: ReadonlyMap<TxDropReason, number>, prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, n] of counts) if (n > 0) out[prefix + reason] = n;
  return out;
}

/** What became of one frame (for producers that answer per frame, e.g. the HTTP API). */
export type TxOutcome = "sent" | TxDropReason;

class TxItem implements TxRequest {
  private done = false;
  /** A token of the share was spent on it (at arrival when policed, at the head when paced). */
  paid = false;
  constructor(
    readonly frame: StampedFrame,
    readonly expiresAt: number,
    readonly lane: TxLane,
    /** Told once what became of this frame, when its producer asked (TxLane.send's `outcome`). */
    readonly outcome: ((o: TxOutcome) => void) | undefined = undefined,
  ) {}

  sent(): void {
    if (this.done) return;
    this.done = true;
    this.lane.scheduler.onSent(this);
  }

  lost(reason: TxLoss): void {
    if (this.done) return;
    this.done = true;
    this.lane.scheduler.onLost(this, reason);
  }
}

/** The lanes of one host (or of one connection): one token bucket, one round-robin turn. */
class TxShare {
  /** Lanes with queued frames, served in turn from `next`. */
  readonly ring: TxLane[] = [];
  next = 0;
  /** In the scheduler's ring. */
  active = false;
  /** Open lanes (the share is forgotten when the last one is settled). */
  lanes = 0;
  constructor(
    readonly key: string,
    readonly bucket: TokenBucket,
    /** Frames its paced lanes may hold together (PACED_WAIT_FRACTION); Infinity without a rate. */
    readonly pacedFrames: number,
  ) {}

  /** The lane whose turn it is, dropping empty lanes from the ring; null if none has frames. */
  current(): TxLane | null {
    while (this.ring.length > 0) {
      if (this.next >= this.ring.length) this.next = 0;
      const lane = this.ring[this.next]!;
      if (lane.queue.length > 0) return lane;
      lane.active = false;
      this.ring.splice(this.next, 1);
    }
    return null;
  }
}

/** One producer's transmit state. */
export class TxLane {
  readonly queue: BoundedQueue<TxItem>;
  /** Frames this lane got onto the bus. */
  sent = 0;
  /** Frames this lane lost, by reason (only reasons that happened). */
  readonly dropped = new Map<TxDropReason, number>();
  /** In its share's ring. */
  active = false;
  /** Accepted by the backend, not yet reported sent or lost. */
  inflight = 0;
  /** Counts when the producer closed (its final log line); null while open. */
  closedWith: { sent: number; dropped: Map<TxDropReason, number> } | null = null;
  readonly readOnly: boolean;
  readonly flow: TxFlow;
  readonly paced: boolean;
  /** The most a paced lane holds on its own (about a burst); see pauseAt. */
  private readonly markAt: number;
  /** Called (in a microtask) when a paced lane that reported no room has room again. */
  onRoom: (() => void) | null = null;
  private full = false;
  private roomScheduled = false;
  private released = false;

  constructor(
    readonly scheduler: TxScheduler,
    readonly origin: TxOrigin,
    readonly share: TxShare,
    opts: LaneOptions,
    limits: TxLimits,
  ) {
    this.readOnly = opts.readOnly;
    this.flow = opts.flow ?? "buffered";
    this.paced = this.flow === "paced" && !opts.readOnly;
    // A paced lane holds about a burst: enough to keep the bus busy between two reads of the
    // socket, little enough that its frames wait far less than -tx-max-age for their turn.
    this.markAt = Math.max(1, Math.min(limits.queueFrames, Math.max(32, limits.burst)));
    this.queue = new BoundedQueue<TxItem>(this.paced ? this.markAt + PACED_SLICE_BYTES : limits.queueFrames);
  }

  /**
   * A paced lane holding this many frames has no room until it is down to `resumeAt`: about a
   * burst, less when its host's other lanes share the host's paced budget (TxShare.pacedFrames).
   */
  get pauseAt(): number {
    return Math.max(1, Math.min(this.markAt, Math.floor(this.share.pacedFrames / Math.max(1, this.share.lanes))));
  }

  get resumeAt(): number {
    return Math.floor(this.pauseAt / 2);
  }

  /** Frames a paced lane takes before it reports no room (Infinity for other lanes). */
  get roomFrames(): number {
    return this.paced ? Math.max(0, this.pauseAt - this.queue.length) : Infinity;
  }

  /** False while a paced producer must not produce (stop reading); onRoom says when to go on. */
  get hasRoom(): boolean {
    return !this.full;
  }

  /**
   * Offers a frame for the bus; false if it was dropped (counted with its reason). `outcome`, if
   * given, is told once what became of the frame: "sent" or the reason it was dropped (also when
   * it was dropped at once).
   */
  /** `maxAgeMs`: this frame's own deadline when shorter than -tx-max-age (a job's lateness allowance). */
  send(frame: CanFrame, outcome?: (o: TxOutcome) => void, maxAgeMs?: number): boolean {
    return this.scheduler.submit(this, frame, outcome, maxAgeMs);
  }

  /**
   * The producer is gone (its log line is written). Frames it already handed over still go to
   * the bus (as TCP delivers what was sent before a close); what becomes of them is logged once
   * they are all settled (`client_tx_settled`), so every frame stays accounted to its client.
   */
  close(): void {
    if (this.closedWith) return;
    this.closedWith = { sent: this.sent, dropped: new Map(this.dropped) };
    this.onRoom = null;
    this.scheduler.settleIfDone(this);
  }

  /** Log fields `<prefix><reason>: count` for the reasons that happened. */
  droppedFields(prefix: string): Record<string, number> {
    return droppedFields(this.dropped, prefix);
  }

  /** After a frame was queued: a paced lane at its mark asks its producer to wait. */
  noteQueued(): void {
    if (this.paced && this.queue.length >= this.pauseAt) this.full = true;
  }

  /** After frames left the queue: a waiting producer is told once it is down to resumeAt. */
  noteTaken(): void {
    if (!this.full || this.queue.length > this.resumeAt) return;
    this.full = false;
    if (this.roomScheduled || this.onRoom === null) return;
    this.roomScheduled = true;
    // Not from inside the scheduler's loop: the producer feeds the lane again at once.
    queueMicrotask(() => {
      this.roomScheduled = false;
      if (!this.full) this.onRoom?.();
    });
  }

  /** Closed and settled: gives up its place in the share (once). */
  release(): boolean {
    if (this.released) return false;
    this.released = true;
    return true;
  }
}

export class TxScheduler {
  private bus: TxBus | null = null;
  /** Shares with queued frames, served round-robin from `next`. */
  private readonly ring: TxShare[] = [];
  private next = 0;
  private readonly shares = new Map<string, TxShare>();
  private nextPrivateShare = 0;
  /** The backend answered "busy": wait for txReady() before offering more. */
  private busy = false;
  private pumping = false;
  private sweepTimer: ReturnType<typeof setTimeout> | null = null;
  /** Every waiting share is out of tokens: pump again when the first one has one. */
  private tokenTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly limits: TxLimits,
    private readonly stats: Stats,
    private readonly log: Logger,
    private readonly onFrameSent: SentHandler,
    /** The hub's stamp: a client frame's time is when it entered, not when the bus took it. */
    private readonly stampFrame: FrameStamper = (f) => stamp(f, systemClock.nowUs(), 0),
  ) {}

  connect(bus: TxBus): void {
    this.bus = bus;
  }

  openLane(origin: TxOrigin, opts: LaneOptions): TxLane {
    const key = (this.limits.fairness ?? "host") === "connection" ? `#${this.nextPrivateShare++}` : `host:${opts.host ?? hostOfRemote(origin.remote)}`;
    let share = this.shares.get(key);
    if (share === undefined) {
      const { rate, maxAgeMs } = this.limits;
      const pacedFrames = rate > 0 ? Math.max(1, Math.floor((rate * maxAgeMs * PACED_WAIT_FRACTION) / 1000)) : Infinity;
      share = new TxShare(key, new TokenBucket(rate, this.limits.burst, performance.now()), pacedFrames);
      this.shares.set(key, share);
    }
    share.lanes++;
    return new TxLane(this, origin, share, opts, this.limits);
  }

  /** Frames waiting in all lanes. */
  get queued(): number {
    let n = 0;
    for (const s of this.ring) for (const l of s.ring) n += l.queue.length;
    return n;
  }

  /** Shares (hosts, or connections) with an open lane: for tests and status. */
  get shareCount(): number {
    return this.shares.size;
  }

  submit(lane: TxLane, frame: CanFrame, outcome?: (o: TxOutcome) => void, maxAgeMs = Infinity): boolean {
    const bus = this.bus;
    const refuse = (reason: TxDropReason): false => {
      outcome?.(reason);
      return this.drop(lane, reason, 1);
    };
    if (lane.readOnly) return refuse("read_only");
    if (bus === null || !bus.up) return refuse("backend_down");
    const refusal = bus.txRefusal(frame);
    if (refusal !== null) {
      if (this.log.enabled("debug")) this.log.debug("tx_refused", { conn_id: lane.origin.id, reason: refusal });
      return refuse("unsupported");
    }
    const now = performance.now();
    // A full lane is checked first, so a frame that cannot be queued does not spend a token.
    // A paced lane is full only if its producer ignored hasRoom.
    if (lane.queue.isFull()) return refuse("tx_queue_full");
    const item = new TxItem(this.stampFrame(frame), now + Math.min(this.limits.maxAgeMs, maxAgeMs), lane, outcome);
    if (lane.flow === "policed") {
      // No flow control: over the rate is dropped now rather than queued.
      if (!lane.share.bucket.take(now)) return refuse("rate_limited");
      item.paid = true;
    }
    lane.queue.offer(item);
    lane.noteQueued();
    if (!lane.active) {
      lane.active = true;
      lane.share.ring.push(lane);
    }
    if (!lane.share.active) {
      lane.share.active = true;
      this.ring.push(lane.share);
    }
    this.pump();
    return true;
  }

  /** The backend has room again. */
  ready(): void {
    this.busy = false;
    this.pump();
  }

  /** The backend went down: everything waiting is lost (counted). */
  busDown(): void {
    for (const share of this.ring) {
      for (const lane of share.ring) {
        const n = lane.queue.length;
        for (let i = 0; i < n; i++) lane.queue.poll()?.outcome?.("backend_down");
        lane.active = false;
        if (n > 0) this.drop(lane, "backend_down", n);
        lane.noteTaken();
      }
      share.ring.length = 0;
      share.next = 0;
      share.active = false;
      // Its last lane may have settled above (closed, frames now dropped) while the share was
      // still active, which kept it: forget it now, as pump() does for an emptied share.
      if (share.lanes === 0) this.shares.delete(share.key);
    }
    this.ring.length = 0;
    this.next = 0;
    this.busy = false;
    this.clearSweep();
    this.clearTokenTimer();
  }

  /**
   * Offers share heads to the backend, round-robin, until all are empty, the backend is busy, or
   * every share with frames waits for a token (then a timer resumes at the first token).
   */
  private pump(): void {
    if (this.pumping || this.busy || this.bus === null) return;
    this.pumping = true;
    const bus = this.bus;
    // Shares passed over in a row because they had no token; a full round of them ends the pump.
    let starved = 0;
    let waitMs = Infinity;
    try {
      while (this.ring.length > 0) {
        if (this.next >= this.ring.length) this.next = 0;
        const share = this.ring[this.next]!;
        const lane = share.current();
        if (lane === null) {
          share.active = false;
          this.ring.splice(this.next, 1);
          if (share.lanes === 0) this.shares.delete(share.key);
          continue;
        }
        const item = lane.queue.peek()!;
        const now = performance.now();
        if (now > item.expiresAt) {
          lane.queue.poll();
          item.outcome?.("expired");
          this.drop(lane, "expired", 1);
          lane.noteTaken();
          starved = 0;
          continue;
        }
        if (!item.paid) {
          if (!share.bucket.take(now)) {
            waitMs = Math.min(waitMs, share.bucket.waitMs(now));
            this.next++;
            if (++starved >= this.ring.length) {
              this.armTokenTimer(waitMs);
              break;
            }
            continue;
          }
          item.paid = true;
        }
        starved = 0;
        // Out of the lane before the backend sees it: a backend that goes down inside send()
        // (busDown clears the lanes) must not find, and count, this frame a second time.
        // In flight before send(): a backend may report sent()/lost() before it returns.
        lane.queue.poll();
        lane.inflight++;
        const result = bus.send(item);
        if (result !== "accepted") lane.inflight--;
        if (result === "busy") {
          lane.queue.unshift(item); // room: it was just taken out (its token stays spent on it)
          this.busy = true;
          this.armSweep();
          return;
        }
        lane.noteTaken();
        if (result === "down") {
          item.outcome?.("backend_down");
          this.drop(lane, "backend_down", 1);
        } else if (result === "unsupported") {
          item.outcome?.("unsupported");
          this.drop(lane, "unsupported", 1);
        }
        share.next++;
        this.next++;
      }
      if (this.ring.length === 0) this.clearTokenTimer();
      this.clearSweep();
    } finally {
      this.pumping = false;
    }
  }

  onSent(item: TxItem): void {
    const lane = item.lane;
    lane.inflight--;
    lane.sent++;
    this.stats.clientTxSent++;
    item.outcome?.("sent");
    this.onFrameSent(item.frame, lane.origin);
    if (lane.closedWith) this.settleIfDone(lane);
  }

  onLost(item: TxItem, reason: TxLoss): void {
    item.lane.inflight--;
    item.outcome?.(reason);
    this.drop(item.lane, reason, 1);
  }

  /** A closed lane with nothing left in flight: log what happened to its frames since the close. */
  settleIfDone(lane: TxLane): void {
    const at = lane.closedWith;
    if (at === null || lane.queue.length > 0 || lane.inflight > 0) return;
    if (lane.release() && --lane.share.lanes === 0 && !lane.share.active) this.shares.delete(lane.share.key);
    const sent = lane.sent - at.sent;
    const dropped = new Map<TxDropReason, number>();
    for (const [reason, n] of lane.dropped) if (n !== (at.dropped.get(reason) ?? 0)) dropped.set(reason, n - (at.dropped.get(reason) ?? 0));
    if (sent === 0 && dropped.size === 0) return;
    at.sent = lane.sent;
    at.dropped = new Map(lane.dropped);
    const o = lane.origin;
    this.log.info("client_tx_settled", { conn_id: o.id, remote: o.remote, protocol: o.protocol, bus_tx_frames: sent, ...droppedFields(dropped, "bus_tx_dropped_") });
  }

  private drop(lane: TxLane, reason: TxDropReason, n: number): false {
    const { stats } = this;
    stats.txDrop(reason, n);
    if (reason === "backend_down" || reason === "unsupported" || reason === "expired" || reason === "write_failed" || reason === "unconfirmed") {
      stats.backendTxDropped += n;
    }
    if (reason === "backend_down") stats.error("backend_down_tx", n);
    else if (reason === "unsupported") stats.error("backend_unsupported_frame", n);
    const before = lane.dropped.get(reason) ?? 0;
    lane.dropped.set(reason, before + n);
    if (before === 0) {
      // Once per client and reason, so a flood costs one line, not one per frame.
      this.log.warn("client_tx_dropping", { conn_id: lane.origin.id, remote: lane.origin.remote, protocol: lane.origin.protocol, reason });
    }
    // Every way a frame ends passes here or through onSent(): a closed lane settles once empty.
    if (lane.closedWith) this.settleIfDone(lane);
    return false;
  }

  /**
   * While the backend is busy, expired frames are still dropped and counted on time, and the
   * backend is offered frames again (a safety net should a txReady() never come).
   */
  private armSweep(): void {
    if (this.sweepTimer !== null) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = null;
      const now = performance.now();
      for (const share of this.ring) {
        for (const lane of share.ring) {
          let n = 0;
          for (let head = lane.queue.peek(); head !== undefined && now > head.expiresAt; head = lane.queue.peek()) {
            lane.queue.poll();
            head.outcome?.("expired");
            this.drop(lane, "expired", 1);
            n++;
          }
          if (n > 0) lane.noteTaken();
        }
      }
      this.busy = false;
      this.pump();
    }, Math.max(1, Math.min(this.limits.maxAgeMs, 250)));
  }

  private clearSweep(): void {
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
  }

  private armTokenTimer(waitMs: number): void {
    if (this.tokenTimer !== null) return;
    this.tokenTimer = setTimeout(
      () => {
        this.tokenTimer = null;
        this.pump();
      },
      Math.max(1, Math.ceil(Number.isFinite(waitMs) ? waitMs : 1)),
    );
  }

  private clearTokenTimer(): void {
    if (this.tokenTimer !== null) clearTimeout(this.tokenTimer);
    this.tokenTimer = null;
  }
}
