/**
 * The HTTP routes of the bus views, served by the operations endpoint (`-metrics-addr`, so the
 * -allow list covers them): `/capture.pcap` (live pcap), and the dashboard (`/`, its assets, its
 * WebSocket `/ws`, `/api/status`). A capture stream is a hub client while its reader is
 * connected; the dashboard's meter (WebBus) is one hub client for all browsers, attached while
 * the endpoint runs, so the overview's rates are right the moment a page opens. Capture streams
 * and dashboard WebSockets each hold a slot of -http-max-streams (src/ops/http-streams.ts) until
 * they end; beyond the cap both routes answer 503.
 */
import type { Config } from "../cli/config.ts";
import type { Gateway } from "../gateway.ts";
import type { BuildInfo } from "../ops/build-info.ts";
import type { Stats } from "../ops/stats.ts";
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import type { HttpRoute } from "../ops/http.ts";
import { HttpStreamLimit } from "../ops/http-streams.ts";
import type { ConsumerCounters } from "../capture/counters.ts";
import { IdFilter, IdFilterError } from "../capture/filter.ts";
import { CaptureStream } from "../consumers/capture.ts";
import { WebBus, type WebViewer } from "../consumers/web.ts";
import { busBitrate } from "../gateway.ts";
import { ASSETS } from "./assets.ts";
import { StatusTracker } from "./status.ts";
import type { IdMask } from "../capture/filter.ts";

/** How often the dashboard gets status and the per-id table. */
export const STATUS_MS = 1000;

/** Frames a capture stream holds for a slow reader: about one second of a saturated 1 Mbit/s bus. */
export const CAPTURE_QUEUE_FRAMES = 8192;

export interface BusViewDeps {
  readonly hub: Hub;
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  /** Ids in the hub's client id space (shared with TCP sessions). */
  readonly allocateId: () => number;
  readonly captureQueueFrames?: number;
  /** -http-max-streams, shared by capture streams and dashboard WebSockets. */
  readonly streams: HttpStreamLimit;
}

export interface BusViewContext {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  readonly build: BuildInfo;
  readonly stats: Stats;
}

export interface BusViews {
  readonly routes: Record<string, HttpRoute>;
  readonly web: WebBus;
  stop(): void;
}

function remoteOf(req: Request, server: Parameters<HttpRoute>[1]): string {
  const ip = server.requestIP(req);
  return ip ? (ip.family === "IPv6" ? `[${ip.address}]:${ip.port}` : `${ip.address}:${ip.port}`) : "?";
}

/** Every route of the bus views, for startOpsHttp({ routes }); stop() ends the dashboard's timers. */
export function busViewRoutes(config: Config, ctx: BusViewContext): BusViews {
  const deps: BusViewDeps = {
    hub: ctx.gateway.hub,
    log: ctx.log,
    counters: ctx.counters,
    allocateId: () => ctx.gateway.registry.allocateId(),
    streams: new HttpStreamLimit(config.httpMaxStreams, ctx.stats, ctx.log),
  };
  const web = new WebBus({ ...deps, tx: { enabled: config.webTx, token: config.webToken, txAllow: ctx.gateway.registry.limits.txAllow } });
  web.start();
  if (config.webTx && !config.webToken) ctx.log.warn("web_tx_disabled", { reason: "-web-tx needs -web-token; the dashboard stays read-only" });
  const status = new StatusTracker(ctx.gateway, ctx.stats, ctx.build, ctx.counters, web, busBitrate(config), config.echoClients);
  const timer = setInterval(() => {
    const dt = status.sample();
    if (web.viewers.size === 0) return;
    const snap = JSON.stringify(status.snapshot());
    const rows = web.sniffer(dt);
    for (const v of web.viewers) {
      if (!v.ws) continue;
      v.ws.sendText(snap);
      v.ws.sendText(JSON.stringify({ type: "sniffer", rows: sniffRows(v, rows) }));
    }
  }, STATUS_MS);
  const routes: Record<string, HttpRoute> = { "/capture.pcap": captureRoute(deps) };
  for (const [path, [type, body]] of Object.entries(ASSETS)) {
    routes[path] = (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      return new Response(body, { headers: { "content-type": type, "cache-control": "no-cache" } });
    };
  }
  routes["/api/status"] = () => new Response(JSON.stringify(status.snapshot()), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
  const notUpgrade = (): Response => new Response("expected a WebSocket upgrade\n", { status: 426 });
  routes["/ws"] = (req, server) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return notUpgrade();
    const remote = remoteOf(req, server);
    const slot = deps.streams.admit("websocket", remote);
    if (slot instanceof Response) return slot;
    // The slot is held until the socket closes (Bun calls close for every socket it upgraded).
    const viewer = web.newViewer(remote, () => slot.release());
    if (server.upgrade(req, { data: viewer })) return undefined;
    slot.release();
    return notUpgrade();
  };
  return {
    routes,
    web,
    stop() {
      clearInterval(timer);
      web.stop();
    },
  };
}

/** The per-id rows this viewer's filter passes. */
function sniffRows(v: WebViewer, rows: ReturnType<WebBus["sniffer"]>): ReturnType<WebBus["sniffer"]> {
  if (v.filter.empty) return rows;
  return rows.filter((r) => matchesId(v.filter.terms, parseInt(r.id, 16)));
}

function matchesId(terms: readonly IdMask[], id: number): boolean {
  for (const t of terms) if ((id & t.mask) === t.id) return true;
  return false;
}

export function captureRoute(deps: BusViewDeps): HttpRoute {
  return (req, server) => {
    if (req.method !== "GET") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET" } });
    let filter: IdFilter;
    try {
      filter = IdFilter.parse(new URL(req.url).searchParams.get("filter") ?? "");
    } catch (e) {
      if (e instanceof IdFilterError) return new Response(`${e.message}\n`, { status: 400 });
      throw e;
    }
    const remote = remoteOf(req, server);
    const slot = deps.streams.admit("capture", remote);
    if (slot instanceof Response) return slot;
    // The slot is held until the stream ends: reader gone (abort, cancel), kicked or shut down.
    const stream = new CaptureStream({
      id: deps.allocateId(),
      remote,
      queueFrames: deps.captureQueueFrames ?? CAPTURE_QUEUE_FRAMES,
      filter,
      counters: deps.counters,
      closed: (s) => {
        slot.release();
        deps.hub.detach(s);
        deps.log.info("capture_ended", { conn_id: s.id, remote: s.remote, frames: s.txFrames, dropped: s.dropped });
      },
    });
    req.signal.addEventListener("abort", () => stream.end(), { once: true });
    deps.hub.attach(stream);
    deps.log.info("capture_started", { conn_id: stream.id, remote, filter: filter.toString() || "all" });
    // A reader already gone never fires "abort" again.
    if (req.signal.aborted) stream.end();
    return new Response(stream.body, {
      headers: {
        "content-type": "application/vnd.tcpdump.pcap",
        "content-disposition": 'inline; filename="can-server.pcap"',
        "cache-control": "no-store",
      },
    });
  };
}
