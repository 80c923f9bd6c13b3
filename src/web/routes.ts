/**
 * The HTTP routes of the bus views, served by the operations endpoint (`-metrics-addr`, so the
 * -allow list covers them): `/capture.pcap` (live pcap), and the dashboard (`/`, its WebSocket
 * `/ws`, `/api/status`). Each view is a hub client attached while its reader is connected.
 */
import type { Config } from "../cli/config.ts";
import type { Gateway } from "../gateway.ts";
import type { BuildInfo } from "../ops/build-info.ts";
import type { Stats } from "../ops/stats.ts";
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import type { HttpRoute } from "../ops/http.ts";
import type { ConsumerCounters } from "../capture/counters.ts";
import { IdFilter, IdFilterError } from "../capture/filter.ts";
import { CaptureStream } from "../consumers/capture.ts";

/** Frames a capture stream holds for a slow reader: about one second of a saturated 1 Mbit/s bus. */
export const CAPTURE_QUEUE_FRAMES = 8192;

export interface BusViewDeps {
  readonly hub: Hub;
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  /** Ids in the hub's client id space (shared with TCP sessions). */
  readonly allocateId: () => number;
  readonly captureQueueFrames?: number;
}

export interface BusViewContext {
  readonly gateway: Gateway;
  readonly log: Logger;
  readonly counters: ConsumerCounters;
  readonly build: BuildInfo;
  readonly stats: Stats;
}

/** Every route of the bus views, for startOpsHttp({ routes }). */
export function busViewRoutes(_config: Config, ctx: BusViewContext): Record<string, HttpRoute> {
  const deps: BusViewDeps = {
    hub: ctx.gateway.hub,
    log: ctx.log,
    counters: ctx.counters,
    allocateId: () => ctx.gateway.registry.allocateId(),
  };
  return { "/capture.pcap": captureRoute(deps) };
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
    const ip = server.requestIP(req);
    const remote = ip ? (ip.family === "IPv6" ? `[${ip.address}]:${ip.port}` : `${ip.address}:${ip.port}`) : "?";
    const stream = new CaptureStream({
      id: deps.allocateId(),
      remote,
      queueFrames: deps.captureQueueFrames ?? CAPTURE_QUEUE_FRAMES,
      filter,
      counters: deps.counters,
      closed: (s) => {
        deps.hub.detach(s);
        deps.log.info("capture_ended", { conn_id: s.id, remote: s.remote, frames: s.txFrames, dropped: s.dropped });
      },
    });
    req.signal.addEventListener("abort", () => stream.end(), { once: true });
    deps.hub.attach(stream);
    deps.log.info("capture_started", { conn_id: stream.id, remote, filter: filter.toString() || "all" });
    return new Response(stream.body, {
      headers: {
        "content-type": "application/vnd.tcpdump.pcap",
        "content-disposition": 'inline; filename="can-server.pcap"',
        "cache-control": "no-store",
      },
    });
  };
}
