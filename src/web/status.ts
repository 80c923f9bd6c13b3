/**
 * The dashboard's status snapshot (`/api/status` and the WebSocket's once-a-second "status"):
 * backend and its state, uptime, version, listeners, bus load against the configured bit rate,
 * frames/s, every client (TCP sessions in the registry, and the in-process consumers attached
 * to the hub), the last disconnections, and the consumers' counters; and the rate history
 * (history.ts) a new page draws at once. Addresses in one form (an IPv4 client of a dual-stack
 * socket, `[::ffff:1.2.3.4]:5`, reads as `1.2.3.4:5`, as the TCP listeners report it). Plain
 * data, no I/O.
 */
import type { Gateway } from "../gateway.ts";
import type { BuildInfo } from "../ops/build-info.ts";
import type { Stats } from "../ops/stats.ts";
import type { ConsumerCounters } from "../capture/counters.ts";
import type { ClientSession } from "../server/session.ts";
import type { WebBus } from "./bus.ts";
import type { HubClient } from "../hub/hub.ts";
import { systemClock } from "../can/clock.ts";
import { RateHistory } from "./history.ts";
import { describeRoute, type RouteView } from "../route/describe.ts";
import { ROUTE_RESULTS, type RouteResult } from "../route/router.ts";

/** A route on the dashboard: its view (src/route/describe.ts) and its frames/s by result over the last second. */
export interface RouteRow extends RouteView {
  readonly perSecond: Record<RouteResult, number>;
}

/** One address form on the page: IPv4-mapped IPv6 (`[::ffff:1.2.3.4]:5`) as plain IPv4 (`1.2.3.4:5`). */
export function displayRemote(remote: string): string {
  const m = /^\[::ffff:(\d+\.\d+\.\d+\.\d+)\]:(\d+)$/i.exec(remote) ?? /^::ffff:(\d+\.\d+\.\d+\.\d+):(\d+)$/i.exec(remote);
  return m ? `${m[1]}:${m[2]}` : remote;
}

export interface ClientRow {
  id: number;
  /** The bus it is a client of ("" = every bus, e.g. GVRET or the recorder with several buses). */
  bus: string;
  protocol: string;
  remote: string;
  connectedAt: number;
  rx: number;
  tx: number;
  dropped: number;
  queued: number;
  state: string;
}

export interface LeftRow {
  id: number;
  protocol: string;
  remote: string;
  connectedAt: number;
  leftAt: number;
  rx: number;
  tx: number;
  dropped: number;
  reason: string;
}

const KEEP_LEFT = 20;

function sessionRow(s: ClientSession): ClientRow {
  return {
    id: s.id,
    bus: s.bus,
    protocol: s.protocol,
    remote: displayRemote(s.remote),
    connectedAt: s.connectedAt,
    rx: s.rxFrames,
    tx: s.txFrames,
    dropped: s.dropped,
    queued: s.queued,
    state: !s.established ? "handshake" : s.readOnly ? "read-only" : "streaming",
  };
}

/** Why a session closed, as the session says. */
function closeReason(s: ClientSession): string {
  return s.closeReason ?? "closed";
}

export class StatusTracker {
  /** Monotonic: uptime is an interval. */
  private readonly startedAt = performance.now();
  /** Wall-clock start (ms since the epoch): the "since" of consumers that keep no time of their own. */
  private readonly startedAtMs = Math.floor(systemClock.nowUs() / 1000);
  private prev = { t: performance.now(), frames: 0, bits: 0, clientTx: 0 };
  private rates = { inFps: 0, outFps: 0, bps: 0 };
  /** Per bus (several buses): the previous counts and the rates, by bus index. */
  private busPrev: { frames: number; bits: number; clientTx: number }[] = [];
  private busRates: { inFps: number; outFps: number; bps: number }[] = [];
  /** The last minutes of rates, one sample a second (a new page draws them at once): all buses together. */
  readonly history = new RateHistory();
  /** The same per bus (by bus index), for the chart of the bus chosen in the selector. */
  readonly busHistory: RateHistory[];
  /** Each route's counts at the previous sample and its rates since (by route index). */
  private routePrev: Record<RouteResult, number>[] = [];
  private routeRates: Record<RouteResult, number>[] = [];
  /** When `rates` were computed (ms since the epoch): the time of the newest history sample. */
  private ratesAt = Math.floor(systemClock.nowUs() / 1000);
  private known = new Map<ClientSession, ClientRow>();
  private readonly left: LeftRow[] = [];

  constructor(
    private readonly gateway: Gateway,
    private readonly stats: Stats,
    private readonly build: BuildInfo,
    private readonly counters: ConsumerCounters,
    private readonly web: WebBus,
    private readonly bitrate: number,
    private readonly echoClients: boolean,
  ) {
    this.busHistory = gateway.buses.map(() => new RateHistory());
  }

  /** The rate history of the named bus, or of all buses together (no name); undefined for an unknown bus. */
  historyOf(bus?: string | null): RateHistory | undefined {
    if (bus === undefined || bus === null || bus === "") return this.history;
    const i = this.gateway.buses.findIndex((b) => b.name === bus);
    return i < 0 ? undefined : this.busHistory[i];
  }

  /** Advances the rate window (call about once a second). */
  sample(): number {
    const now = performance.now();
    const dt = (now - this.prev.t) / 1000;
    if (dt <= 0) return 0;
    const frames = this.web.frames - this.prev.frames;
    const out = this.stats.clientTxSent - this.prev.clientTx;
    // Echoed client frames reach the meter too: they are "out", not "in".
    const inFrames = this.echoClients ? Math.max(0, frames - out) : frames;
    this.rates = { inFps: inFrames / dt, outFps: out / dt, bps: (this.web.bits - this.prev.bits) / dt };
    this.ratesAt = Math.floor(systemClock.nowUs() / 1000);
    this.history.push({ t: this.ratesAt, inFps: this.rates.inFps, outFps: this.rates.outFps, load: this.busLoad().load });
    this.prev = { t: now, frames: this.web.frames, bits: this.web.bits, clientTx: this.stats.clientTxSent };
    this.sampleBuses(dt);
    this.sampleRoutes(dt);
    this.trackSessions();
    return dt;
  }

  /** Each bus's rates from its own meter and counters. */
  private sampleBuses(dt: number): void {
    this.gateway.buses.forEach((b, i) => {
      const m = this.web.meters[i];
      if (!m) return;
      const prev = this.busPrev[i] ?? { frames: 0, bits: 0, clientTx: 0 };
      const frames = m.frames - prev.frames;
      const out = b.stats.clientTxSent - prev.clientTx;
      const inFrames = this.echoClients ? Math.max(0, frames - out) : frames;
      this.busRates[i] = { inFps: inFrames / dt, outFps: out / dt, bps: (m.bits - prev.bits) / dt };
      this.busPrev[i] = { frames: m.frames, bits: m.bits, clientTx: b.stats.clientTxSent };
      const r = this.busRates[i]!;
      const raw = b.bitrate > 0 ? r.bps / b.bitrate : 0;
      this.busHistory[i]?.push({ t: this.ratesAt, inFps: r.inFps, outFps: r.outFps, load: Math.min(1, raw) });
    });
  }

  /** Each route's frames/s by result from its counters. */
  private sampleRoutes(dt: number): void {
    this.gateway.routes.forEach((route, i) => {
      const now = route.results();
      const prev = this.routePrev[i] ?? now;
      const rates = {} as Record<RouteResult, number>;
      for (const k of ROUTE_RESULTS) rates[k] = Math.max(0, now[k] - prev[k]) / dt;
      this.routeRates[i] = rates;
      this.routePrev[i] = now;
    });
  }

  /** Every route with its counts and rates (the dashboard's Routes panel; empty without routes). */
  routesSnapshot(): RouteRow[] {
    const zero = Object.fromEntries(ROUTE_RESULTS.map((k) => [k, 0])) as Record<RouteResult, number>;
    return this.gateway.routes.map((r, i) => ({ ...describeRoute(r), perSecond: this.routeRates[i] ?? zero }));
  }

  /** Every bus: its backend, bit rate, rates and load (the dashboard's bus selector shows one). */
  private busesSnapshot(): object[] {
    return this.gateway.buses.map((b, i) => {
      const rates = this.busRates[i] ?? { inFps: 0, outFps: 0, bps: 0 };
      const raw = b.bitrate > 0 ? rates.bps / b.bitrate : 0;
      return {
        name: b.name,
        backend: { kind: b.backend.kind, up: b.backend.up, reason: b.backend.downReason, reconnects: b.stats.backendReconnects },
        bitrate: b.bitrate,
        rates,
        busLoad: Math.min(1, raw),
        busLoadOver: raw > 1.005,
        listeners: b.listeners.map((l) => ({ protocol: l.protocol.name, port: l.port })),
        ids: this.web.meters[i]?.ids.size ?? 0,
      };
    });
  }

  private trackSessions(): void {
    const now = new Map<ClientSession, ClientRow>();
    for (const s of this.gateway.registry.sessions) now.set(s, sessionRow(s));
    for (const [s, row] of this.known) {
      if (now.has(s)) continue;
      const fresh = sessionRow(s);
      this.left.unshift({ id: row.id, protocol: row.protocol, remote: row.remote, connectedAt: row.connectedAt, leftAt: Date.now(), rx: fresh.rx, tx: fresh.tx, dropped: fresh.dropped, reason: closeReason(s) });
    }
    this.left.length = Math.min(this.left.length, KEEP_LEFT);
    this.known = now;
  }

  /**
   * Bus load against the nominal bit rate, at most 1. The meter can see more bits than the wire
   * carries: a virtual bus has no wire (clients can together offer more than -bitrate), a replay
   * plays a log at -replay-speed or from a faster bus, or -bitrate is set lower than the real
   * bus. Then `over` is true and the page says the offered load exceeds the nominal rate.
   */
  busLoad(): { load: number; over: boolean } {
    if (this.bitrate <= 0) return { load: 0, over: false };
    const raw = this.rates.bps / this.bitrate;
    return { load: Math.min(1, raw), over: raw > 1.005 };
  }

  snapshot(): object {
    const g = this.gateway;
    const clients: ClientRow[] = [...g.registry.sessions].map(sessionRow);
    const sessionIds = new Set(clients.map((c) => c.id));
    // In-process consumers of each bus; one attached to every bus (recorder, dashboard meter) is one row, bus "".
    const consumers = new Map<number, { c: HubClient; buses: string[] }>();
    for (const b of g.buses) {
      for (const c of b.hub.attached) {
        if (sessionIds.has(c.id)) continue;
        const e = consumers.get(c.id);
        if (e) e.buses.push(b.name);
        else consumers.set(c.id, { c, buses: [b.name] });
      }
    }
    for (const { c, buses } of consumers.values()) {
      const at = "connectedAt" in c && typeof c.connectedAt === "number" ? c.connectedAt : this.startedAtMs;
      const tx = "txFrames" in c && typeof c.txFrames === "number" ? c.txFrames : 0;
      const bus = buses.length === 1 ? buses[0]! : "";
      clients.push({ id: c.id, bus, protocol: c.protocol, remote: displayRemote(c.remote), connectedAt: at, rx: 0, tx, dropped: c.dropped, queued: c.queued, state: "consumer" });
    }
    for (const v of this.web.viewers) {
      clients.push({ id: v.id, bus: this.web.busNames[v.bus] ?? "", protocol: "web-viewer", remote: displayRemote(v.remote), connectedAt: v.connectedAt, rx: 0, tx: v.txFrames, dropped: v.dropped, queued: v.queue.length, state: `browser (${v.sampled} sampled)` });
    }
    return {
      type: "status",
      version: this.build.version,
      commit: this.build.commit,
      // The frame clock (the frames' times on the page are StampedFrame.ts), in ms.
      now: Math.floor(systemClock.nowUs() / 1000),
      uptimeS: (performance.now() - this.startedAt) / 1000,
      backend: { kind: g.backend.kind, up: g.backend.up, reason: g.backend.downReason, reconnects: this.stats.backendReconnects },
      // The CAN controller's state and error counts, where the backend reports them (Backend.health(): SocketCAN).
      busHealth: g.backend.health?.() ?? null,
      ready: g.readiness(),
      listeners: g.listeners.map((l) => ({ protocol: l.protocol.name, port: l.port })),
      bitrate: this.bitrate,
      rates: this.rates,
      ratesAt: this.ratesAt,
      busLoad: this.busLoad().load,
      busLoadOver: this.busLoad().over,
      clients,
      left: this.left,
      consumers: this.counters.byKind,
      webTx: this.web.txAllowed,
      ids: this.web.ids.size,
      idsOverflow: this.web.idsOverflow,
      buses: this.busesSnapshot(),
      routes: this.routesSnapshot(),
    };
  }
}
