/**
 * The CAN frame model every other module speaks: SocketCAN `can_id` semantics (flag bits in the
 * id word), classic and CAN FD lengths, validation, and the candump/cansend text syntax used in
 * logs, tests and the CLI. Pure: no I/O. Layouts and rules: docs/protocols.md §1.
 */

export const CAN_EFF_FLAG = 0x80000000;
export const CAN_RTR_FLAG = 0x40000000;
export const CAN_ERR_FLAG = 0x20000000;
export const CAN_SFF_MASK = 0x7ff;
export const CAN_EFF_MASK = 0x1fffffff;

export const CANFD_BRS = 0x01;
export const CANFD_ESI = 0x02;
export const CANFD_FDF = 0x04;

export const CAN_MAX_DLEN = 8;
export const CANFD_MAX_DLEN = 64;

/** Data lengths a CAN FD frame may carry (DLC 0..15 mapped to bytes). */
export const CANFD_VALID_LENGTHS: readonly number[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];
const FD_LENGTH_OK = new Uint8Array(65);
for (const l of CANFD_VALID_LENGTHS) FD_LENGTH_OK[l] = 1;

/**
 * One CAN frame. `canId` is the SocketCAN id word (unsigned 32 bits): id bits plus EFF/RTR/ERR.
 * `len` is the data length; for an RTR frame it is the requested DLC and `data` is empty
 * (a remote request carries no data on the wire). `fd` marks a CAN FD frame; `fdFlags` holds
 * BRS/ESI (FDF is implied by `fd`).
 */
export interface CanFrame {
  readonly canId: number;
  readonly len: number;
  readonly data: Uint8Array;
  readonly fd: boolean;
  readonly fdFlags: number;
}

const EMPTY = new Uint8Array(0);

/**
 * A frame inside the hub (and in everything the hub hands frames to): the CAN frame plus when it
 * reached the gateway and on which bus. Stamped once, at hub ingress (src/hub/hub.ts): a bus frame
 * when the backend hands it over, a client frame when it enters the hub for the bus. Every
 * timestamp the gateway emits is `ts`, so a clock step moves every output alike and a backed-up
 * client sees when its frames arrived, not when its queue drained. Codecs read it; none calls a
 * clock (docs/protocols.md §1).
 */
export interface StampedFrame extends CanFrame {
  /** Wall-clock microseconds since the Unix epoch (src/can/clock.ts). */
  readonly ts: number;
  /** Index of the bus in the gateway's bus set (0 = the first or only bus). */
  readonly bus: number;
  /** Routes this frame crossed to reach this bus (0: it reached the gateway here); see src/route/. */
  readonly hops: number;
}

/** `frame` stamped with its arrival time and bus; one allocation, the same shape for every frame. */
export function stamp(frame: CanFrame, ts: number, bus: number, hops = 0): StampedFrame {
  return { canId: frame.canId, len: frame.len, data: frame.data, fd: frame.fd, fdFlags: frame.fdFlags, ts, bus, hops };
}

/** Whether a frame already carries its stamp (a routed frame keeps its arrival time and hops). */
export function isStamped(frame: CanFrame): frame is StampedFrame {
  return (frame as Partial<StampedFrame>).ts !== undefined;
}


export function isExtended(f: CanFrame): boolean {
  return (f.canId & CAN_EFF_FLAG) !== 0;
}
export function isRemote(f: CanFrame): boolean {
  return (f.canId & CAN_RTR_FLAG) !== 0;
}
export function isError(f: CanFrame): boolean {
  return (f.canId & CAN_ERR_FLAG) !== 0;
}
/** The arbitration id without flag bits (11 or 29 bits). */
export function arbitrationId(f: CanFrame): number {
  return isExtended(f) ? f.canId & CAN_EFF_MASK : f.canId & CAN_SFF_MASK;
}

export function isValidFdLength(len: number): boolean {
  return len >= 0 && len <= 64 && FD_LENGTH_OK[len] === 1;
}

/** Builds a classic data frame. `id` is the bare arbitration id. */
export function dataFrame(id: number, data: Uint8Array | readonly number[], extended = id > CAN_SFF_MASK): CanFrame {
  const bytes = data instanceof Uint8Array ? data : Uint8Array.from(data);
  return {
    canId: (extended ? (id & CAN_EFF_MASK) | CAN_EFF_FLAG : id & CAN_SFF_MASK) >>> 0,
    len: bytes.length,
    data: bytes,
    fd: false,
    fdFlags: 0,
  };
}

/** Builds a remote transmission request with the given DLC (no data bytes). */
export function remoteFrame(id: number, dlc: number, extended = id > CAN_SFF_MASK): CanFrame {
  const base = extended ? (id & CAN_EFF_MASK) | CAN_EFF_FLAG : id & CAN_SFF_MASK;
  return { canId: (base | CAN_RTR_FLAG) >>> 0, len: dlc, data: EMPTY, fd: false, fdFlags: 0 };
}

/** Builds a CAN FD frame; `fdFlags` are BRS/ESI bits. */
export function fdFrame(id: number, data: Uint8Array | readonly number[], fdFlags = 0, extended = id > CAN_SFF_MASK): CanFrame {
  const bytes = data instanceof Uint8Array ? data : Uint8Array.from(data);
  return {
    canId: (extended ? (id & CAN_EFF_MASK) | CAN_EFF_FLAG : id & CAN_SFF_MASK) >>> 0,
    len: bytes.length,
    data: bytes,
    fd: true,
    fdFlags: fdFlags & (CANFD_BRS | CANFD_ESI),
  };
}

/**
 * Returns why a frame is not a valid CAN frame, or null if it is. Codecs that build frames from
 * the wire call this so that an invalid frame never reaches the bus.
 */
export function frameProblem(f: CanFrame): string | null {
  if (!Number.isInteger(f.canId) || f.canId < 0 || f.canId > 0xffffffff) return "can_id out of range";
  const ext = isExtended(f);
  if (!ext && (f.canId & CAN_EFF_MASK & ~CAN_SFF_MASK) !== 0 && !isError(f)) return "standard id above 0x7FF";
  if (f.fd) {
    if (isRemote(f)) return "CAN FD frames cannot be remote requests";
    if (!isValidFdLength(f.len)) return `invalid CAN FD length ${f.len}`;
    if (f.data.length !== f.len) return "data length does not match len";
    return null;
  }
  if (!Number.isInteger(f.len) || f.len < 0 || f.len > CAN_MAX_DLEN) return `invalid classic length ${f.len}`;
  if (isRemote(f)) return f.data.length === 0 ? null : "remote frame carries data";
  if (f.data.length !== f.len) return "data length does not match len";
  return null;
}

export function framesEqual(a: CanFrame, b: CanFrame): boolean {
  if (a.canId !== b.canId || a.len !== b.len || a.fd !== b.fd || a.fdFlags !== b.fdFlags) return false;
  if (a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}

const HEX = "0123456789ABCDEF";
function hexBytes(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    s += HEX[b >> 4]! + HEX[b & 15]!;
  }
  return s;
}

/**
 * candump/cansend text: `123#DEADBEEF`, `1ABCDE0F#` (8 hex digits = extended), `123#R4`,
 * `123##1AABB` (FD: `##` then one hex digit of flags, then data).
 */
export function formatFrame(f: CanFrame): string {
  const ext = isExtended(f);
  let id: string;
  if (isError(f)) id = (f.canId & (CAN_EFF_MASK | CAN_ERR_FLAG)).toString(16).toUpperCase().padStart(8, "0");
  else id = arbitrationId(f).toString(16).toUpperCase().padStart(ext ? 8 : 3, "0");
  if (f.fd) return `${id}##${HEX[f.fdFlags & 0xf]}${hexBytes(f.data)}`;
  if (isRemote(f)) return f.len > 0 ? `${id}#R${f.len}` : `${id}#R`;
  return `${id}#${hexBytes(f.data)}`;
}

export class FrameSyntaxError extends Error {
  override readonly name = "FrameSyntaxError";
}

function parseHexData(s: string, text: string): Uint8Array {
  const clean = s.replace(/\./g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) throw new FrameSyntaxError(`bad data bytes in "${text}"`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Parses candump/cansend text (see formatFrame). Throws FrameSyntaxError with the reason. */
export function parseFrame(text: string): CanFrame {
  const t = text.trim();
  const hash = t.indexOf("#");
  if (hash < 0) throw new FrameSyntaxError(`missing '#' in "${text}"`);
  const idText = t.slice(0, hash);
  if (!/^[0-9a-fA-F]+$/.test(idText) || (idText.length !== 3 && idText.length !== 8)) {
    throw new FrameSyntaxError(`id must be 3 (standard) or 8 (extended) hex digits in "${text}"`);
  }
  const extended = idText.length === 8;
  const rawId = parseInt(idText, 16) >>> 0;
  if (!extended && rawId > CAN_SFF_MASK) throw new FrameSyntaxError(`standard id above 0x7FF in "${text}"`);
  const errFlag = extended && (rawId & CAN_ERR_FLAG) !== 0;
  if (extended && !errFlag && rawId > CAN_EFF_MASK) throw new FrameSyntaxError(`extended id above 0x1FFFFFFF in "${text}"`);
  const rest = t.slice(hash + 1);
  let frame: CanFrame;
  if (rest.startsWith("#")) {
    const flagsDigit = rest.slice(1, 2);
    if (!/^[0-9a-fA-F]$/.test(flagsDigit)) throw new FrameSyntaxError(`CAN FD frame needs a flags digit after '##' in "${text}"`);
    const data = parseHexData(rest.slice(2), text);
    if (!isValidFdLength(data.length)) throw new FrameSyntaxError(`invalid CAN FD length ${data.length} in "${text}"`);
    frame = fdFrame(rawId, data, parseInt(flagsDigit, 16), extended);
  } else if (rest.startsWith("R") || rest.startsWith("r")) {
    const dlcText = rest.slice(1);
    if (!/^[0-8]?$/.test(dlcText)) throw new FrameSyntaxError(`RTR length must be 0..8 in "${text}"`);
    frame = remoteFrame(rawId, dlcText === "" ? 0 : Number(dlcText), extended);
  } else {
    const data = parseHexData(rest, text);
    if (data.length > CAN_MAX_DLEN) throw new FrameSyntaxError(`classic frame longer than 8 bytes in "${text}"`);
    frame = dataFrame(rawId, data, extended);
  }
  // Error frames keep the id word as written (ERR flag + error class bits, no EFF).
  if (errFlag) frame = { ...frame, canId: rawId };
  return frame;
}
