/**
 * A route as the dashboard and the API show it (read-only): its configuration in the words of the
 * configuration file (filters as candump ID/MASK, the rewrite's masks in hex) and its counts by
 * result (route_frames_total{route,result}). Plain data.
 */
import type { IdRewrite, RouteFilter } from "./route.ts";
import { ROUTE_RESULTS, type Route, type RouteResult } from "./router.ts";

export interface RouteView {
  readonly name: string;
  readonly from: string;
  readonly to: string;
  /** ID/MASK in hex, candump syntax (8 digits for extended ids); empty = every frame. */
  readonly filters: string[];
  /** Each part in hex; null = ids unchanged. */
  readonly rewrite: { and?: string; or?: string; xor?: string; set?: string } | null;
  readonly hop_limit: number;
  /** Frames per second of its own; 0 = none. */
  readonly rate: number;
  readonly counts: Record<RouteResult, number>;
}

const hex = (n: number, extended: boolean): string => n.toString(16).toUpperCase().padStart(extended ? 8 : 3, "0");

export function filterText(f: RouteFilter): string {
  return `${hex(f.id, f.extended)}/${hex(f.mask, f.extended)}`;
}

function rewriteView(r: IdRewrite | null): RouteView["rewrite"] {
  if (r === null) return null;
  const out: { and?: string; or?: string; xor?: string; set?: string } = {};
  for (const k of ["and", "or", "xor", "set"] as const) {
    const v = r[k];
    if (v !== undefined) out[k] = v.toString(16).toUpperCase();
  }
  return out;
}

export function describeRoute(r: Route): RouteView {
  const c = r.config;
  return { name: c.name, from: c.from, to: c.to, filters: c.filters.map(filterText), rewrite: rewriteView(c.rewrite), hop_limit: c.hopLimit, rate: c.rate, counts: r.results() };
}

export { ROUTE_RESULTS };
