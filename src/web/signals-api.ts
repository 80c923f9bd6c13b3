/**
 * HTTP API of the DBC signals (docs/dbc.md), served on the operations endpoint:
 *   GET /api/signals[?bus=NAME][&signals=MSG.SIG,…|&message=MSG|&match=TEXT&limit=N]  current values
 *   GET /api/dbc[?bus=NAME]                              the message/signal catalogue
 * Values are decoded from the stored latest frames on request, only those asked for.
 */
import type { SignalModel } from "../consumers/signal-model.ts";
import type { SignalReading, SignalStore } from "../consumers/signals.ts";
import type { DbcMessage } from "../dbc/index.ts";
import type { HttpRoute } from "../ops/http.ts";

/** Keys accepted in one ?signals= query (bounds the work one request can ask for). */
export const MAX_QUERY_SIGNALS = 1000;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v)), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });
}

function getOnly(req: Request): Response | null {
  if (req.method === "GET" || req.method === "HEAD") return null;
  return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
}

export function readingJson(r: SignalReading, now: number): Record<string, unknown> {
  return {
    message: r.message,
    signal: r.signal,
    value: Number.isFinite(r.value) ? r.value : r.valueName !== undefined ? null : String(r.value),
    raw: r.raw,
    unit: r.unit,
    ...(r.valueName !== undefined ? { valueName: r.valueName } : {}),
    updated: new Date(r.at).toISOString(),
    ageMs: Math.max(0, now - r.at),
    rate: Math.round(r.rate * 100) / 100,
  };
}

export function messageJson(m: DbcMessage): Record<string, unknown> {
  return {
    name: m.name,
    id: m.id,
    idHex: m.id.toString(16).toUpperCase().padStart(m.extended ? 8 : 3, "0"),
    extended: m.extended,
    fd: m.fd,
    length: m.length,
    transmitter: m.transmitter,
    comment: m.comment,
    signals: m.signals.map((s) => ({
      name: s.name,
      startBit: s.startBit,
      length: s.length,
      byteOrder: s.byteOrder,
      valueType: s.valueType,
      factor: s.factor,
      offset: s.offset,
      min: Number.isFinite(s.min) ? s.min : String(s.min),
      max: Number.isFinite(s.max) ? s.max : String(s.max),
      unit: s.unit,
      receivers: s.receivers,
      ...(s.isMultiplexor ? { multiplexor: true } : {}),
      ...(s.mux !== null ? { multiplexedBy: s.mux.multiplexor, muxValues: s.mux.ranges } : {}),
      comment: s.comment,
      ...(s.valueNames.size > 0 ? { valueNames: Object.fromEntries(s.valueNames) } : {}),
    })),
  };
}

/** `dbc` is the -dbc store (the catalogue's source), null when only Ampio feeds the model. */
export function signalRoutes(model: SignalModel, dbc: SignalStore | null, buses: readonly string[] = [model.bus], now: () => number = Date.now): Record<string, HttpRoute> {
  return {
    "/api/signals": (req) => {
      const bad = getOnly(req);
      if (bad !== null) return bad;
      const q = new URL(req.url).searchParams;
      let keys: Set<string> | undefined;
      const list = q.get("signals");
      const message = q.get("message");
      if (list !== null && list !== "") {
        const parts = list.split(",").filter((k) => k !== "");
        if (parts.length > MAX_QUERY_SIGNALS) return json({ error: `at most ${MAX_QUERY_SIGNALS} signals per request` }, 400);
        keys = new Set(parts);
      } else if (message !== null && message !== "") {
        const g = model.group(message);
        if (g === undefined) return json({ error: `no message '${message}' with values` }, 404);
        keys = new Set(g.signalNames().map((n) => `${message}.${n}`));
      }
      const t = now();
      const match = q.get("match");
      if (keys === undefined && match !== null) {
        // The dashboard's table: only what matches its filter, at most `limit` rows, is decoded.
        const limit = Math.max(1, Math.min(MAX_QUERY_SIGNALS, Number(q.get("limit")) || 200));
        const { readings, total } = model.readMatching(match, limit);
        return json({ bus: model.bus, buses, dbc: dbc?.file ?? null, time: new Date(t).toISOString(), total, signals: readings.map((r) => readingJson(r, t)) });
      }
      return json({ bus: model.bus, buses, dbc: dbc?.file ?? null, time: new Date(t).toISOString(), signals: model.readAll(keys).map((r) => readingJson(r, t)) });
    },
    "/api/dbc": (req) => {
      const bad = getOnly(req);
      if (bad !== null) return bad;
      if (dbc === null) return json({ error: "no DBC file (-dbc)" }, 404);
      const db = dbc.codec.db;
      return json({ bus: model.bus, file: dbc.file, version: db.version, nodes: db.nodes, warnings: db.warnings, messages: db.messages.map(messageJson) });
    },
  };
}
