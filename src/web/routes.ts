/**
 * The HTTP routes of the bus views, served by the operations endpoint (`-metrics-addr`, so the
 * -allow list covers them): `/capture.pcap` (live pcap), and the dashboard (`/`, its assets, its
 * WebSocket `/ws`, `/api/status`, `/api/history[?bus=NAME]`: the last 10 minutes of rates, of all buses or of one). A capture stream is a hub client while its reader is
 * connected; the dashboard's meter (WebBus) is one hub client for all browsers, attached while
 * the endpoint runs, so the overview's rates are right the moment a page opens. Capture streams
 * and dashboard WebSockets each hold a slot of -http-max-streams (src/net/http-streams.ts) until
 * they end; beyond the cap both routes answer 503.
 */
import type { Config } from "../cli/config.ts";
import type { Gateway } from "../gateway.ts";
import type { BuildInfo } from "../ops/build-info.ts";
import type { Stats } from "../ops/stats.ts";
import type { Logger } from "../ops/log.ts";
import { requestRemote, type HttpRoute } from "../ops/http.ts";
import { HttpStreamLimit } from "../net/http-streams.ts";
import type { ConsumerCounters } from "../capture/counters.ts";
import { captureRoute, type CaptureRouteDeps } from "../capture/route.ts";
import { WebBus, type WebViewer } from "./bus.ts";
import { websocket } from "./ws.ts";
import { busBitrate } from "../gateway.ts";
import { ASSETS } from "./assets.ts";
import { StatusTracker } from "./status.ts";
import type { IdMask } from "../capture/filter.ts";
import { API_PREFIX, ApiCounters, startApi, type Api } from "../api/api.ts";
import { Jobs } from "../jobs/jobs.ts";

/** How often the dashboard gets status and the per-id table. */
export const STATUS_MS = 1000;

export type BusViewDeps = CaptureRouteDeps;

export interface BusViewContext {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  readonly build: BuildInfo;
  readonly stats: Stats;
  /** The gateway's transmit jobs (src/jobs/); absent: an in-memory set for this endpoint alone. */
  readonly jobs?: Jobs;
}

export interface BusViews {
  readonly routes: Record<string, HttpRoute>;
  /** Serves the dashboard's upgraded WebSockets (startOpsHttp({ websocket })). */
  readonly websocket: typeof websocket;
  readonly web: WebBus;
  /** The HTTP API (/api/v1/…, src/api/). */
  readonly api: Api;
  readonly jobs: Jobs;
  stop(): void;
}

/** Every route of the bus views, for startOpsHttp({ routes }); stop() ends the dashboard's timers. */
export function busViewRoutes(config: Config, ctx: BusViewContext): BusViews {
  const deps: BusViewDeps = {
    hub: ctx.gateway.hub,
    buses: ctx.gateway.buses,
    log: ctx.log,
    counters: ctx.counters,
    allocateId: () => ctx.gateway.registry.allocateId(),
    streams: new HttpStreamLimit(config.httpMaxStreams, ctx.stats, ctx.log),
  };
  const web = new WebBus({ ...deps, buses: ctx.gateway.buses, tx: { enabled: config.webTx, token: config.webToken, txAllow: ctx.gateway.registry.limits.txAllow } });
  web.start();
  if (config.webTx && !config.webToken) ctx.log.warn("web_tx_disabled", { reason: "-web-tx needs -web-token; the dashboard stays read-only" });
  const status = new StatusTracker(ctx.gateway, ctx.stats, ctx.build, ctx.counters, web, busBitrate(ctx.gateway.buses[0]?.config ?? config), config.echoClients);
  // The per-id rows of the last tick, per bus, for a page that opens (or switches bus) between ticks.
  let lastRows: ReturnType<WebBus["sniffer"]>[] = web.busNames.map(() => []);
  const rowsOf = (v: WebViewer): ReturnType<WebBus["sniffer"]> => sniffRows(v, lastRows[v.bus] ?? []);
  const snifferMessage = (v: WebViewer): string => JSON.stringify({ type: "sniffer", bus: web.busNames[v.bus], rows: rowsOf(v) });
  const timer = setInterval(() => {
    const dt = status.sample();
    // Every tick, so the per-id rates are right when a page opens (at most MAX_IDS rows per bus).
    lastRows = web.busNames.map((_, i) => web.sniffer(dt, i));
    if (web.viewers.size === 0) return;
    const snap = JSON.stringify(status.snapshot());
    for (const v of web.viewers) {
      // A browser that does not read skips these (counted) instead of growing its socket's buffer.
      v.sendMessage(snap);
      v.sendMessage(snifferMessage(v));
    }
  }, STATUS_MS);
  // One bus: the history of the gateway (unchanged); several: the history of the viewer's bus, named.
  const historyMessage = (v: WebViewer): string => {
    if (web.busNames.length < 2) return JSON.stringify({ type: "history", ...status.history.columns() });
    const name = web.busNames[v.bus] ?? "";
    return JSON.stringify({ type: "history", bus: name, ...(status.historyOf(name) ?? status.history).columns() });
  };
  web.onViewerBus = (v) => {
    // The chart follows the selector: that bus's history first, then its per-id table.
    if (web.busNames.length > 1) v.sendMessage(historyMessage(v));
    v.sendMessage(snifferMessage(v));
  };
  // A page that opens gets the rate history, the status and the per-id table at once.
  web.onViewerOpen = (v) => {
    v.sendMessage(historyMessage(v));
    v.sendMessage(JSON.stringify(status.snapshot()));
    v.sendMessage(snifferMessage(v));
  };
  const routes: Record<string, HttpRoute> = { "/capture.pcap": captureRoute(deps, "pcap"), "/capture.pcapng": captureRoute(deps, "pcapng") };
  const ownJobs = ctx.jobs === undefined;
  const jobs = ctx.jobs ?? new Jobs({ buses: ctx.gateway.buses, log: ctx.log, stateDir: "", allocateId: deps.allocateId });
  const api = startApi({ gateway: ctx.gateway, config, log: ctx.log, jobs, guesses: web.guesses, counters: new ApiCounters() });
  routes[`${API_PREFIX}*`] = api.route;
  for (const [path, [type, body]] of Object.entries(ASSETS)) {
    routes[path] = (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      return new Response(body, { headers: { "content-type": type, "cache-control": "no-cache" } });
    };
  }
  // `?bus=NAME`: that bus's history; without it, all buses together.
  routes["/api/history"] = (req) => {
    const bus = new URL(req.url).searchParams.get("bus");
    const h = status.historyOf(bus);
    if (!h) return new Response(`no bus ${JSON.stringify(bus)}; buses: ${web.busNames.join(", ")}\n`, { status: 404, headers: { "content-type": "text/plain; charset=utf-8" } });
    return new Response(JSON.stringify(bus ? { bus, ...h.columns() } : h.columns()), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
  };
  routes["/api/status"] = () => new Response(JSON.stringify(status.snapshot()), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
  const notUpgrade = (): Response => new Response("expected a WebSocket upgrade\n", { status: 426 });
  routes["/ws"] = (req, server) => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return notUpgrade();
    const remote = requestRemote(req, server);
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
    websocket,
    web,
    api,
    jobs,
    stop() {
      clearInterval(timer);
      web.stop();
      api.stop();
      if (ownJobs) void jobs.stop();
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
