/**
 * The operations HTTP endpoint on `-metrics-addr` (Bun.serve): /metrics in the Prometheus text
 * format, /ready (200 "ready" while the gateway can serve clients, else 503 with the reason, for
 * load balancers and systemd health checks), /healthz (200 while the process answers at all).
 * GET and HEAD only; everything else is 404 or 405. Port 0 binds an ephemeral port, reported
 * back in `port` (tests and the release smoke test use it).
 */
import type { Server, WebSocketHandler } from "bun";
import { parseListenAddress } from "../net/address.ts";
import type { Logger } from "./log.ts";
import type { CidrList } from "../net/cidr.ts";
import type { Metrics } from "./metrics.ts";

export interface Readiness {
  ready: boolean;
  /** Why not ready (e.g. "backend down: /dev/ttyUSB0 missing"); ignored while ready. */
  reason: string;
}

export interface OpsHttpOptions {
  /** ":9100", "127.0.0.1:0", "[::1]:9100". */
  addr: string;
  metrics: Pick<Metrics, "render" | "contentType">;
  readiness: () => Readiness;
  log: Logger;
  /** Who may use the endpoint (-allow); others get 403 and are counted. Default: everyone. */
  allow?: CidrList;
  /** Called for each refused request (counted as http_rejected_requests_total). */
  rejected?: () => void;
  /**
   * More routes by exact path (e.g. "/api/ampio/modules", "/capture.pcap", "/"): each handler
   * gets the request and the server (peer address); its methods are its own business. The
   * built-in paths above win, and -allow applies to every route.
   */
  routes?: Readonly<Record<string, HttpRoute>>;
  /** How upgraded WebSockets are served (the dashboard's src/web/ws.ts); none: no route may upgrade. */
  websocket?: WebSocketHandler<unknown>;
}

/** The server a route runs on (requestIP, upgrade, timeout); WebSocket data is the route's business. */
export type HttpServer = Server<unknown>;

/** A route handler; one that upgraded the request to a WebSocket returns undefined. */
export type HttpRoute = (req: Request, server: HttpServer) => Response | undefined | Promise<Response | undefined>;

/** The peer of a request as "1.2.3.4:port" or "[v6]:port" ("?" when the socket is gone). */
export function requestRemote(req: Request, server: HttpServer): string {
  const ip = server.requestIP(req);
  return ip ? (ip.family === "IPv6" ? `[${ip.address}]:${ip.port}` : `${ip.address}:${ip.port}`) : "?";
}

export interface OpsHttp {
  /** The bound port (the ephemeral one when addr asked for port 0). */
  readonly port: number;
  /** Closes the listener and any open connections. */
  stop(): Promise<void>;
}

/** Binding failed (address in use, not permitted, not local); the message says which. */
export class OpsHttpError extends Error {
  override readonly name = "OpsHttpError";
}

const TEXT = "text/plain; charset=utf-8";

/** Without a websocket option no route upgrades; Bun still wants a handler. */
const NO_WEBSOCKETS: WebSocketHandler<unknown> = { message: (ws) => ws.close(1011, "no WebSocket service here") };

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers: { "content-type": TEXT, "cache-control": "no-store", ...headers } });
}

export function startOpsHttp(opts: OpsHttpOptions): OpsHttp {
  const { metrics, readiness, log } = opts;
  const parsed = parseListenAddress(opts.addr);
  if (!parsed) throw new OpsHttpError(`metrics HTTP: invalid address ${JSON.stringify(opts.addr)} (expected host:port or :port)`);

  const allow = opts.allow;
  const handle = async (req: Request, srv: HttpServer): Promise<Response | undefined> => {
    if (allow && !allow.empty) {
      const peer = srv.requestIP(req)?.address ?? "";
      if (!allow.allows(peer)) {
        opts.rejected?.();
        return text(403, "forbidden\n");
      }
    }
    const path = new URL(req.url).pathname;
    if (path !== "/metrics" && path !== "/ready" && path !== "/healthz") {
      const route = opts.routes?.[path];
      if (!route) return text(404, "not found\n");
      return route(req, srv);
    }
    // Bun answers HEAD with the headers of the GET response and no body.
    if (req.method !== "GET" && req.method !== "HEAD") return text(405, "method not allowed\n", { allow: "GET, HEAD" });
    switch (path) {
      case "/metrics":
        return new Response(await metrics.render(), { headers: { "content-type": metrics.contentType, "cache-control": "no-store" } });
      case "/ready": {
        const r = readiness();
        return r.ready ? text(200, "ready\n") : text(503, `not ready: ${r.reason || "unknown"}\n`);
      }
      default:
        return text(200, "ok\n");
    }
  };

  let server: HttpServer;
  try {
    server = Bun.serve({
      hostname: parsed.host,
      port: parsed.port,
      // No `development: false`: with it Bun 1.4.5 lets a second Bun.serve in the same process
      // bind an occupied port silently instead of failing with EADDRINUSE.
      fetch: handle,
      websocket: opts.websocket ?? NO_WEBSOCKETS,
      error(err) {
        log.error("metrics_http_error", { error: err.message });
        return text(500, "internal error\n");
      },
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const where = `${parsed.host}:${parsed.port}`;
    if (err.code === "EADDRINUSE") throw new OpsHttpError(`metrics HTTP: address ${where} is already in use`);
    if (err.code === "EACCES") throw new OpsHttpError(`metrics HTTP: not permitted to bind ${where}`);
    if (err.code === "EADDRNOTAVAIL") throw new OpsHttpError(`metrics HTTP: ${parsed.host} is not an address of this machine`);
    throw new OpsHttpError(`metrics HTTP: cannot listen on ${where}: ${err.message}`);
  }
  const port = server.port ?? parsed.port;
  log.info("metrics_listen", { addr: `${parsed.host}:${port}` });
  return {
    port,
    async stop() {
      await server.stop(true);
    },
  };
}
