/**
 * Lawicel slcan ASCII codec (docs/protocols.md §6): a resumable line reader (CR or LF ends a line,
 * a line longer than SLCAN_MAX_LINE is skipped and reported, never fatal), the frame syntax both
 * ways — `tiiiL…` / `TiiiiiiiiL…` data, `riiiL` / `RiiiiiiiiL` remote, `d`/`D` CAN FD and `b`/`B`
 * CAN FD with bit-rate switch (L one hex digit, DLC code 0..F) with an optional 4-hex-digit
 * millisecond timestamp — and the SJA1000 dual-filter acceptance test behind `M`/`m`.
 * No I/O; the per-connection device state machine lives in protocol.ts.
 */
import {
  CAN_EFF_FLAG,
  CAN_EFF_MASK,
  CAN_ERR_FLAG,
  CAN_MAX_DLEN,
  CAN_RTR_FLAG,
  CAN_SFF_MASK,
  CANFD_BRS,
  CANFD_VALID_LENGTHS,
  type CanFrame,
  type StampedFrame,
} from "../../can/frame.ts";

/**
 * Longest line kept. The longest valid line is an extended FD frame with 64 bytes and a
 * timestamp: 1 + 8 + 1 + 128 + 4 = 142 characters.
 */
export const SLCAN_MAX_LINE = 160;
export const SLCAN_OK = 0x0d; // CR
export const SLCAN_BELL = 0x07; // BEL
const CR = 0x0d;
const LF = 0x0a;
const EMPTY = new Uint8Array(0);

export interface SlcanLineEvents {
  /** One line without its terminator (may be empty: a bare CR). */
  line(text: string): void;
  /** A line longer than SLCAN_MAX_LINE was dropped (reported once, at its terminator). */
  overlong(): void;
}

/**
 * Cuts a byte stream into lines at CR or LF (so CRLF yields an empty line, a no-op). Holds at most
 * SLCAN_MAX_LINE bytes of one unfinished line.
 */
export class SlcanLineReader {
  private pending = "";
  private skipping = false;

  constructor(private readonly events: SlcanLineEvents) {}

  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Uint8Array): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b !== CR && b !== LF) continue;
      this.take(chunk, start, i);
      start = i + 1;
      if (this.skipping) {
        this.skipping = false;
        this.events.overlong();
        continue;
      }
      const line = this.pending;
      this.pending = "";
      this.events.line(line);
    }
    this.take(chunk, start, chunk.length);
  }

  private take(chunk: Uint8Array, from: number, to: number): void {
    if (this.skipping || from >= to) return;
    if (this.pending.length + (to - from) > SLCAN_MAX_LINE) {
      this.skipping = true;
      this.pending = "";
      return;
    }
    let s = "";
    for (let i = from; i < to; i++) s += String.fromCharCode(chunk[i]!);
    this.pending += s;
  }
}

const HEX = /^[0-9a-fA-F]*$/;

/** Whether the first character of a line is a frame command (t T r R d D b B). */
export function isSlcanFrameCommand(c: string): boolean {
  return c.length === 1 && "tTrRdDbB".includes(c);
}

/**
 * Parses a frame line (`t…`, `T…`, `r…`, `R…`, `d…`, `D…`, `b…`, `B…`) into a frame, or returns
 * why it is not one. `fd` says whether the FD forms are allowed. A trailing 4-hex-digit timestamp
 * (what an adapter appends after `Z1`) is accepted and ignored; any other trailing text is an error.
 */
export function parseSlcanFrame(line: string, fd: boolean): CanFrame | string {
  const c = line.charAt(0);
  if (!isSlcanFrameCommand(c)) return `not a frame command: "${printable(line.slice(0, 1))}"`;
  const isFd = c === "d" || c === "D" || c === "b" || c === "B";
  if (isFd && !fd) return "CAN FD frames are not enabled on this gateway";
  const ext = c === "T" || c === "R" || c === "D" || c === "B";
  const rtr = c === "r" || c === "R";
  const idLen = ext ? 8 : 3;
  if (line.length < 1 + idLen + 1) return `frame line too short: "${printable(line)}"`;
  const idText = line.slice(1, 1 + idLen);
  if (!HEX.test(idText)) return `bad id "${printable(idText)}"`;
  const id = parseInt(idText, 16);
  if (ext ? id > CAN_EFF_MASK : id > CAN_SFF_MASK) return `id 0x${idText} out of range`;
  const dlcChar = line.charAt(1 + idLen);
  let len: number;
  if (isFd) {
    if (!/^[0-9a-fA-F]$/.test(dlcChar)) return `bad DLC "${printable(dlcChar)}"`;
    len = CANFD_VALID_LENGTHS[parseInt(dlcChar, 16)]!;
  } else {
    if (!/^[0-8]$/.test(dlcChar)) return `bad DLC "${printable(dlcChar)}" (0..8)`;
    len = Number(dlcChar);
  }
  let p = 2 + idLen;
  let data = EMPTY;
  if (!rtr && len > 0) {
    const hex = line.slice(p, p + 2 * len);
    if (hex.length !== 2 * len || !HEX.test(hex)) return `expected ${len} data bytes`;
    data = new Uint8Array(len);
    for (let i = 0; i < len; i++) data[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    p += 2 * len;
  }
  const rest = line.slice(p);
  if (rest !== "" && !(rest.length === 4 && HEX.test(rest))) return `unexpected "${printable(rest.slice(0, 20))}" after the frame`;
  const canId = ((ext ? id | CAN_EFF_FLAG : id) | (rtr ? CAN_RTR_FLAG : 0)) >>> 0;
  if (isFd) return { canId, len, data, fd: true, fdFlags: c === "b" || c === "B" ? CANFD_BRS : 0 };
  return { canId, len, data, fd: false, fdFlags: 0 };
}

/**
 * Whether a bus frame has an slcan form: not an error frame (the Lawicel set has none), FD only
 * when enabled. ESI has no letter and is dropped; BRS picks `b`/`B`.
 */
export function slcanCanCarry(f: CanFrame, fd: boolean): boolean {
  if ((f.canId & CAN_ERR_FLAG) !== 0) return false;
  if (f.fd) return fd;
  return f.len <= CAN_MAX_DLEN;
}

const HEXU = "0123456789ABCDEF";

function hex(n: number, digits: number): string {
  let s = "";
  for (let i = digits - 1; i >= 0; i--) s += HEXU[(n >>> (i * 4)) & 0xf]!;
  return s;
}

/** The slcan timestamp after `Z1`: milliseconds within the current minute, 0000..EA5F (from µs). */
export function slcanTimestamp(us: number): number {
  const ms = Math.floor(us / 1000);
  return ((ms % 60000) + 60000) % 60000;
}

/** One frame line without its CR; `timestamp` (0..59999) is appended when not null. */
export function formatSlcanFrame(f: CanFrame, timestamp: number | null): string {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const id = ext ? hex(f.canId & CAN_EFF_MASK, 8) : hex(f.canId & CAN_SFF_MASK, 3);
  let s: string;
  if (f.fd) {
    const brs = (f.fdFlags & CANFD_BRS) !== 0;
    const letter = brs ? (ext ? "B" : "b") : ext ? "D" : "d";
    s = letter + id + HEXU[CANFD_VALID_LENGTHS.indexOf(f.data.length)]!;
    for (let i = 0; i < f.data.length; i++) s += hex(f.data[i]!, 2);
  } else if ((f.canId & CAN_RTR_FLAG) !== 0) {
    s = (ext ? "R" : "r") + id + String(f.len);
  } else {
    s = (ext ? "T" : "t") + id + String(f.data.length);
    for (let i = 0; i < f.data.length; i++) s += hex(f.data[i]!, 2);
  }
  return timestamp === null ? s : s + hex(timestamp, 4);
}

export interface SlcanEncodeOptions {
  /** Whether FD frames may be written (others are skipped). */
  readonly fd: boolean;
  /** `Z1`: append a millisecond timestamp (each frame's arrival time, StampedFrame.ts). */
  readonly timestamps: boolean;
  /** Extra per-frame test (the session's open state and acceptance filter); default accept. */
  readonly accept?: (f: CanFrame) => boolean;
}

/** Encodes frames[0..count) as CR-terminated lines in one buffer; frames without a form are skipped. */
export function encodeSlcanFrames(frames: readonly StampedFrame[], count: number, opts: SlcanEncodeOptions): Uint8Array {
  let text = "";
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    if (!slcanCanCarry(f, opts.fd)) continue;
    if (opts.accept && !opts.accept(f)) continue;
    text += formatSlcanFrame(f, opts.timestamps ? slcanTimestamp(f.ts) : null) + "\r";
  }
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/**
 * The SJA1000 acceptance filter in dual-filter mode, as Lawicel adapters apply `M` (acceptance
 * code ACR0..3) and `m` (acceptance mask AMR0..3, a 1 bit means "don't care"). A frame passes if
 * either filter matches. Standard frames: filter 1 checks id, RTR and the first data byte
 * (ACR0, ACR1, low nibble of ACR3), filter 2 id and RTR (ACR2, high nibble of ACR3). Extended
 * frames: filter 1 checks id bits 28..13 against ACR0/ACR1, filter 2 against ACR2/ACR3. Data bits
 * of a frame without data are treated as matching. The default (code 0, mask FFFFFFFF) passes all.
 */
export function sja1000DualFilterAccepts(f: CanFrame, code: number, mask: number): boolean {
  const acr = [code >>> 24, (code >>> 16) & 0xff, (code >>> 8) & 0xff, code & 0xff] as const;
  const amr = [mask >>> 24, (mask >>> 16) & 0xff, (mask >>> 8) & 0xff, mask & 0xff] as const;
  const match = (value: number, c: number, m: number, width: number): boolean => ((value ^ c) & ~m & ((1 << width) - 1)) === 0;
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  if (ext) {
    const top = (f.canId & CAN_EFF_MASK) >>> 13; // id bits 28..13
    return match(top, (acr[0] << 8) | acr[1], (amr[0] << 8) | amr[1], 16) || match(top, (acr[2] << 8) | acr[3], (amr[2] << 8) | amr[3], 16);
  }
  const rtr = (f.canId & CAN_RTR_FLAG) !== 0 ? 1 : 0;
  const idRtr = ((f.canId & CAN_SFF_MASK) << 1) | rtr; // 12 bits: id 10..0, RTR
  const hasData = rtr === 0 && f.data.length > 0;
  const d1 = hasData ? f.data[0]! : 0;
  // Filter 1: ACR0 (id 10..3), ACR1 7..5 (id 2..0), ACR1 4 (RTR), ACR1 3..0 (data 7..4), ACR3 3..0 (data 3..0).
  const f1Id = match(idRtr, ((acr[0] << 8) | acr[1]) >>> 4, ((amr[0] << 8) | amr[1]) >>> 4, 12);
  const f1Data = !hasData || (match(d1 >>> 4, acr[1] & 0xf, amr[1] & 0xf, 4) && match(d1 & 0xf, acr[3] & 0xf, amr[3] & 0xf, 4));
  // Filter 2: ACR2 (id 10..3), ACR3 7..5 (id 2..0), ACR3 4 (RTR).
  const f2 = match(idRtr, ((acr[2] << 8) | acr[3]) >>> 4, ((amr[2] << 8) | amr[3]) >>> 4, 12);
  return (f1Id && f1Data) || f2;
}

/** A client-supplied fragment made safe for a log line: printable ASCII, at most 40 characters. */
export function printable(s: string): string {
  return (s.length > 40 ? s.slice(0, 40) : s).replace(/[^\x20-\x7e]/g, "?");
}
