/**
 * The hub: fans every bus frame out to all attached clients, and takes client frames to the bus
 * through the fair TX scheduler (./tx-scheduler.ts). Each client has its own bounded queue; when
 * it is full the policy decides: `drop` loses the frame for that client only (counted), `kick`
 * disconnects the client (counted). Nothing here waits on a client, so a slow or dead client never
 * delays the bus or the others.
 *
 * Echo is truthful: a client frame reaches the other clients only once the backend reports it
 * written to the bus (a real bus shows every node what was really on it), never a frame the bus
 * refused, dropped or let expire.
 */
import { isStamped, stamp, type CanFrame, type StampedFrame } from "../can/frame.ts";
import { systemClock, type WallClock } from "../can/clock.ts";
import type { Logger } from "../ops/log.ts";
import type { Stats } from "../ops/stats.ts";
import { TxScheduler, type TxBus, type TxFlow, type TxLane, type TxLimits, type TxOrigin } from "./tx-scheduler.ts";

export type HubPolicy = "drop" | "kick";

/** What the hub needs of a consumer of bus frames (TCP session, UDP peer, recorder, viewer…). */
export interface HubClient extends TxOrigin {
  /** False until the client may be sent frames (e.g. handshake done); such clients are skipped. */
  readonly receiving: boolean;
  /** Frames waiting in this client's queue. */
  readonly queued: number;
  /** Frames this client lost to the drop policy. */
  dropped: number;
  /** Whether the client can (and wants to) be sent the frame (protocol support, filters). */
  accepts(frame: StampedFrame): boolean;
  /** Queues a frame; false when the queue is full. */
  enqueue(frame: StampedFrame): boolean;
  /** Disconnects the client because it cannot keep up. */
  kick(reason: string): void;
  /**
   * False: this consumer is not given other clients' frames as echo (they reach it, marked as
   * client frames, through Hub.onSent instead — the recorder writes them as `T`). Default true.
   */
  readonly wantsEcho?: boolean;
}

/** Told of every client frame the backend wrote to the bus. */
export type SentListener = (frame: StampedFrame, origin: TxOrigin) => void;

export interface HubOptions {
  readonly policy: HubPolicy;
  /** Deliver a frame from one client to the other clients too, once it is on the bus. */
  readonly echoClients: boolean;
  readonly tx: TxLimits;
  readonly stats: Stats;
  readonly log: Logger;
  /** The clock frames are stamped with at ingress (src/can/clock.ts); the system clock by default. */
  readonly clock?: WallClock;
  /** This hub's bus: its index in the gateway's bus set, carried in every frame (StampedFrame.bus). */
  readonly bus?: number;
}

export class Hub {
  private readonly clients = new Set<HubClient>();
  private readonly tx: TxScheduler;
  private readonly sentListeners = new Set<SentListener>();

  /** The clock frames are stamped with (sessions state other times on it, e.g. GVRET time sync). */
  readonly clock: WallClock;
  /** This hub's bus index (StampedFrame.bus). */
  readonly bus: number;

  constructor(private readonly opts: HubOptions) {
    this.clock = opts.clock ?? systemClock;
    this.bus = opts.bus ?? 0;
    this.tx = new TxScheduler(
      opts.tx,
      opts.stats,
      opts.log,
      (frame, origin) => {
        if (this.opts.echoClients) this.deliver(frame, origin, true);
        for (const l of this.sentListeners) l(frame, origin);
      },
      (frame) => this.stamp(frame),
    );
  }

  /**
   * The one place a frame gets its time and bus. A frame that already has a time (a routed frame
   * from another bus, src/route/router.ts) keeps it and its hop count and takes this bus.
   */
  stamp(frame: CanFrame): StampedFrame {
    if (isStamped(frame)) return stamp(frame, frame.ts, this.bus, frame.hops);
    return stamp(frame, this.clock.nowUs(), this.bus);
  }

  /** Subscribes to client frames written to the bus; returns the unsubscribe function. */
  onSent(listener: SentListener): () => void {
    this.sentListeners.add(listener);
    return () => this.sentListeners.delete(listener);
  }

  connectBus(bus: TxBus): void {
    this.tx.connect(bus);
  }

  attach(client: HubClient): void {
    this.clients.add(client);
  }

  detach(client: HubClient): void {
    this.clients.delete(client);
  }

  get size(): number {
    return this.clients.size;
  }

  /** All attached clients (for status pages); do not mutate. */
  get attached(): ReadonlySet<HubClient> {
    return this.clients;
  }

  /**
   * A producer's way to the bus. Frames it sends are dropped and counted if readOnly. `flow`
   * (./tx-scheduler.ts): a paced producer (TCP) stops reading while lane.hasRoom is false and goes
   * on at lane.onRoom; a buffered one (default) is shaped within its queue; a policed one (UDP)
   * loses what is over the rate.
   */
  openTx(origin: TxOrigin, readOnly: boolean, flow: TxFlow = "buffered"): TxLane {
    return this.tx.openLane(origin, { readOnly, flow });
  }

  /** Client frames waiting for the backend, over all lanes. */
  get txQueued(): number {
    return this.tx.queued;
  }

  /** The backend has room again after answering "busy". */
  busReady(): void {
    this.tx.ready();
  }

  /** The backend went down or up; frames waiting for it are dropped when it goes down. */
  busState(up: boolean): void {
    if (!up) this.tx.busDown();
    else this.tx.ready();
  }

  /** A frame read from the bus: stamped now (it has just reached the gateway), to every client. */
  fromBus(frame: CanFrame): void {
    this.deliver(this.stamp(frame), null, false);
  }

  private deliver(frame: StampedFrame, except: TxOrigin | null, echo: boolean): void {
    const { stats, policy } = this.opts;
    let fanout = 0;
    for (const c of this.clients) {
      if (c === except || !c.receiving || !c.accepts(frame)) continue;
      if (echo && c.wantsEcho === false) continue;
      fanout++;
      if (c.enqueue(frame)) continue;
      if (policy === "kick") {
        stats.hubKickedClients++;
        this.clients.delete(c);
        this.opts.log.warn("client_kicked", { conn_id: c.id, remote: c.remote, protocol: c.protocol, reason: "queue full", queued: c.queued });
        c.kick("queue full");
      } else {
        stats.hubDroppedFrames++;
        if (c.dropped++ === 0) {
          this.opts.log.warn("client_dropping", { conn_id: c.id, remote: c.remote, protocol: c.protocol, reason: "queue full", queued: c.queued });
        }
      }
    }
    // The gauge is about bus frames: an echo (every client but its sender) must not overwrite it.
    if (!echo) stats.hubBroadcastFanout = fanout;
  }

  /** Queue depth over all clients, for the hub_queue_depth_* gauges. */
  queueDepth(): { max: number; avg: number } {
    let max = 0;
    let sum = 0;
    for (const c of this.clients) {
      const q = c.queued;
      sum += q;
      if (q > max) max = q;
    }
    return { max, avg: this.clients.size === 0 ? 0 : sum / this.clients.size };
  }

  /** Clients currently attached, per protocol (or consumer kind). */
  countByProtocol(): Map<string, number> {
    const m = new Map<string, number>();
    for (const c of this.clients) m.set(c.protocol, (m.get(c.protocol) ?? 0) + 1);
    return m;
  }
}
