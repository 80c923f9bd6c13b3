/**
 * The dashboard's live view of the bus: one hub client ("web") for all open dashboards, which
 * meters the bus (frames/s, bits/s), keeps a cansniffer-style table per id (count, last data,
 * last time; at most MAX_IDS ids), and hands frames to each browser's own bounded queue. A
 * browser never slows the hub: every FLUSH_MS its queue goes out as one JSON message; at most
 * TAIL_PER_FLUSH frames per message (the rest are sampled away and counted, and the page says
 * so), and nothing is sent while the socket still holds more than MAX_BUFFERED bytes unsent
 * (those frames are dropped and counted). `enqueue` always answers true: the hub never counts
 * or kicks the dashboard.
 *
 * Several buses: it is a client of every bus's hub and keeps the meter and the per-id table per
 * bus (by StampedFrame.bus); each browser watches one bus (`{type:"bus", bus:NAME}`, the first by
 * default) and gets that bus's frames only.
 */
import type { ServerWebSocket } from "bun";
import { arbitrationId, formatFrame, isExtended, isRemote, type CanFrame, type StampedFrame } from "../can/frame.ts";
import { parseFrame, FrameSyntaxError } from "../can/frame.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import { BoundedQueue } from "../hub/bounded-queue.ts";
import type { TxLane } from "../hub/tx-scheduler.ts";
import type { WsPeer } from "./ws.ts";
import type { CidrList } from "../net/cidr.ts";
import { FailureThrottle, secretMatches } from "../net/throttle.ts";
import { RefusalLog } from "../net/refusals.ts";
import type { Logger } from "../ops/log.ts";
import type { ConsumerCounters } from "../capture/counters.ts";
import { systemClock } from "../can/clock.ts";
import { IdFilter, IdFilterError } from "../capture/filter.ts";

export const FLUSH_MS = 100;
/** Frames per message at most: 2,000 frames/s per browser; beyond that the tail is sampled. */
export const TAIL_PER_FLUSH = 200;
export const VIEWER_QUEUE_FRAMES = 1024;
/**
 * Unsent bytes a viewer's socket may hold: past this, frames are dropped (counted) and status
 * and table messages skipped, so a browser that never reads costs at most this (plus one message).
 */
export const MAX_BUFFERED = 256 * 1024;
export const MAX_IDS = 4096;

/** Time constant of the per-id rate average, in s: the Ampio inventory's (src/ampio/inventory.ts, 10 s). */
export const RATE_TAU_S = 10;

/** Nominal bits of a frame on the wire (no stuff bits): SOF..EOF + IFS. FD counted at the nominal rate. */
export function frameBits(f: CanFrame): number {
  return (isExtended(f) ? 67 : 47) + 8 * (isRemote(f) ? 0 : f.len);
}

interface IdStat {
  count: number;
  data: string;
  lastUs: number;
  /** Count at the previous rate sample (-1: never sampled; the count so far spans an unknown time). */
  prevCount: number;
  rate: number;
  /** The average has its first full interval (it starts from that interval's rate). */
  seeded: boolean;
  changed: boolean;
}

export interface WebTxPolicy {
  /** -web-tx */
  readonly enabled: boolean;
  /** -web-token ("" = sending impossible). */
  readonly token: string;
  /** -tx-allow: a browser outside it stays read-only even with the token (absent: everyone). */
  readonly txAllow?: CidrList;
}

/** The address part of "1.2.3.4:port" or "[v6]:port". */
function hostOf(remote: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(remote) ?? /^([^:]+):\d+$/.exec(remote);
  return m ? m[1]! : remote;
}


export class WebViewer implements WsPeer {
  readonly protocol = "web";
  readonly connectedAt = Date.now();
  readonly queue = new BoundedQueue<{ f: CanFrame; tUs: number }>(VIEWER_QUEUE_FRAMES);
  filter: IdFilter = IdFilter.parse("");
  dropped = 0;
  sampled = 0;
  txFrames = 0;
  /** Status, table and reply messages not sent because the socket was backed up. */
  skipped = 0;
  ws: ServerWebSocket<WsPeer> | null = null;
  lane: TxLane | null = null;

  constructor(
    private readonly bus_: WebBus,
    readonly id: number,
    readonly remote: string,
    /** Called when the socket has closed (frees the viewer's -http-max-streams slot). */
    private readonly closed: () => void = () => {},
  ) {}

  /** The bus this browser watches (index in the gateway's buses). */
  bus = 0;

  open(ws: ServerWebSocket<WsPeer>): void {
    this.ws = ws;
    this.bus_.add(this);
    // The current state at once (routes.ts): no empty cards until the next tick.
    this.bus_.onViewerOpen?.(this, ws);
  }

  message(ws: ServerWebSocket<WsPeer>, message: string | Uint8Array): void {
    if (typeof message !== "string") return;
    let m: { type?: unknown; filter?: unknown; frame?: unknown; token?: unknown };
    try {
      m = JSON.parse(message) as typeof m;
    } catch {
      return;
    }
    if (m.type === "filter" && typeof m.filter === "string") {
      try {
        this.filter = IdFilter.parse(m.filter);
        this.queue.clear();
        this.sendMessage(JSON.stringify({ type: "filter", ok: true, filter: this.filter.toString() }));
      } catch (e) {
        this.sendMessage(JSON.stringify({ type: "filter", ok: false, error: e instanceof IdFilterError ? e.message : String(e) }));
      }
    } else if (m.type === "bus" && typeof (m as { bus?: unknown }).bus === "string") {
      const name = (m as { bus: string }).bus;
      const index = this.bus_.busNames.indexOf(name);
      if (index < 0) {
        this.sendMessage(JSON.stringify({ type: "bus", ok: false, error: `no bus ${JSON.stringify(name.slice(0, 40))}` }));
      } else {
        if (index !== this.bus) {
          // A send lane belongs to the bus it was opened on.
          this.lane?.close();
          this.lane = null;
        }
        this.bus = index;
        this.queue.clear();
        this.sendMessage(JSON.stringify({ type: "bus", ok: true, bus: name }));
        this.bus_.onViewerBus?.(this);
      }
    } else if (m.type === "send" && typeof m.frame === "string") {
      this.sendMessage(JSON.stringify({ type: "sent", ...this.bus_.send(this, m.frame, typeof m.token === "string" ? m.token : "") }));
    }
  }

  drain(_ws: ServerWebSocket<WsPeer>): void {}

  /** Whether the socket holds more unsent bytes than a viewer may (a browser that does not read). */
  get backedUp(): boolean {
    return this.ws !== null && this.ws.getBufferedAmount() > MAX_BUFFERED;
  }

  /** Sends a non-frame message unless the socket is backed up (then it is skipped and counted). */
  sendMessage(text: string): void {
    const ws = this.ws;
    if (!ws) return;
    if (this.backedUp) {
      this.skipped++;
      return;
    }
    ws.sendText(text);
  }

  close(_ws: ServerWebSocket<WsPeer>, _code: number, _reason: string): void {
    this.ws = null;
    // Like a TCP client's: frames already handed over still go, then the lane settles (logged) and
    // leaves the scheduler; left open, every browser that ever sent kept its share there.
    this.lane?.close();
    this.lane = null;
    this.bus_.remove(this);
    this.closed();
  }

  offer(f: CanFrame, tUs: number, bus: number): void {
    if (bus !== this.bus || !this.filter.matches(f)) return;
    if (!this.queue.offer({ f, tUs })) {
      this.dropped++;
      this.bus_.counters.byKind.web.dropped++;
    }
  }

  flush(): void {
    const ws = this.ws;
    if (!ws) return;
    const n = this.queue.length;
    if (n === 0) return;
    if (this.backedUp) {
      this.dropped += n;
      this.bus_.counters.byKind.web.dropped += n;
      this.queue.clear();
      return;
    }
    // Sampling: keep an even spread of TAIL_PER_FLUSH frames when more arrived.
    const keep = Math.min(n, TAIL_PER_FLUSH);
    const step = n / keep;
    const rows: [number, string][] = [];
    let nextPick = 0;
    for (let i = 0; i < n; i++) {
      const e = this.queue.poll()!;
      if (i >= Math.floor(nextPick) && rows.length < keep) {
        rows.push([e.tUs / 1000, formatFrame(e.f)]);
        nextPick += step;
      }
    }
    this.sampled += n - rows.length;
    this.txFrames += rows.length;
    this.bus_.counters.byKind.web.frames += rows.length;
    // `bus`: a message already on its way when the page chose another bus is recognised and left out.
    ws.sendText(JSON.stringify({ type: "frames", bus: this.bus_.busNames[this.bus], frames: rows, sampled: n - rows.length, dropped: this.dropped }));
  }
}

/** A bus the dashboard shows (src/gateway.ts Bus). */
export interface WebBusSource {
  readonly name: string;
  readonly hub: Pick<Hub, "attach" | "detach" | "openTx">;
}

/** One bus's meter and per-id table. */
export interface BusMeter {
  frames: number;
  bits: number;
  readonly ids: Map<number, IdStat>;
  idsOverflow: number;
  /** performance.now() of the last sniffer() call (-1: none yet). */
  lastSnifferMs: number;
}

export interface WebBusDeps {
  readonly hub: Hub;
  /** Every bus, in order (Gateway.buses); absent: only `hub`, named can0. */
  readonly buses?: readonly WebBusSource[];
  readonly counters: ConsumerCounters;
  readonly log: Logger;
  readonly allocateId: () => number;
  readonly tx: WebTxPolicy;
}

/** The shared hub client behind every open dashboard. */
export class WebBus implements HubClient {
  readonly protocol = "web";
  readonly remote = "dashboard";
  readonly id: number;
  readonly connectedAt = Date.now();
  readonly receiving = true;
  dropped = 0;
  /** Frames and bits seen since start on every bus (the meter). */
  frames = 0;
  bits = 0;
  readonly viewers = new Set<WebViewer>();
  /** Per bus (by index): its meter and per-id table. */
  readonly meters: BusMeter[];
  readonly busNames: readonly string[];
  private readonly sources: readonly WebBusSource[];
  /** Called when a viewer switched bus (routes.ts sends it that bus's table at once). */
  onViewerBus: ((v: WebViewer) => void) | null = null;
  /** Called when a viewer's socket opens, to send it the current state (set by routes.ts). */
  onViewerOpen: ((v: WebViewer, ws: ServerWebSocket<WsPeer>) => void) | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private attached = false;
  /** Wrong -web-token guesses, per host: 5 a minute, then locked out (src/net/throttle.ts); the HTTP API shares it. */
  readonly guesses = new FailureThrottle();
  private readonly refusalLog: RefusalLog;
  /** Send attempts refused for a wrong token or while the host was locked out. */
  tokenRefused = 0;

  constructor(private readonly deps: WebBusDeps) {
    this.id = deps.allocateId();
    this.sources = deps.buses ?? [{ name: "can0", hub: deps.hub }];
    this.busNames = this.sources.map((b) => b.name);
    this.meters = this.sources.map(() => ({ frames: 0, bits: 0, ids: new Map<number, IdStat>(), idsOverflow: 0, lastSnifferMs: -1 }));
    this.refusalLog = new RefusalLog(deps.log, "web_tx_refused");
  }

  /** The first bus's per-id table (one bus: the only one). */
  get ids(): Map<number, IdStat> {
    return this.meters[0]!.ids;
  }

  /** Ids not tracked on any bus because MAX_IDS were already. */
  get idsOverflow(): number {
    return this.meters.reduce((n, m) => n + m.idsOverflow, 0);
  }

  get counters(): ConsumerCounters {
    return this.deps.counters;
  }

  get queued(): number {
    let q = 0;
    for (const v of this.viewers) q += v.queue.length;
    return q;
  }

  get txAllowed(): boolean {
    return this.deps.tx.enabled && this.deps.tx.token !== "";
  }

  /** Starts metering (the overview's rates run even with no dashboard open). */
  start(): void {
    if (this.attached) return;
    this.attached = true;
    for (const b of this.sources) b.hub.attach(this);
    this.timer = setInterval(() => {
      for (const v of this.viewers) v.flush();
    }, FLUSH_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.attached) for (const b of this.sources) b.hub.detach(this);
    this.attached = false;
    for (const v of this.viewers) v.ws?.close(1001, "shutting down");
  }

  /** A viewer for one browser; `closed` runs once its WebSocket has closed. */
  newViewer(remote: string, closed?: () => void): WebViewer {
    return new WebViewer(this, this.deps.allocateId(), remote, closed);
  }

  add(v: WebViewer): void {
    this.viewers.add(v);
    this.deps.log.info("web_viewer_connected", { conn_id: v.id, remote: v.remote });
  }

  remove(v: WebViewer): void {
    this.viewers.delete(v);
    this.deps.log.info("web_viewer_disconnected", { conn_id: v.id, remote: v.remote, frames: v.txFrames, dropped: v.dropped, sampled: v.sampled, skipped_messages: v.skipped });
  }

  accepts(_frame: CanFrame): boolean {
    return true;
  }

  enqueue(frame: StampedFrame): boolean {
    const tUs = frame.ts;
    const bits = frameBits(frame);
    this.frames++;
    this.bits += bits;
    const bus = frame.bus ?? 0;
    const meter = this.meters[bus] ?? this.meters[0]!;
    meter.frames++;
    meter.bits += bits;
    const key = frame.canId >>> 0;
    let s = meter.ids.get(key);
    if (!s) {
      if (meter.ids.size >= MAX_IDS) {
        meter.idsOverflow++;
      } else {
        s = { count: 0, data: "", lastUs: 0, prevCount: -1, rate: 0, seeded: false, changed: true };
        meter.ids.set(key, s);
      }
    }
    if (s) {
      s.count++;
      s.lastUs = tUs;
      s.changed = true;
      s.data = formatFrame(frame);
    }
    for (const v of this.viewers) v.offer(frame, tUs, bus);
    return true;
  }

  kick(_reason: string): void {}

  /** Rates per id (averaged, see RATE_TAU_S); returns the sniffer rows (changed ones first). */
  sniffer(intervalS: number, bus = 0): { id: string; ext: boolean; count: number; rate: number; frame: string; ageMs: number }[] {
    const meter = this.meters[bus] ?? this.meters[0]!;
    // Frame times are the hub's (StampedFrame.ts): compared with the same clock.
    const now = systemClock.nowUs();
    // Counts since the previous call span the time since that call (the table is computed only
    // while a page is open, so that can be much longer than one status interval).
    const mono = performance.now();
    const dt = meter.lastSnifferMs < 0 ? intervalS : (mono - meter.lastSnifferMs) / 1000;
    meter.lastSnifferMs = mono;
    const rows = [];
    for (const [key, s] of meter.ids) {
      // Averaged over ~RATE_TAU_S (exponentially, as the Ampio inventory's module rate), so an id
      // sending about once a second reads ~1/s, not 0 and 2 in turns, and agrees with the Ampio view.
      if (s.prevCount >= 0 && dt > 0) {
        const inst = (s.count - s.prevCount) / dt;
        s.rate = s.seeded ? s.rate + (1 - Math.exp(-dt / RATE_TAU_S)) * (inst - s.rate) : inst;
        s.seeded = true;
      }
      s.prevCount = s.count;
      const f = { canId: key, len: 0, data: new Uint8Array(0), fd: false, fdFlags: 0 };
      const ext = isExtended(f);
      rows.push({ id: arbitrationId(f).toString(16).toUpperCase().padStart(ext ? 8 : 3, "0"), ext, count: s.count, rate: s.rate, frame: s.data, ageMs: (now - s.lastUs) / 1000 });
    }
    return rows;
  }

  /** Counts a refused send and logs the first of each 10 s burst. */
  private refuseToken(v: WebViewer, reason: string, error: string): { ok: false; error: string } {
    this.tokenRefused++;
    this.deps.counters.webTokenRefused++;
    this.refusalLog.note({ conn_id: v.id, remote: v.remote, reason });
    return { ok: false, error };
  }

  /** A frame from a dashboard: only with -web-tx and the right token, through a TX lane. */
  send(v: WebViewer, text: string, token: string): { ok: boolean; error?: string } {
    if (!this.deps.tx.enabled) return { ok: false, error: "sending is disabled (start the gateway with -web-tx and -web-token)" };
    const host = hostOf(v.remote);
    const wait = this.guesses.lockedFor(host);
    if (wait > 0) return this.refuseToken(v, "locked_out", `too many wrong tokens from this address; retry in ${Math.ceil(wait / 1000)} s`);
    if (!secretMatches(token, this.deps.tx.token)) {
      this.guesses.failed(host);
      return this.refuseToken(v, "bad_token", "wrong token");
    }
    this.guesses.succeeded(host);
    let frame: CanFrame;
    try {
      frame = parseFrame(text);
    } catch (e) {
      return { ok: false, error: e instanceof FrameSyntaxError ? e.message : String(e) };
    }
    v.lane ??= (this.sources[v.bus] ?? this.sources[0]!).hub.openTx({ id: v.id, protocol: "web", remote: v.remote }, !(this.deps.tx.txAllow?.allows(hostOf(v.remote)) ?? true));
    const ok = v.lane.send(frame);
    return ok ? { ok: true } : { ok: false, error: `dropped: ${[...v.lane.dropped.keys()].join(",") || "refused"}` };
  }
}
