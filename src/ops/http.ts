/**
 * The operations HTTP endpoint on `-metrics-addr` (Bun.serve): /metrics in the Prometheus text
 * format, /ready (200 "ready" while the gateway can serve clients, else 503 with the reason, for
 * load balancers and systemd health checks), /healthz (200 while the process answers at all).
 * GET and HEAD only; everything else is 404 or 405. Port 0 binds an ephemeral port, reported
 * back in `port` (tests and the release smoke test use it).
 *
 * With `admission` (the gateway always passes it) the public port is the admission layer's front
 * door (src/net/http-front.ts): connections are admitted or refused at accept, and Bun.serve
 * listens on a loopback port behind it, serving only what came through the front. With `hosts`,
 * every request's Host (DNS rebinding) and a WebSocket's or state-changing request's Origin
 * (cross-site use) are checked (src/net/http-hosts.ts); refusals answer 403, are counted in
 * http_rejected_requests_total and logged once per burst.
 */
import type { Server, WebSocketHandler } from "bun";
import { parseListenAddress } from "../net/address.ts";
import type { Admission } from "../net/admission.ts";
import { startHttpFront, type HttpFront } from "../net/http-front.ts";
import type { HostCheck } from "../net/http-hosts.ts";
import { RefusalLog } from "../net/refusals.ts";
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
  /** Admits connections at accept (the gateway's admission layer); absent: Bun.serve on the port itself. */
  admission?: Admission;
  /** Host and Origin checks (DNS rebinding, cross-site WebSockets); absent: none. */
  hosts?: HostCheck;
  /** Called for each refused request (counted as http_rejected_requests_total). */
  rejected?: () => void;
  /**
   * More routes by exact path (e.g. "/api/ampio/modules", "/capture.pcap", "/"): each handler
   * gets the request and the server (peer address); its methods are its own business. The
   * built-in paths above win, and -allow applies to every route. A key ending in "*" serves every
   * path that starts with what comes before it (e.g. "/api/v1/*"; an exact key wins).
   */
  routes?: Readonly<Record<string, HttpRoute>>;
  /** How upgraded WebSockets are served (the dashboard's src/web/ws.ts); none: no route may upgrade. */
  websocket?: WebSocketHandler<unknown>;
}

/** The server a route runs on (requestIP, upgrade, timeout); WebSocket data is the route's business. */
export type HttpServer = Server<unknown>;

/** A route handler; one that upgraded the request to a WebSocket returns undefined. */
export type HttpRoute = (req: Request, server: HttpServer) => Response | undefined | Promise<Response | undefined>;

/** The route whose "prefix*" key starts `path`, if any. */
function prefixRoute(routes: Readonly<Record<string, HttpRoute>> | undefined, path: string): HttpRoute | undefined {
  if (!routes) return undefined;
  for (const [key, route] of Object.entries(routes)) if (key.endsWith("*") && path.startsWith(key.slice(0, -1))) return route;
  return undefined;
}

/** Servers behind a front door: the real peer is the front's, looked up by the splice's port. */
const fronts = new WeakMap<object, HttpFront>();

/** The real peer of a request: its address and "1.2.3.4:port" / "[v6]:port"; null when unknown. */
export function requestPeer(req: Request, server: HttpServer): { address: string; remote: string } | null {
  const ip = server.requestIP(req);
  if (!ip) return null;
  const front = fronts.get(server);
  if (front) return front.peerOf(ip.port) ?? null;
  return { address: ip.address, remote: ip.family === "IPv6" ? `[${ip.address}]:${ip.port}` : `${ip.address}:${ip.port}` };
}

/** The peer of a request as "1.2.3.4:port" or "[v6]:port" ("?" when the socket is gone). */
export function requestRemote(req: Request, server: HttpServer): string {
  return requestPeer(req, server)?.remote ?? "?";
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
  const refusals = new RefusalLog(log, "http_request_refused");
  const refuse = (reason: string, req: Request, remote: string, hint: string): Response => {
    opts.rejected?.();
    refusals.note({ reason, remote, host: req.headers.get("host") ?? "", origin: req.headers.get("origin") ?? "" });
    return text(403, `forbidden: ${hint}\n`);
  };
  const handle = async (req: Request, srv: HttpServer): Promise<Response | undefined> => {
    const peer = requestPeer(req, srv);
    if (opts.admission && !peer) return refuse("not_through_front", req, "?", "connect to the public port");
    if (allow && !allow.empty && !allow.allows(peer?.address ?? "")) return refuse("not_allowed", req, peer?.remote ?? "?", "not in -allow");
    const hosts = opts.hosts;
    if (hosts) {
      const host = req.headers.get("host");
      if (!hosts.hostAllowed(host)) return refuse("host", req, peer?.remote ?? "?", `this gateway does not answer to the name ${JSON.stringify(host)} (add it to -http-hosts)`);
      const stateChanging = req.method !== "GET" && req.method !== "HEAD";
      const upgrade = req.headers.get("upgrade") !== null;
      if ((stateChanging || upgrade) && !hosts.originAllowed(req.headers.get("origin"), host)) {
        return refuse("origin", req, peer?.remote ?? "?", "cross-site request (the Origin is not this gateway)");
      }
    }
    const path = new URL(req.url).pathname;
    if (path !== "/metrics" && path !== "/ready" && path !== "/healthz") {
      const route = opts.routes?.[path] ?? prefixRoute(opts.routes, path);
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

  const front = opts.admission !== undefined;
  let server: HttpServer;
  try {
    server = Bun.serve({
      hostname: front ? "127.0.0.1" : parsed.host,
      port: front ? 0 : parsed.port,
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
    throw bindError(e, front ? "127.0.0.1" : parsed.host, front ? 0 : parsed.port);
  }
  let door: HttpFront | null = null;
  if (opts.admission) {
    try {
      door = startHttpFront({ hostname: parsed.host, port: parsed.port, innerPort: server.port!, admission: opts.admission, log });
    } catch (e) {
      void server.stop(true);
      throw bindError(e, parsed.host, parsed.port);
    }
    fronts.set(server, door);
  }
  const port = door ? door.port : (server.port ?? parsed.port);
  log.info("metrics_listen", { addr: `${parsed.host}:${port}`, ...(opts.hosts ? { host_names: opts.hosts.accepted.join(",") } : {}) });
  return {
    port,
    async stop() {
      door?.stop();
      await server.stop(true);
    },
  };
}

function bindError(e: unknown, host: string, port: number): OpsHttpError {
  const err = e as NodeJS.ErrnoException;
  const where = `${host}:${port}`;
  if (err.code === "EADDRINUSE") return new OpsHttpError(`metrics HTTP: address ${where} is already in use`);
  if (err.code === "EACCES") return new OpsHttpError(`metrics HTTP: not permitted to bind ${where}`);
  if (err.code === "EADDRNOTAVAIL") return new OpsHttpError(`metrics HTTP: ${host} is not an address of this machine`);
  return new OpsHttpError(`metrics HTTP: cannot listen on ${where}: ${err.message}`);
}
