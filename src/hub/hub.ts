/**
 * The hub: fans every bus frame out to all attached clients and sends client frames to the bus
 * (and, as a real bus would, to every other client). Each client has its own bounded queue; when
 * it is full the policy decides: `drop` loses the frame for that client only (counted), `kick`
 * disconnects the client (counted). Nothing here waits on a client, so a slow or dead client never
 * delays the bus or the others.
 */
import type { CanFrame } from "../can/frame.ts";
import type { HubPolicy } from "../cli/config.ts";
import type { Logger } from "../ops/log.ts";
import type { ProtocolName, Stats } from "../ops/stats.ts";

/** What the hub needs of a connected client (implemented by server/session.ts). */
export interface HubClient {
  readonly id: number;
  readonly protocol: ProtocolName;
  readonly remote: string;
  /** False until the handshake is done; such clients get no frames. */
  readonly receiving: boolean;
  /** Frames waiting in this client's queue. */
  readonly queued: number;
  /** Frames this client lost to the drop policy. */
  dropped: number;
  /** Whether the client's protocol can carry the frame. */
  accepts(frame: CanFrame): boolean;
  /** Queues a frame; false when the queue is full. */
  enqueue(frame: CanFrame): boolean;
  /** Disconnects the client because it cannot keep up. */
  kick(reason: string): void;
}

/** Where client frames go: the backend. */
export interface BusSink {
  send(frame: CanFrame): void;
}

export interface HubOptions {
  readonly policy: HubPolicy;
  /** Deliver a frame from one client to the other clients too. */
  readonly echoClients: boolean;
  readonly stats: Stats;
  readonly log: Logger;
}

export class Hub {
  private readonly clients = new Set<HubClient>();
  private bus: BusSink | null = null;

  constructor(private readonly opts: HubOptions) {}

  connectBus(bus: BusSink): void {
    this.bus = bus;
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

  /** A frame read from the bus: to every client. */
  fromBus(frame: CanFrame): void {
    this.deliver(frame, null);
  }

  /** A frame sent by a client: to the bus, and to every other client unless echo is off. */
  fromClient(origin: HubClient, frame: CanFrame): void {
    this.bus?.send(frame);
    if (this.opts.echoClients) this.deliver(frame, origin);
  }

  private deliver(frame: CanFrame, except: HubClient | null): void {
    const { stats, policy } = this.opts;
    let fanout = 0;
    for (const c of this.clients) {
      if (c === except || !c.receiving || !c.accepts(frame)) continue;
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
    stats.hubBroadcastFanout = fanout;
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

  /** Clients currently attached, per protocol. */
  countByProtocol(): Map<ProtocolName, number> {
    const m = new Map<ProtocolName, number>();
    for (const c of this.clients) m.set(c.protocol, (m.get(c.protocol) ?? 0) + 1);
    return m;
  }
}
