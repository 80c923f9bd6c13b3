/**
 * `-print-config`: the effective configuration as TOML that `-config` reads back to the same
 * configuration, each value followed by where it came from (flag, environment, file, default).
 * Written here (Bun parses TOML but does not write it; the values are flat scalars and string
 * lists, for which a dependency would add nothing).
 */
import { FLAGS, type Config, type FlagSpec } from "./config.ts";
import type { BusConfig, ConfigJob, Configuration } from "./config-file.ts";
import type { ValueSource } from "./parse.ts";
import type { RouteConfig } from "../route/route.ts";
import { formatFrame } from "../can/frame.ts";

const NOT_PRINTED = new Set(["help", "version", "config", "print-config"]);
/** Secrets: said to be set, never printed (the output ends up in tickets and chats). */
const SECRET = new Set(["mqtt-password", "web-token"]);

/** Milliseconds as a Go duration the flag parser reads back ("1h30m", "2s", "50ms", "0"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  let us = Math.round(ms * 1000);
  let out = "";
  for (const [unit, size] of [
    ["h", 3_600_000_000],
    ["m", 60_000_000],
    ["s", 1_000_000],
    ["ms", 1000],
    ["us", 1],
  ] as const) {
    const n = Math.floor(us / size);
    if (n > 0) out += `${n}${unit}`;
    us -= n * size;
  }
  return out;
}

function value(spec: FlagSpec, v: unknown): string {
  switch (spec.kind) {
    case "bool":
      return v ? "true" : "false";
    case "int":
      return String(v);
    case "duration":
      return JSON.stringify(formatDuration(v as number));
    case "rate":
      return v === "auto" ? '"auto"' : String(v);
    case "peers":
    case "cidrs":
      return `[${(v as string[]).map((s) => JSON.stringify(s)).join(", ")}]`;
    default:
      return JSON.stringify(String(v));
  }
}

function source(spec: FlagSpec, s: ValueSource | undefined): string {
  if (s === "environment" && spec.env) return `environment ${spec.env}`;
  return s ?? "default";
}

/** A broker URL with its password (the bridge's fallback for -mqtt-password) masked, or null when it has none. */
function maskedUrlPassword(v: unknown): string | null {
  if (typeof v !== "string" || v === "") return null;
  try {
    const u = new URL(v);
    if (u.password === "") return null;
    u.password = "(not shown)";
    return u.href;
  } catch {
    return null;
  }
}

function line(spec: FlagSpec, config: Config, sources: ReadonlyMap<keyof Config, ValueSource>): string {
  if (SECRET.has(spec.name) && config[spec.key] !== "") return `# ${spec.name} = (set, not shown)  # ${source(spec, sources.get(spec.key))}`;
  if (spec.name === "mqtt-url") {
    // Commented out like the other secrets: read back without it rather than without its password.
    const masked = maskedUrlPassword(config[spec.key]);
    if (masked !== null) return `# ${spec.name} = ${JSON.stringify(masked)}  # ${source(spec, sources.get(spec.key))} (its password not shown)`;
  }
  return `${spec.name} = ${value(spec, config[spec.key])}  # ${source(spec, sources.get(spec.key))}`;
}

function hex(n: number): string {
  return JSON.stringify(n.toString(16).toUpperCase());
}

function route(r: RouteConfig): string[] {
  const out = ["[[route]]", `name = ${JSON.stringify(r.name)}`, `from = ${JSON.stringify(r.from)}`, `to = ${JSON.stringify(r.to)}`];
  const f = r.filters.map((t) => JSON.stringify(`${t.id.toString(16).toUpperCase().padStart(t.extended ? 8 : 3, "0")}/${t.mask.toString(16).toUpperCase()}`));
  out.push(`filter = [${f.join(", ")}]${f.length === 0 ? "  # every frame" : ""}`);
  if (r.rewrite?.and !== undefined) out.push(`id-and = ${hex(r.rewrite.and)}`);
  if (r.rewrite?.or !== undefined) out.push(`id-or = ${hex(r.rewrite.or)}`);
  if (r.rewrite?.xor !== undefined) out.push(`id-xor = ${hex(r.rewrite.xor)}`);
  if (r.rewrite?.set !== undefined) out.push(`id-set = ${hex(r.rewrite.set)}`);
  out.push(`hop-limit = ${r.hopLimit}`, `rate = ${r.rate}${r.rate === 0 ? "  # no limit of its own" : ""}`);
  return out;
}

function job(j: ConfigJob): string[] {
  const out = ["[[job]]", `name = ${JSON.stringify(j.id)}`, `bus = ${JSON.stringify(j.bus)}`, `frames = [${j.spec.frames.map((f) => JSON.stringify(formatFrame(f))).join(", ")}]`];
  if (j.spec.periodMs !== null) out.push(`period_ms = ${j.spec.periodMs}`);
  if (j.spec.count !== null) out.push(`count = ${j.spec.count}`);
  if (j.spec.startAt !== null) out.push(`start_at = ${JSON.stringify(new Date(j.spec.startAt).toISOString())}`);
  return out;
}

export function printConfig(c: Configuration): string {
  const out: string[] = [
    "# can-server effective configuration (-print-config); -config reads it back.",
    "# After each value: where it came from (flag, environment VARIABLE, file, default).",
  ];
  if (c.config.config) out.push(`# file: ${c.config.config}`);
  out.push("");
  const printed = FLAGS.filter((f) => !NOT_PRINTED.has(f.name));
  if (!c.busTables) {
    for (const spec of printed) out.push(line(spec, c.config, c.sources));
  } else {
    for (const spec of printed) if (!spec.bus && spec.name !== "socketcand-bus") out.push(line(spec, c.config, c.sources));
    for (const b of c.buses as readonly BusConfig[]) {
      out.push("", "[[bus]]", `name = ${JSON.stringify(b.name)}`);
      for (const spec of printed) if (spec.bus) out.push(line(spec, b.config, b.sources));
    }
  }
  for (const r of c.routes) out.push("", ...route(r));
  for (const j of c.jobs) out.push("", ...job(j));
  return out.join("\n") + "\n";
}
