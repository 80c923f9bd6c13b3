/**
 * Frames as the HTTP API and the job state file write them: `{id, ext, rtr, fd, brs, esi, dlc,
 * data}` with `id` the bare arbitration id (a number, or a "0x…" string), `data` hex ("0102", dots
 * and spaces allowed), `ext` defaulting to id > 0x7FF. Or a candump/cansend text ("123#0102").
 * Pure: values in, frames out; every problem is a FrameJsonError naming the field.
 */
import {
  CAN_EFF_MASK,
  CAN_MAX_DLEN,
  CAN_SFF_MASK,
  CANFD_BRS,
  CANFD_ESI,
  arbitrationId,
  dataFrame,
  fdFrame,
  formatFrame,
  frameProblem,
  FrameSyntaxError,
  isExtended,
  isRemote,
  isValidFdLength,
  parseFrame,
  remoteFrame,
  type CanFrame,
} from "./frame.ts";

export class FrameJsonError extends Error {
  override readonly name = "FrameJsonError";
}

/** A frame as JSON (what the API returns and the state file keeps). */
export interface FrameJson {
  id: number;
  ext: boolean;
  rtr: boolean;
  fd: boolean;
  brs: boolean;
  esi: boolean;
  dlc: number;
  data: string;
  /** candump text of the same frame. */
  text: string;
}

const HEX = /^[0-9a-fA-F]*$/;

function hexData(v: unknown, where: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  if (typeof v !== "string") throw new FrameJsonError(`${where}.data must be a hex string like "0102"`);
  const clean = v.replace(/[.\s]/g, "");
  if (clean.length % 2 !== 0 || !HEX.test(clean)) throw new FrameJsonError(`${where}.data is not hex bytes: ${JSON.stringify(v.slice(0, 40))}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function idOf(v: unknown, where: string): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "string" && /^(0x)?[0-9a-fA-F]{1,8}$/.test(v.trim())) n = parseInt(v.trim().replace(/^0x/i, ""), 16);
  else throw new FrameJsonError(`${where}.id must be a number (or a "0x…" hex string)`);
  if (!Number.isInteger(n) || n < 0 || n > CAN_EFF_MASK) throw new FrameJsonError(`${where}.id ${String(v)} is out of range (0..0x1FFFFFFF)`);
  return n;
}

function flag(o: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") throw new FrameJsonError(`${where}.${key} must be true or false`);
  return v;
}

const KEYS = new Set(["id", "ext", "rtr", "fd", "brs", "esi", "dlc", "data", "text"]);

/** One frame from JSON: an object as above, or candump text. */
export function frameFromJson(v: unknown, where = "frame"): CanFrame {
  if (typeof v === "string") {
    try {
      return parseFrame(v);
    } catch (e) {
      throw new FrameJsonError(`${where}: ${e instanceof FrameSyntaxError ? e.message : String(e)}`);
    }
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FrameJsonError(`${where} must be an object {id, data, …} or candump text like "123#0102"`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new FrameJsonError(`${where}.${k} is not a frame field (id, ext, rtr, fd, brs, esi, dlc, data)`);
  if (o.id === undefined && typeof o.text === "string") return frameFromJson(o.text, where);
  const id = idOf(o.id, where);
  const extFlag = flag(o, "ext", where);
  const ext = extFlag ?? id > CAN_SFF_MASK;
  if (!ext && id > CAN_SFF_MASK) throw new FrameJsonError(`${where}.id ${id} is above 0x7FF: set "ext": true for an extended id`);
  const rtr = flag(o, "rtr", where) ?? false;
  const fd = flag(o, "fd", where) ?? false;
  const brs = flag(o, "brs", where) ?? false;
  const esi = flag(o, "esi", where) ?? false;
  const data = hexData(o.data, where);
  let frame: CanFrame;
  if (rtr) {
    if (fd) throw new FrameJsonError(`${where}: a CAN FD frame cannot be a remote request`);
    if (data.length > 0) throw new FrameJsonError(`${where}: a remote request carries no data (give "dlc" instead)`);
    const dlc = o.dlc ?? 0;
    if (typeof dlc !== "number" || !Number.isInteger(dlc) || dlc < 0 || dlc > CAN_MAX_DLEN) throw new FrameJsonError(`${where}.dlc must be 0..8`);
    frame = remoteFrame(id, dlc, ext);
  } else if (fd) {
    if (!isValidFdLength(data.length)) throw new FrameJsonError(`${where}.data: ${data.length} bytes is not a CAN FD length (0..8, 12, 16, 20, 24, 32, 48, 64)`);
    frame = fdFrame(id, data, (brs ? CANFD_BRS : 0) | (esi ? CANFD_ESI : 0), ext);
  } else {
    if (brs || esi) throw new FrameJsonError(`${where}: brs and esi need "fd": true`);
    if (data.length > CAN_MAX_DLEN) throw new FrameJsonError(`${where}.data: ${data.length} bytes; a classic frame carries at most 8 (set "fd": true for CAN FD)`);
    frame = dataFrame(id, data, ext);
  }
  const problem = frameProblem(frame);
  if (problem !== null) throw new FrameJsonError(`${where}: ${problem}`);
  return frame;
}

function hex(data: Uint8Array): string {
  let s = "";
  for (const b of data) s += b.toString(16).padStart(2, "0");
  return s;
}

/** A frame as JSON. */
export function frameToJson(f: CanFrame): FrameJson {
  return {
    id: arbitrationId(f),
    ext: isExtended(f),
    rtr: isRemote(f),
    fd: f.fd,
    brs: (f.fdFlags & CANFD_BRS) !== 0,
    esi: (f.fdFlags & CANFD_ESI) !== 0,
    dlc: f.len,
    data: hex(f.data),
    text: formatFrame(f),
  };
}
