/**
 * Routes at work (src/route/route.ts has the model): each route is a consumer of its source bus
 * (a hub client for bus frames, the hub's sent hook for client frames the source bus took) and a
 * producer on its destination bus: its own TX lane there, so routed frames get the destination's
 * fair share, rate and -tx-max-age like any client, and its truthful echo. The lane is the
 * route's bounded queue: what it cannot take is dropped and counted (a route has no flow control
 * to push back with, like a UDP peer). A routed frame keeps the time it reached the gateway and
 * counts one more hop; frames at the route's hop limit are not routed (counted), so two routes
 * pointing at each other stop after hop-limit crossings.
 *
 * Counted per route in route_frames_total{route,result}: routed (handed to the destination's
 * lane), sent (on the destination bus), dropped (the destination refused or lost it; its reason
 * in client_tx_dropped_total of that bus), hop_limit, rate_limited.
 */
import type { StampedFrame } from "../can/frame.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import { TokenBucket } from "../hub/token-bucket.ts";
import type { TxLane, TxOrigin } from "../hub/tx-scheduler.ts";
import type { Logger } from "../ops/log.ts";
import { rewriteId, routeAccepts, type RouteConfig } from "./route.ts";

export const ROUTE_RESULTS = ["routed", "sent", "dropped", "hop_limit", "rate_limited"] as const;
export type RouteResult = (typeof ROUTE_RESULTS)[number];

/** What the router needs of a bus. */
export interface RouteBus {
  readonly name: string;
  readonly hub: Hub;
}

export class Route implements HubClient, TxOrigin {
  readonly protocol = "route";
  readonly remote: string;
  /** The route's name (route_frames_total's `route` label). */
  readonly name: string;
  readonly receiving = true;
  /** Client frames of the source bus arrive through its sent hook (also with -echo-clients false). */
  readonly wantsEcho = false;
  dropped = 0;
  readonly counts: Record<RouteResult, number> = { routed: 0, sent: 0, dropped: 0, hop_limit: 0, rate_limited: 0 };
  private readonly lane: TxLane;
  private readonly bucket: TokenBucket | null;
  private readonly unsubscribe: () => void;

  constructor(
    readonly id: number,
    readonly config: RouteConfig,
    private readonly source: RouteBus,
    private readonly dest: RouteBus,
    private readonly log: Logger,
  ) {
    this.name = config.name;
    this.remote = `route:${config.name}`;
    this.bucket = config.rate > 0 ? new TokenBucket(config.rate, Math.max(1, Math.ceil(config.rate / 4)), performance.now()) : null;
    this.lane = dest.hub.openTx(this, false);
    source.hub.attach(this);
    this.unsubscribe = source.hub.onSent((frame, origin) => {
      if (origin !== this) this.enqueue(frame);
    });
    log.info("route_started", { route: config.name, from: source.name, to: dest.name, filters: config.filters.length, hop_limit: config.hopLimit, rate: config.rate });
  }

  get queued(): number {
    return 0;
  }

  accepts(frame: StampedFrame): boolean {
    return routeAccepts(this.config.filters, frame);
  }

  /** A frame of the source bus that passed the filter: to the destination's lane (never refused to the hub). */
  enqueue(frame: StampedFrame): boolean {
    if (!routeAccepts(this.config.filters, frame)) return true;
    if (frame.hops >= this.config.hopLimit) {
      this.counts.hop_limit++;
      return true;
    }
    if (this.bucket !== null && !this.bucket.take(performance.now())) {
      if (this.counts.rate_limited++ === 0) this.log.warn("route_rate_limited", { route: this.config.name, rate: this.config.rate });
      return true;
    }
    const out = this.config.rewrite ? rewriteId(frame, this.config.rewrite) : frame;
    // The destination hub keeps the arrival time and takes the hop (Hub.stamp of a stamped frame).
    const routed: StampedFrame = { canId: out.canId, len: out.len, data: out.data, fd: out.fd, fdFlags: out.fdFlags, ts: frame.ts, bus: this.dest.hub.bus, hops: frame.hops + 1 };
    this.counts.routed++;
    this.lane.send(routed);
    return true;
  }

  /** Counts by result; sent and dropped are the destination lane's own (it settles them later). */
  results(): Record<RouteResult, number> {
    let dropped = 0;
    for (const n of this.lane.dropped.values()) dropped += n;
    return { ...this.counts, sent: this.lane.sent, dropped };
  }

  kick(_reason: string): void {
    // Never kicked: enqueue never refuses (the lane drops and counts).
  }

  stop(): void {
    this.source.hub.detach(this);
    this.unsubscribe();
    this.lane.close();
  }
}

/** Starts every configured route between the named buses; returns them (for metrics and the dashboard). */
export function startRoutes(routes: readonly RouteConfig[], buses: readonly RouteBus[], allocateId: () => number, log: Logger): Route[] {
  const byName = new Map(buses.map((b) => [b.name, b]));
  return routes.map((r) => {
    const from = byName.get(r.from);
    const to = byName.get(r.to);
    if (!from || !to) throw new Error(`route ${r.name}: unknown bus ${!from ? r.from : r.to}`);
    return new Route(allocateId(), r, from, to, log);
  });
}
