/**
 * The dashboard's status snapshot (`/api/status` and the WebSocket's once-a-second "status"):
 * backend and its state, uptime, version, listeners, bus load against the configured bit rate,
 * frames/s, every client (TCP sessions in the registry, and the in-process consumers attached
 * to the hub), the last disconnections, and the consumers' counters. Plain data, no I/O.
 */
import type { Gateway } from "../gateway.ts";
import type { BuildInfo } from "../ops/build-info.ts";
import type { Stats } from "../ops/stats.ts";
import type { ConsumerCounters } from "../capture/counters.ts";
import type { ClientSession } from "../server/session.ts";
import type { WebBus } from "./bus.ts";
import { systemClock } from "../can/clock.ts";

export interface ClientRow {
  id: number;
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
    protocol: s.protocol,
    remote: s.remote,
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
  private prev = { t: performance.now(), frames: 0, bits: 0, clientTx: 0 };
  private rates = { inFps: 0, outFps: 0, bps: 0 };
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
  ) {}

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
    this.prev = { t: now, frames: this.web.frames, bits: this.web.bits, clientTx: this.stats.clientTxSent };
    this.trackSessions();
    return dt;
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

  snapshot(): object {
    const g = this.gateway;
    const clients: ClientRow[] = [...g.registry.sessions].map(sessionRow);
    const sessionIds = new Set(clients.map((c) => c.id));
    for (const c of g.hub.attached) {
      if (sessionIds.has(c.id)) continue;
      const at = "connectedAt" in c && typeof c.connectedAt === "number" ? c.connectedAt : this.startedAt;
      const tx = "txFrames" in c && typeof c.txFrames === "number" ? c.txFrames : 0;
      clients.push({ id: c.id, protocol: c.protocol, remote: c.remote, connectedAt: at, rx: 0, tx, dropped: c.dropped, queued: c.queued, state: "consumer" });
    }
    for (const v of this.web.viewers) {
      clients.push({ id: v.id, protocol: "web-viewer", remote: v.remote, connectedAt: v.connectedAt, rx: 0, tx: v.txFrames, dropped: v.dropped, queued: v.queue.length, state: `browser (${v.sampled} sampled)` });
    }
    return {
      type: "status",
      version: this.build.version,
      commit: this.build.commit,
      // The frame clock (the frames' times on the page are StampedFrame.ts), in ms.
      now: Math.floor(systemClock.nowUs() / 1000),
      uptimeS: (performance.now() - this.startedAt) / 1000,
      backend: { kind: g.backend.kind, up: g.backend.up, reason: g.backend.downReason, reconnects: this.stats.backendReconnects },
      ready: g.readiness(),
      listeners: g.listeners.map((l) => ({ protocol: l.protocol.name, port: l.port })),
      bitrate: this.bitrate,
      rates: this.rates,
      busLoad: this.bitrate > 0 ? this.rates.bps / this.bitrate : 0,
      clients,
      left: this.left,
      consumers: this.counters.byKind,
      webTx: this.web.txAllowed,
      ids: this.web.ids.size,
      idsOverflow: this.web.idsOverflow,
    };
  }
}
