/**
 * Client frames on their way to the bus, shared fairly. Every producer (a TCP session, a UDP peer,
 * the MQTT bridge…) gets a TxLane: its own bounded queue and token bucket. The scheduler offers
 * the heads of the lanes to the backend in round-robin order, so a flooding client can delay
 * another client's frame by at most one frame per other busy lane — never push it out of a shared
 * FIFO. A frame is "sent" only when the backend says it reached the bus (TxRequest.sent(): written,
 * or on SocketCAN confirmed by the kernel); only then is it echoed to the other clients. Frames
 * that cannot go are dropped with a reason and counted per lane and in Stats: read_only,
 * rate_limited, tx_queue_full, unsupported, backend_down, expired (older than maxAgeMs: a stale
 * command is never flushed onto the bus after an outage), write_failed, unconfirmed (written but
 * never confirmed by the bus).
 */
import { stamp, type CanFrame, type StampedFrame } from "../can/frame.ts";
import { systemClock } from "../can/clock.ts";
import type { SendResult, TxLoss, TxRequest } from "../backends/backend.ts";
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

export interface TxLimits {
  /** Frames per second per lane; 0 = unlimited. */
  readonly rate: number;
  /** Token-bucket depth in frames (>= 1). */
  readonly burst: number;
  /** A frame not on the bus this many ms after it arrived is dropped (expired). */
  readonly maxAgeMs: number;
  /** Frames one lane may hold while the backend is busy. */
  readonly queueFrames: number;
}

/** Who a lane belongs to (for logs and for the echo, which skips the origin). */
export interface TxOrigin {
  readonly id: number;
  readonly protocol: string;
  readonly remote: string;
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

class TxItem implements TxRequest {
  private done = false;
  constructor(
    readonly frame: StampedFrame,
    readonly expiresAt: number,
    readonly lane: TxLane,
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

/** One producer's transmit state. */
export class TxLane {
  readonly queue: BoundedQueue<TxItem>;
  readonly bucket: TokenBucket;
  /** Frames this lane got onto the bus. */
  sent = 0;
  /** Frames this lane lost, by reason (only reasons that happened). */
  readonly dropped = new Map<TxDropReason, number>();
  /** In the scheduler's round-robin ring. */
  active = false;
  /** Accepted by the backend, not yet reported sent or lost. */
  inflight = 0;
  /** Counts when the producer closed (its final log line); null while open. */
  closedWith: { sent: number; dropped: Map<TxDropReason, number> } | null = null;

  constructor(
    readonly scheduler: TxScheduler,
    readonly origin: TxOrigin,
    /** A read-only lane's frames are all dropped (outside -tx-allow). */
    readonly readOnly: boolean,
    limits: TxLimits,
  ) {
    this.queue = new BoundedQueue<TxItem>(limits.queueFrames);
    this.bucket = new TokenBucket(limits.rate, limits.burst, performance.now());
  }

  /** Offers a frame for the bus; false if it was dropped (counted with its reason). */
  send(frame: CanFrame): boolean {
    return this.scheduler.submit(this, frame);
  }

  /**
   * The producer is gone (its log line is written). Frames it already handed over still go to
   * the bus (as TCP delivers what was sent before a close); what becomes of them is logged once
   * they are all settled (`client_tx_settled`), so every frame stays accounted to its client.
   */
  close(): void {
    if (this.closedWith) return;
    this.closedWith = { sent: this.sent, dropped: new Map(this.dropped) };
    this.scheduler.settleIfDone(this);
  }

  /** Log fields `<prefix><reason>: count` for the reasons that happened. */
  droppedFields(prefix: string): Record<string, number> {
    return droppedFields(this.dropped, prefix);
  }
}

export class TxScheduler {
  private bus: TxBus | null = null;
  /** Lanes with queued frames, served round-robin from `next`. */
  private readonly ring: TxLane[] = [];
  private next = 0;
  /** The backend answered "busy": wait for txReady() before offering more. */
  private busy = false;
  private pumping = false;
  private sweepTimer: ReturnType<typeof setTimeout> | null = null;

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

  openLane(origin: TxOrigin, readOnly: boolean): TxLane {
    return new TxLane(this, origin, readOnly, this.limits);
  }

  /** Frames waiting in all lanes. */
  get queued(): number {
    let n = 0;
    for (const l of this.ring) n += l.queue.length;
    return n;
  }

  submit(lane: TxLane, frame: CanFrame): boolean {
    const bus = this.bus;
    if (lane.readOnly) return this.drop(lane, "read_only", 1);
    if (bus === null || !bus.up) return this.drop(lane, "backend_down", 1);
    const refusal = bus.txRefusal(frame);
    if (refusal !== null) {
      if (this.log.enabled("debug")) this.log.debug("tx_refused", { conn_id: lane.origin.id, reason: refusal });
      return this.drop(lane, "unsupported", 1);
    }
    const now = performance.now();
    // A full lane is checked first, so a frame that cannot be queued does not spend a token.
    if (lane.queue.isFull()) return this.drop(lane, "tx_queue_full", 1);
    if (!lane.bucket.take(now)) return this.drop(lane, "rate_limited", 1);
    lane.queue.offer(new TxItem(this.stampFrame(frame), now + this.limits.maxAgeMs, lane));
    if (!lane.active) {
      lane.active = true;
      this.ring.push(lane);
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
    for (const lane of this.ring) {
      const n = lane.queue.length;
      lane.queue.clear();
      lane.active = false;
      if (n > 0) this.drop(lane, "backend_down", n);
    }
    this.ring.length = 0;
    this.next = 0;
    this.busy = false;
    this.clearSweep();
  }

  /** Offers lane heads to the backend, round-robin, until all are empty or the backend is busy. */
  private pump(): void {
    if (this.pumping || this.busy || this.bus === null) return;
    this.pumping = true;
    const bus = this.bus;
    try {
      while (this.ring.length > 0) {
        if (this.next >= this.ring.length) this.next = 0;
        const lane = this.ring[this.next]!;
        const item = lane.queue.peek();
        if (item === undefined) {
          lane.active = false;
          this.ring.splice(this.next, 1);
          continue;
        }
        if (performance.now() > item.expiresAt) {
          lane.queue.poll();
          this.drop(lane, "expired", 1);
          continue;
        }
        // Out of the lane before the backend sees it: a backend that goes down inside send()
        // (busDown clears the lanes) must not find, and count, this frame a second time.
        // In flight before send(): a backend may report sent()/lost() before it returns.
        lane.queue.poll();
        lane.inflight++;
        const result = bus.send(item);
        if (result !== "accepted") lane.inflight--;
        if (result === "busy") {
          lane.queue.unshift(item); // room: it was just taken out
          this.busy = true;
          this.armSweep();
          return;
        }
        if (result === "down") this.drop(lane, "backend_down", 1);
        else if (result === "unsupported") this.drop(lane, "unsupported", 1);
        this.next++;
      }
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
    this.onFrameSent(item.frame, lane.origin);
    if (lane.closedWith) this.settleIfDone(lane);
  }

  onLost(item: TxItem, reason: TxLoss): void {
    item.lane.inflight--;
    this.drop(item.lane, reason, 1);
  }

  /** A closed lane with nothing left in flight: log what happened to its frames since the close. */
  settleIfDone(lane: TxLane): void {
    const at = lane.closedWith;
    if (at === null || lane.queue.length > 0 || lane.inflight > 0) return;
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
      for (const lane of this.ring) {
        for (let head = lane.queue.peek(); head !== undefined && now > head.expiresAt; head = lane.queue.peek()) {
          lane.queue.poll();
          this.drop(lane, "expired", 1);
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
}
