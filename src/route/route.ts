/**
 * Routes between buses in the Linux `cangw` model (README "Several buses"): a source bus, a
 * destination bus, a filter list (a frame passing any entry is routed; none = every frame), an
 * optional id rewrite (AND, then OR, then XOR, then SET, as cangw applies its modifications), a
 * hop limit (a frame that has already crossed that many routes is not routed again, so two
 * routes pointing at each other cannot loop) and an optional rate. Pure: matching and rewriting.
 */
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_ERR_FLAG, CAN_RTR_FLAG, CAN_SFF_MASK, type CanFrame } from "../can/frame.ts";

/** One filter entry: `(arbitration id & mask) === (id & mask)` on frames of its kind (standard or extended). */
export interface RouteFilter {
  readonly id: number;
  readonly mask: number;
  readonly extended: boolean;
}

/** An id rewrite; each part optional. Applied to the arbitration id, which keeps its kind. */
export interface IdRewrite {
  readonly and?: number;
  readonly or?: number;
  readonly xor?: number;
  readonly set?: number;
}

export interface RouteConfig {
  /** For metrics and logs: `from->to`, or the table's name. */
  readonly name: string;
  readonly from: string;
  readonly to: string;
  readonly filters: readonly RouteFilter[];
  readonly rewrite: IdRewrite | null;
  /** Frames that crossed this many routes already are not routed (>= 1). */
  readonly hopLimit: number;
  /** Frames per second; 0 = no limit of its own (the destination's TX limits still apply). */
  readonly rate: number;
}

/** Parses `ID/MASK` or `ID:MASK` (candump), or a bare `ID` (exact); 8 hex digits or an id above 0x7FF = extended. */
export function parseRouteFilter(text: string): RouteFilter | string {
  const m = /^\s*([0-9a-fA-F]{1,8})\s*(?:[/:]\s*([0-9a-fA-F]{1,8}))?\s*$/.exec(text);
  if (!m) return `"${text}" is not ID/MASK in hex (e.g. 100/700 for standard, 1D4C/FFFF or 00000100/1FFFFFFF for extended ids)`;
  const id = parseInt(m[1]!, 16) >>> 0;
  const extended = m[1]!.length === 8 || id > CAN_SFF_MASK;
  const width = extended ? CAN_EFF_MASK : CAN_SFF_MASK;
  if (id > width) return `"${text}": an extended id has at most 29 bits`;
  const mask = m[2] === undefined ? width : (parseInt(m[2], 16) >>> 0) & width;
  return { id: id & mask, mask, extended };
}

/** Whether a frame passes the filter list (an empty list passes every data/remote frame). Error frames never route. */
export function routeAccepts(filters: readonly RouteFilter[], f: CanFrame): boolean {
  if ((f.canId & CAN_ERR_FLAG) !== 0) return false;
  if (filters.length === 0) return true;
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const id = ext ? f.canId & CAN_EFF_MASK : f.canId & CAN_SFF_MASK;
  for (const t of filters) if (t.extended === ext && (id & t.mask) === t.id) return true;
  return false;
}

/** The frame with its id rewritten (a new object; the frame's kind and flags are kept). */
export function rewriteId(f: CanFrame, r: IdRewrite): CanFrame {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const width = ext ? CAN_EFF_MASK : CAN_SFF_MASK;
  let id = f.canId & width;
  if (r.and !== undefined) id &= r.and;
  if (r.or !== undefined) id |= r.or;
  if (r.xor !== undefined) id ^= r.xor;
  if (r.set !== undefined) id = r.set;
  const flags = f.canId & (CAN_EFF_FLAG | CAN_RTR_FLAG);
  return { canId: ((id & width) | flags) >>> 0, len: f.len, data: f.data, fd: f.fd, fdFlags: f.fdFlags };
}
