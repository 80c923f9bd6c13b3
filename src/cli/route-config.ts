/**
 * A configuration file's `[[route]]` table → RouteConfig (src/route/route.ts), or one ConfigError
 * naming the file, line and key and what is accepted.
 */
import { parseRouteFilter, type IdRewrite, type RouteConfig, type RouteFilter } from "../route/route.ts";
import { ConfigError } from "./parse.ts";

export type { RouteConfig };

const KEYS = ["name", "from", "to", "filter", "id-and", "id-or", "id-xor", "id-set", "hop-limit", "rate"] as const;

/** `where(key)` names the key in errors ("FILE line N: key K in [[route]] #i"). */
export function parseRoute(t: Record<string, unknown>, buses: readonly string[], where: (key: string) => string): RouteConfig {
  for (const key of Object.keys(t)) {
    if (!(KEYS as readonly string[]).includes(key)) throw new ConfigError(`${where(key)}: unknown route setting; a [[route]] accepts ${KEYS.join(", ")}`);
  }
  const bus = (key: "from" | "to"): string => {
    const v = t[key];
    if (typeof v !== "string" || !buses.includes(v)) {
      throw new ConfigError(`${where(key)}: ${v === undefined ? "missing; " : ""}expected the name of a bus: ${buses.map((b) => `"${b}"`).join(", ")}`);
    }
    return v;
  };
  const from = bus("from");
  const to = bus("to");
  if (from === to) throw new ConfigError(`${where("to")}: a route goes from one bus to another, not back to "${from}"`);
  const raw = t.filter;
  const list = raw === undefined ? [] : typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) throw new ConfigError(`${where("filter")}: expected a list of "ID/MASK" strings, e.g. ["100/700", "1D4C/FFFF"]`);
  const filters: RouteFilter[] = [];
  for (const text of list as string[]) {
    const f = parseRouteFilter(text);
    if (typeof f === "string") throw new ConfigError(`${where("filter")}: ${f}`);
    filters.push(f);
  }
  const hex = (key: string): number | undefined => {
    const v = t[key];
    if (v === undefined) return undefined;
    const n = typeof v === "number" ? v : typeof v === "string" && /^(0x)?[0-9a-fA-F]{1,8}$/.test(v) ? parseInt(v.replace(/^0x/, ""), 16) : NaN;
    if (!Number.isInteger(n) || n < 0 || n > 0x1fffffff) throw new ConfigError(`${where(key)}: expected an id or mask in hex, as a string ("1FFFFF00"), at most 29 bits`);
    return n >>> 0;
  };
  const rw: { and?: number; or?: number; xor?: number; set?: number } = {};
  const and = hex("id-and");
  const or = hex("id-or");
  const xor = hex("id-xor");
  const set = hex("id-set");
  if (and !== undefined) rw.and = and;
  if (or !== undefined) rw.or = or;
  if (xor !== undefined) rw.xor = xor;
  if (set !== undefined) rw.set = set;
  const rewrite: IdRewrite | null = Object.keys(rw).length > 0 ? rw : null;
  const int = (key: string, def: number, min: number, max: number): number => {
    const v = t[key];
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new ConfigError(`${where(key)}: expected an integer from ${min} to ${max}`);
    return v;
  };
  const hopLimit = int("hop-limit", 1, 1, 255);
  const rate = int("rate", 0, 0, 100_000_000);
  const nameRaw = t.name;
  if (nameRaw !== undefined && (typeof nameRaw !== "string" || !/^[A-Za-z0-9_.:>-]{1,64}$/.test(nameRaw))) {
    throw new ConfigError(`${where("name")}: expected 1 to 64 letters, digits or _ . : > -`);
  }
  const name = typeof nameRaw === "string" ? nameRaw : `${from}->${to}`;
  return { name, from, to, filters, rewrite, hopLimit, rate };
}
