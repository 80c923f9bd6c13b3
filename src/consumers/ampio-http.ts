/**
 * POST /api/ampio/command: the dashboard's Ampio view switches an output, sets a level or a flag
 * through the same command path as the MQTT tree (parseRequest in ./mqtt/ampio-tree.ts builds the
 * same frames aioampio sends), onto the bus through a TX lane per source host (its rate, expiry,
 * echo; -tx-allow applies to the browser's address). Only with -web-tx and the -web-token (compared
 * in constant time). Body (JSON, at most 1 KiB):
 *
 *   {"module":"1D4C","type":"o","channel":3,"value":"1","token":"…"}     type: o | f | rgbw | raw
 *
 * Answers 200 {"ok":true,"command":"output 3 on","frames":["0F000000#00001D4C15FF02"]} once the
 * frames are handed to the lane (what the bus made of them shows in the view, live); 400 malformed,
 * 403 sending off / wrong token / another site's page (Origin ≠ Host) / outside -tx-allow, 404 unknown module, 405, 413, 429 when the
 * lane refused the frames (rate limit). Every refusal is counted by reason and logged once per
 * reason (`ampio_command_refused`).
 */
import { timingSafeEqual } from "node:crypto";
import type * as Prom from "prom-client";
import { mirrorCounter } from "../ops/prom-mirror.ts";
import type { HouseNames } from "../ampio/names.ts";
import { formatFrame } from "../can/frame.ts";
import type { Hub } from "../hub/hub.ts";
import type { TxLane } from "../hub/tx-scheduler.ts";
import type { CidrList } from "../net/cidr.ts";
import { type HttpRoute, requestRemote } from "../ops/http.ts";
import type { Logger } from "../ops/log.ts";
import type { AmpioDecoder } from "./ampio-decoder.ts";
import { moduleFacts, parseRequest } from "./mqtt/ampio-tree.ts";

/** Source hosts with an open lane at once; the least recently used is closed past it. */
export const COMMAND_LANES_MAX = 32;
const BODY_MAX = 1024;

export interface AmpioCommandDeps {
  readonly decoder: AmpioDecoder;
  readonly names: HouseNames;
  /** -web-tx and -web-token ("" = sending impossible). */
  readonly enabled: boolean;
  readonly token: string;
  readonly log: Logger;
  /** Known once the gateway runs (the route exists before it). */
  readonly gateway: () => { hub: Hub; txAllow: CidrList | null; allocateId: () => number } | null;
}

export const AMPIO_COMMAND_REFUSALS = ["disabled", "bad_token", "foreign_origin", "read_only", "malformed", "unknown_module", "undocumented", "dropped"] as const;
type Refusal = (typeof AMPIO_COMMAND_REFUSALS)[number];

function tokenMatches(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return want !== "" && a.length === b.length && timingSafeEqual(a, b);
}

function hostOf(remote: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(remote) ?? /^([^:]+):\d+$/.exec(remote);
  return m ? m[1]! : remote;
}

export class AmpioCommands {
  readonly refused = new Map<Refusal, number>(AMPIO_COMMAND_REFUSALS.map((r) => [r, 0]));
  sent = 0;
  private readonly lanes = new Map<string, TxLane>();
  private readonly logged = new Set<Refusal>();

  constructor(private readonly deps: AmpioCommandDeps) {}

  /** Whether the dashboard may send (the view shows controls only then). */
  get enabled(): boolean {
    return this.deps.enabled && this.deps.token !== "";
  }

  route(): HttpRoute {
    return async (req, server) => {
      if (req.method !== "POST") return new Response("method not allowed\n", { status: 405, headers: { allow: "POST" } });
      const remote = requestRemote(req, server);
      // A page from another site must not drive the bus through a user's browser.
      const origin = req.headers.get("origin");
      if (origin !== null && origin !== "null") {
        let same = false;
        try {
          same = new URL(origin).host === req.headers.get("host");
        } catch {
          same = false;
        }
        if (!same) return this.refuse("foreign_origin", remote, 403, "a command from another site's page");
      }
      const text = await req.text();
      if (text.length > BODY_MAX) return this.refuse("malformed", remote, 413, `body larger than ${BODY_MAX} bytes`);
      let body: Record<string, unknown>;
      try {
        const v: unknown = JSON.parse(text);
        if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not an object");
        body = v as Record<string, unknown>;
      } catch {
        return this.refuse("malformed", remote, 400, "the body must be a JSON object");
      }
      return this.command(body, remote);
    };
  }

  /** One command (the route's body), from `remote`. */
  command(body: Record<string, unknown>, remote: string): Response {
    if (!this.enabled) return this.refuse("disabled", remote, 403, "sending is disabled (start the gateway with -web-tx and -web-token)");
    if (typeof body.token !== "string" || !tokenMatches(body.token, this.deps.token)) return this.refuse("bad_token", remote, 403, "wrong token");
    const g = this.deps.gateway();
    if (g === null) return this.refuse("dropped", remote, 503, "the gateway is starting");
    const host = hostOf(remote);
    if (g.txAllow !== null && !g.txAllow.allows(host)) return this.refuse("read_only", remote, 403, "this address may not transmit (-tx-allow)");
    const { module, type, channel, value } = body;
    if (typeof module !== "string" || typeof type !== "string" || !/^(o|f|rgbw|raw)$/.test(type)) return this.refuse("malformed", remote, 400, "module (hex) and type (o, f, rgbw, raw) are required");
    const payload = typeof value === "number" ? String(value) : typeof value === "string" ? value : null;
    if (payload === null) return this.refuse("malformed", remote, 400, "value must be a number or a string");
    let topic: string;
    if (type === "raw") topic = `ampio/to/${module}/raw`;
    else if (typeof channel === "number" && Number.isInteger(channel)) topic = `ampio/to/${module}/${type}/${channel}/cmd`;
    else return this.refuse("malformed", remote, 400, "channel must be an integer");
    // The same path as the MQTT command topics (one parser, one set of frames).
    const r = parseRequest(topic, payload, moduleFacts(this.deps.decoder, this.deps.names));
    if (r.kind === "refused") return this.refuse(r.refusal, remote, r.refusal === "unknown_module" ? 404 : 400, r.reason);
    if (r.kind !== "command") return this.refuse("malformed", remote, 400, "not a command");
    const lane = this.laneFor(host, remote, g);
    let accepted = 0;
    for (const f of r.frames) if (lane.send(f)) accepted++;
    this.sent += accepted;
    const frames = r.frames.map(formatFrame);
    if (accepted < r.frames.length) {
      const reasons = [...lane.dropped.keys()].join(",") || "refused";
      return this.refuse("dropped", remote, 429, `${r.frames.length - accepted} of ${r.frames.length} frames dropped by the TX lane (${reasons})`, { frames });
    }
    this.deps.log.info("ampio_command", { remote, command: r.what, frames: frames.join(" ") });
    return Response.json({ ok: true, command: r.what, frames });
  }

  private laneFor(host: string, remote: string, g: { hub: Hub; allocateId: () => number }): TxLane {
    let lane = this.lanes.get(host);
    if (lane !== undefined) {
      this.lanes.delete(host); // re-inserted: least recently used first
      this.lanes.set(host, lane);
      return lane;
    }
    if (this.lanes.size >= COMMAND_LANES_MAX) {
      const [oldHost, oldLane] = this.lanes.entries().next().value as [string, TxLane];
      this.lanes.delete(oldHost);
      oldLane.close();
    }
    lane = g.hub.openTx({ id: g.allocateId(), protocol: "web-ampio", remote }, false);
    this.lanes.set(host, lane);
    return lane;
  }

  private refuse(reason: Refusal, remote: string, status: number, error: string, extra: Record<string, unknown> = {}): Response {
    this.refused.set(reason, this.refused.get(reason)! + 1);
    if (!this.logged.has(reason)) {
      this.logged.add(reason);
      this.deps.log.warn("ampio_command_refused", { remote, reason, error });
    }
    return Response.json({ ok: false, reason, error, ...extra }, { status });
  }

  registerMetrics(registry: Prom.Registry, prom: typeof Prom): void {
    const self = this;
    mirrorCounter(prom.Counter, registry, "ampio_command_frames_total", "Frames the dashboard's Ampio view handed to its TX lanes (POST /api/ampio/command).", () => this.sent);
    new prom.Counter({
      name: "ampio_command_refused_total",
      help: "Dashboard Ampio commands refused, by reason (disabled, bad_token, foreign_origin, read_only, malformed, unknown_module, undocumented, dropped).",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of self.refused) this.inc({ reason }, n);
      },
    });
  }

  close(): void {
    for (const l of this.lanes.values()) l.close();
    this.lanes.clear();
  }
}
