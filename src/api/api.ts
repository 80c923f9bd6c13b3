/**
 * The versioned HTTP API (`/api/v1/…`, issue 21 item 1; docs/api.md), served by the HTTP endpoint
 * behind the same admission, -allow and Host/Origin checks as the dashboard (src/ops/http.ts).
 * Reading follows the dashboard's rules; everything that changes the bus (POST, PATCH, DELETE)
 * needs -web-tx, the token (`Authorization: Bearer T`, compared in constant time, wrong guesses
 * throttled per host like the dashboard's: src/net/throttle.ts) and the caller's address in
 * -tx-allow. Errors are problem+json (./problem.ts); every refusal is counted by kind.
 *
 * Sent frames go through a TX lane of the caller's own (one per caller host and bus, closed when
 * idle), so -client-tx-rate, fairness, -tx-max-age and the truthful echo apply as to any client;
 * the answer waits for each frame's outcome, at most -tx-max-age plus a second.
 */
import type { Config } from "../cli/config.ts";
import type { Bus, Gateway } from "../gateway.ts";
import { busBitrate } from "../gateway.ts";
import type { TxLane, TxOutcome } from "../hub/tx-scheduler.ts";
import { hostOfRemote } from "../net/address.ts";
import { FailureThrottle, secretMatches } from "../net/throttle.ts";
import { RefusalLog } from "../net/refusals.ts";
import { requestPeer, type HttpRoute, type HttpServer } from "../ops/http.ts";
import type { Logger } from "../ops/log.ts";
import type { CanFrame } from "../can/frame.ts";
import { Job, JobError, Jobs } from "../jobs/jobs.ts";
import { JobInputError, parseJobInput, parseJobPatch } from "../jobs/job-input.ts";
import { FrameJsonError, frameFromJson, frameToJson } from "../can/frame-json.ts";
import { LatestFrames } from "./latest-frames.ts";
import { describeRoute } from "../route/describe.ts";
import { json, problem, type ProblemKind } from "./problem.ts";
import { openApiDocument } from "./openapi.ts";
import { MAX_BODY_BYTES, MAX_FRAMES_PER_REQUEST } from "./limits.ts";

export { MAX_BODY_BYTES, MAX_FRAMES_PER_REQUEST };

/** A caller's lane unused this long is closed. */
const LANE_IDLE_MS = 60_000;
/** Caller lanes kept at most (the stalest idle one is closed beyond). */
const MAX_LANES = 256;

export const API_PREFIX = "/api/v1/";

/** Requests refused by the API, by kind (api_requests_refused_total{reason}). */
export class ApiCounters {
  requests = 0;
  readonly refused = new Map<ProblemKind, number>();
  framesSent = 0;
  framesRefused = 0;
}

export interface ApiDeps {
  readonly gateway: Gateway;
  readonly config: Config;
  readonly log: Logger;
  readonly jobs: Jobs;
  /** The dashboard's throttle of wrong -web-token guesses (one per host for both ways in). */
  readonly guesses: FailureThrottle;
  readonly counters: ApiCounters;
}

interface CallerLane {
  readonly lane: TxLane;
  lastUsed: number;
}

export interface Api {
  readonly route: HttpRoute;
  /** The latest frames of each bus (index = bus index). */
  readonly latest: readonly LatestFrames[];
  readonly counters: ApiCounters;
  stop(): void;
}

type Outcome = { status: "sent" } | { status: "refused"; reason: string; detail: string } | { status: "pending"; detail: string };

const REASON_TEXT: Record<Exclude<TxOutcome, "sent">, string> = {
  read_only: "this address may not send (-tx-allow)",
  rate_limited: "over this host's transmit rate (-client-tx-rate)",
  tx_queue_full: "this host's transmit queue is full",
  unsupported: "the bus cannot carry this frame (e.g. CAN FD without -fd)",
  backend_down: "the bus is down",
  expired: "not on the bus within -tx-max-age",
  write_failed: "writing to the bus failed",
  unconfirmed: "written, but the bus never confirmed it",
};

export function startApi(deps: ApiDeps): Api {
  const { gateway, config, jobs, counters, guesses } = deps;
  const txEnabled = config.webTx && config.webToken !== "";
  const txAllow = gateway.registry.limits.txAllow;
  const refusalLog = new RefusalLog(deps.log, "api_request_refused");
  const latest = gateway.buses.map((b) => new LatestFrames(gateway.registry.allocateId(), b.hub));
  const sampler = setInterval(() => {
    for (const l of latest) l.sample();
  }, 1000);
  const lanes = new Map<string, CallerLane>();
  const waitBoundMs = config.txMaxAgeMs + 1000;

  const refuse = (status: number, kind: ProblemKind, detail: string, remote: string, headers: Record<string, string> = {}): Response => {
    counters.refused.set(kind, (counters.refused.get(kind) ?? 0) + 1);
    if (status === 401 || status === 403 || status === 429) refusalLog.note({ reason: kind, remote });
    return problem(status, kind, detail, headers);
  };

  /** null when the caller may change the bus; else the refusal. */
  const authorize = (req: Request, remote: string): Response | null => {
    if (!txEnabled) return refuse(403, "tx_disabled", "sending is disabled: start the gateway with -web-tx and -web-token", remote);
    const host = hostOfRemote(remote);
    const wait = guesses.lockedFor(host);
    if (wait > 0) return refuse(429, "locked_out", `too many wrong tokens from this address; retry in ${Math.ceil(wait / 1000)} s`, remote, { "retry-after": String(Math.ceil(wait / 1000)) });
    const auth = req.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (!m) return refuse(401, "no_token", 'this request needs the token: "Authorization: Bearer <-web-token>"', remote, { "www-authenticate": 'Bearer realm="can-server"' });
    if (!secretMatches(m[1]!, config.webToken)) {
      guesses.failed(host);
      return refuse(401, "bad_token", "wrong token", remote, { "www-authenticate": 'Bearer realm="can-server", error="invalid_token"' });
    }
    guesses.succeeded(host);
    if (!txAllow.empty && !txAllow.allows(host)) return refuse(403, "tx_not_allowed", `${host} is not in -tx-allow: it may read, not send`, remote);
    return null;
  };

  const laneFor = (bus: Bus, remote: string): TxLane => {
    const now = performance.now();
    for (const [k, l] of lanes) {
      if (now - l.lastUsed < LANE_IDLE_MS && lanes.size < MAX_LANES) break; // Map order = least recently used first
      l.lane.close();
      lanes.delete(k);
    }
    const key = `${bus.index}|${hostOfRemote(remote)}`;
    let l = lanes.get(key);
    if (l) lanes.delete(key);
    else l = { lane: bus.hub.openTx({ id: gateway.registry.allocateId(), protocol: "http", remote }, false, "buffered"), lastUsed: now };
    l.lastUsed = now;
    lanes.set(key, l);
    return l.lane;
  };

  const readBody = async (req: Request, remote: string): Promise<string | Response> => {
    const declared = Number(req.headers.get("content-length") ?? "0");
    if (declared > MAX_BODY_BYTES) return refuse(413, "too_large", `the body may be at most ${MAX_BODY_BYTES} bytes`, remote);
    if (!req.body) return "";
    const reader = req.body.getReader();
    const chunks: Uint8Array[] = [];
    let n = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > MAX_BODY_BYTES) {
        void reader.cancel();
        return refuse(413, "too_large", `the body may be at most ${MAX_BODY_BYTES} bytes`, remote);
      }
      chunks.push(value);
    }
    return Buffer.concat(chunks).toString("utf8");
  };

  const readJson = async (req: Request, remote: string): Promise<unknown> => {
    const type = (req.headers.get("content-type") ?? "application/json").split(";")[0]!.trim().toLowerCase();
    // curl -d labels JSON as a form: anything but a multipart upload is read as JSON.
    if (type.startsWith("multipart/")) return refuse(415, "unsupported_media_type", "send application/json", remote);
    const text = await readBody(req, remote);
    if (text instanceof Response) return text;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return refuse(400, "bad_request", "the body is not valid JSON", remote);
    }
  };

  const busJson = (b: Bus): Record<string, unknown> => {
    const l = latest[b.index]!;
    const h = b.backend.health?.() ?? null;
    // -bitrate wins; else what the controller runs at, where the backend knows; else the backend's default.
    const bitrate = b.config.bitrate > 0 ? b.config.bitrate : h?.bitrate ? h.bitrate : busBitrate(b.config);
    // Every field the backend reports (BusHealth and what only it knows, e.g. SocketCAN's kind and
    // source), top-level keys in the API's snake_case.
    const health = h === null ? null : Object.fromEntries(Object.entries(h).filter(([, v]) => v !== undefined).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v as unknown]));
    const s = b.stats;
    return {
      name: b.name,
      index: b.index,
      default: b.index === 0,
      backend: b.backend.kind,
      state: b.backend.up ? "up" : "down",
      reason: b.backend.up ? "" : b.backend.downReason || "not started",
      bitrate,
      // The gateway resolved it at start-up (src/gateway.ts resolveBitrate): -bitrate, the interface, the default.
      bitrate_source: b.bitrateSource === "flag" ? "configured" : b.bitrateSource === "interface" || h?.bitrate ? "controller" : "assumed",
      fd: b.config.fd && b.backend.fdCapable,
      load: bitrate > 0 ? Math.min(1, l.bitRate / bitrate) : 0,
      frames_per_s: l.frameRate,
      bits_per_s: l.bitRate,
      // error-active, error-warning, error-passive, bus-off… where the backend reports it; null where it cannot.
      error_state: h?.state ?? null,
      health,
      counters: {
        frames: l.frames,
        ids: l.ids.size,
        tx_sent: s.clientTxSent,
        tx_dropped: Object.fromEntries(s.txDropped),
        backend_reconnects: s.backendReconnects,
        serial_rx_noise_bytes: s.serialRxNoiseBytes,
      },
      clients: b.hub.size,
      tx_queued: b.hub.txQueued,
      jobs: jobs.list(b.name).length,
    };
  };

  const sendFrames = async (bus: Bus, frames: readonly CanFrame[], remote: string): Promise<Outcome[]> => {
    const lane = laneFor(bus, remote);
    const results: Promise<Outcome>[] = frames.map(
      (f) =>
        new Promise<Outcome>((resolve) => {
          lane.send(f, (o) => resolve(o === "sent" ? { status: "sent" } : { status: "refused", reason: o, detail: REASON_TEXT[o] }));
        }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), waitBoundMs)));
    const settled: (Outcome | null)[] = frames.map(() => null);
    results.forEach((p, i) => void p.then((o) => (settled[i] = o)));
    await Promise.race([Promise.all(results), bound]);
    clearTimeout(timer);
    const out = settled.map((o) => o ?? { status: "pending" as const, detail: "no outcome yet; the frame may still reach the bus" });
    for (const o of out) {
      if (o.status === "sent") counters.framesSent++;
      else if (o.status === "refused") counters.framesRefused++;
    }
    return out;
  };

  const parseFramesBody = async (req: Request, remote: string): Promise<CanFrame[] | Response> => {
    const type = (req.headers.get("content-type") ?? "application/json").split(";")[0]!.trim().toLowerCase();
    let items: unknown[];
    if (type === "text/plain") {
      const text = await readBody(req, remote);
      if (text instanceof Response) return text;
      items = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
      // candump -L lines ("(ts) can0 123#00"): the frame is the last word.
      items = items.map((l) => String(l).split(/\s+/).pop()!);
    } else {
      const body = await readJson(req, remote);
      if (body instanceof Response) return body;
      if (typeof body !== "object" || body === null || Array.isArray(body)) return refuse(400, "bad_request", 'the body is {"frames": [...]} or {"frame": {...}}', remote);
      const o = body as { frames?: unknown; frame?: unknown };
      if (o.frames !== undefined) {
        if (!Array.isArray(o.frames)) return refuse(400, "bad_request", "frames must be a list", remote);
        items = o.frames;
      } else if (o.frame !== undefined) items = [o.frame];
      else return refuse(400, "bad_request", 'the body is {"frames": [...]} or {"frame": {...}}', remote);
    }
    if (items.length === 0) return refuse(400, "bad_request", "no frames given", remote);
    if (items.length > MAX_FRAMES_PER_REQUEST) return refuse(400, "too_many_frames", `at most ${MAX_FRAMES_PER_REQUEST} frames per request (got ${items.length})`, remote);
    try {
      return items.map((f, i) => frameFromJson(f, `frames[${i}]`));
    } catch (e) {
      return refuse(400, "bad_frame", e instanceof FrameJsonError ? e.message : String(e), remote);
    }
  };

  const methodNotAllowed = (allow: string, remote: string): Response => refuse(405, "method", `allowed here: ${allow}`, remote, { allow });
  const isRead = (m: string): boolean => m === "GET" || m === "HEAD";

  const jobProblem = (e: unknown, remote: string): Response => {
    if (e instanceof JobInputError) return refuse(400, "bad_request", e.message, remote);
    if (e instanceof JobError) return refuse(e.status, e.status === 404 ? "no_bus" : e.status === 503 ? "unavailable" : "conflict", e.message, remote);
    throw e;
  };

  const route: HttpRoute = async (req: Request, server: HttpServer) => {
    counters.requests++;
    const remote = requestPeer(req, server)?.remote ?? "?";
    const path = new URL(req.url).pathname;
    let parts: string[];
    try {
      parts = path.slice(API_PREFIX.length).split("/").map(decodeURIComponent);
    } catch {
      // A malformed %-escape (URIError) names no bus or job.
      return refuse(404, "no_route", `no such API path ${path} (malformed %-escape); see /api/v1/openapi.json`, remote);
    }
    if (parts[parts.length - 1] === "") parts.pop();
    const m = req.method;
    if (parts.length === 1 && parts[0] === "openapi.json") {
      if (!isRead(m)) return methodNotAllowed("GET, HEAD", remote);
      return json(200, openApiDocument());
    }
    if (parts.length === 1 && parts[0] === "jobs") {
      if (!isRead(m)) return methodNotAllowed("GET, HEAD", remote);
      return json(200, { persistent: jobs.persistent, jobs: jobs.list().map((j) => jobs.toJson(j)) });
    }
    if (parts.length === 1 && parts[0] === "routes") {
      if (!isRead(m)) return methodNotAllowed("GET, HEAD", remote);
      return json(200, { routes: gateway.routes.map(describeRoute) });
    }
    if (parts[0] !== "buses" || parts.length > 4) return refuse(404, "no_route", `no such API path ${path}; see /api/v1/openapi.json`, remote);
    if (parts.length === 1) {
      if (!isRead(m)) return methodNotAllowed("GET, HEAD", remote);
      return json(200, { buses: gateway.buses.map(busJson) });
    }
    const bus = gateway.bus(parts[1]!);
    if (!bus) return refuse(404, "no_bus", `no bus ${JSON.stringify(parts[1])}; buses: ${gateway.buses.map((b) => b.name).join(", ")}`, remote);
    if (parts.length === 2) {
      if (!isRead(m)) return methodNotAllowed("GET, HEAD", remote);
      return json(200, busJson(bus));
    }
    if (parts[2] === "frames" && parts.length === 3) {
      if (isRead(m)) {
        const l = latest[bus.index]!;
        const nowUs = Date.now() * 1000;
        const rows = [...l.ids.values()].map((e) => ({ ...frameToJson(e.frame), count: e.count, ts: e.frame.ts / 1e6, age_ms: Math.max(0, (nowUs - e.frame.ts) / 1000) }));
        rows.sort((a, b) => Number(a.ext) - Number(b.ext) || a.id - b.id);
        return json(200, { bus: bus.name, frames: rows, ids_overflow: l.overflow });
      }
      if (m !== "POST") return methodNotAllowed("GET, HEAD, POST", remote);
      const denied = authorize(req, remote);
      if (denied) return denied;
      const frames = await parseFramesBody(req, remote);
      if (frames instanceof Response) return frames;
      const results = await sendFrames(bus, frames, remote);
      return json(200, { results, sent: results.filter((r) => r.status === "sent").length, refused: results.filter((r) => r.status === "refused").length });
    }
    if (parts[2] === "jobs") {
      if (parts.length === 3) {
        if (isRead(m)) return json(200, { persistent: jobs.persistent, jobs: jobs.list(bus.name).map((j) => jobs.toJson(j)) });
        if (m !== "POST") return methodNotAllowed("GET, HEAD, POST", remote);
        const denied = authorize(req, remote);
        if (denied) return denied;
        const body = await readJson(req, remote);
        if (body instanceof Response) return body;
        let job: Job;
        try {
          job = jobs.create(bus.name, parseJobInput(body));
        } catch (e) {
          return jobProblem(e, remote);
        }
        // 201 once the job is in the state file (it survives a restart from now on).
        await jobs.flushed();
        return json(201, jobs.toJson(job), { location: `${API_PREFIX}buses/${encodeURIComponent(bus.name)}/jobs/${job.id}` });
      }
      const job = jobs.get(parts[3]!);
      if (!job || job.bus.name !== bus.name) return refuse(404, "no_job", `no job ${JSON.stringify(parts[3])} on bus ${bus.name}`, remote);
      if (isRead(m)) return json(200, jobs.toJson(job));
      if (m !== "PATCH" && m !== "DELETE") return methodNotAllowed("GET, HEAD, PATCH, DELETE", remote);
      const denied = authorize(req, remote);
      if (denied) return denied;
      try {
        if (m === "DELETE") {
          jobs.remove(job);
          await jobs.flushed();
          return new Response(null, { status: 204 });
        }
        const body = await readJson(req, remote);
        if (body instanceof Response) return body;
        jobs.update(job, parseJobPatch(body));
      } catch (e) {
        return jobProblem(e, remote);
      }
      await jobs.flushed();
      return json(200, jobs.toJson(job));
    }
    return refuse(404, "no_route", `no such API path ${path}; see /api/v1/openapi.json`, remote);
  };

  return {
    route,
    latest,
    counters,
    stop() {
      clearInterval(sampler);
      for (const l of latest) l.detach();
      for (const l of lanes.values()) l.lane.close();
      lanes.clear();
    },
  };
}
