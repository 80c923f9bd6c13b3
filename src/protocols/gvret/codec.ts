/**
 * GVRET binary codec (docs/protocols.md §7), the protocol of SavvyCAN's "network connection" and
 * of ESP32RET/M2RET devices. Multi-byte fields are little-endian; an id has bit 31 set for an
 * extended frame.
 * - Host → device (decoded here): `E7` switches to binary mode; `F1 cmd …` is a command. Frames
 *   are `F1 00 id u32 | bus u8 | len u8 | data | checksum u8` (cmd 11, "echo", has the same
 *   layout) and `F1 14 …` the same for CAN FD. The checksum byte is ignored, as every device does.
 * - Device → host (encoded here): `F1 00 ts_us u32 | id u32 | len | bus << 4 | data | 00` and
 *   `F1 14 ts_us u32 | id u32 | len | bus | data | 00`, plus the replies SavvyCAN waits for.
 * The decoder is a resumable byte state machine that never fails: bytes outside a command are
 * skipped until the next `F1` or `E7` (ESP32RET's resync), an unknown command byte is skipped,
 * and a frame it cannot use is reported and dropped with the stream kept in step. At most one
 * command (≤ 71 bytes) is buffered. No I/O.
 */
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_ERR_FLAG, CAN_MAX_DLEN, CAN_RTR_FLAG, CAN_SFF_MASK, CANFD_MAX_DLEN, type CanFrame, type StampedFrame, isValidFdLength } from "../../can/frame.ts";

export const GVRET_START = 0xf1;
export const GVRET_BINARY_MODE = 0xe7;

/** Command numbers (the byte after F1). */
export const GvretCmd = {
  frame: 0,
  timeSync: 1,
  digitalInputs: 2,
  analogInputs: 3,
  setDigitalOutputs: 4,
  setupBuses: 5,
  getBusParams: 6,
  getDeviceInfo: 7,
  setSingleWire: 8,
  keepalive: 9,
  setSystemType: 10,
  echoFrame: 11,
  getNumBuses: 12,
  getExtBuses: 13,
  setExtBuses: 14,
  fdFrame: 20,
  setupFd: 21,
  getFd: 22,
} as const;

/** Commands answered with a reply (see the reply builders below). */
export const GVRET_QUERIES: ReadonlySet<number> = new Set([GvretCmd.timeSync, GvretCmd.getBusParams, GvretCmd.getDeviceInfo, GvretCmd.keepalive, GvretCmd.getNumBuses, GvretCmd.getExtBuses]);

/** Payload bytes after `F1 cmd` of the commands that are neither frames nor queries. */
const FIXED_PAYLOAD: ReadonlyMap<number, number> = new Map([
  [GvretCmd.digitalInputs, 0],
  [GvretCmd.analogInputs, 0],
  [GvretCmd.setDigitalOutputs, 1],
  [GvretCmd.setupBuses, 8],
  [GvretCmd.setSingleWire, 1],
  [GvretCmd.setSystemType, 1],
  [GvretCmd.setExtBuses, 12],
  [GvretCmd.setupFd, 0],
  [GvretCmd.getFd, 0],
]);

const FRAME_HEADER = 6; // id u32 | bus | len
/** Largest command body buffered: frame header, 64 data bytes, checksum. */
export const GVRET_MAX_COMMAND = FRAME_HEADER + CANFD_MAX_DLEN + 1;
const EMPTY = new Uint8Array(0);

export interface GvretHostEvents {
  /** `E7`: the host switched the device to binary mode. */
  binaryMode(): void;
  /** A frame the host wants sent on `bus`. FD frames come from cmd 20 or a cmd 0 longer than 8. */
  frame(frame: CanFrame, bus: number): void;
  /** cmd 11: the host asks to see this frame as if it had been received. */
  echo(frame: CanFrame, bus: number): void;
  /** A command that expects a reply (GVRET_QUERIES). */
  query(command: number): void;
  /** cmd 5: bus set-up words (bit 31 valid, 30 enabled, 29 listen-only, low 20 bits bit rate). */
  setupBuses(can0: number, can1: number): void;
  /** A frame command whose content cannot be a CAN frame (the stream stays in step). */
  rejected(reason: string): void;
}

type State = "idle" | "command" | "fixed" | "frame";

/** Streaming decoder of the host → device direction. */
export class GvretHostDecoder {
  private state: State = "idle";
  private cmd = 0;
  private readonly buf = new Uint8Array(GVRET_MAX_COMMAND);
  private have = 0;
  private need = 0;
  private skippedBytes = 0;

  constructor(private readonly events: GvretHostEvents) {}

  /** Bytes held for an unfinished command (≤ GVRET_MAX_COMMAND + 2). */
  get buffered(): number {
    return this.state === "idle" ? 0 : this.state === "command" ? 1 : 2 + this.have;
  }

  /** Bytes skipped so far while looking for a command. */
  get skipped(): number {
    return this.skippedBytes;
  }

  push(chunk: Uint8Array): void {
    for (let i = 0; i < chunk.length; i++) this.byte(chunk[i]!);
  }

  private byte(b: number): void {
    switch (this.state) {
      case "idle":
        if (b === GVRET_START) this.state = "command";
        else if (b === GVRET_BINARY_MODE) this.events.binaryMode();
        else this.skippedBytes++;
        return;
      case "command":
        return this.command(b);
      case "fixed":
        this.buf[this.have++] = b;
        if (this.have === this.need) this.fixedDone();
        return;
      case "frame":
        this.buf[this.have++] = b;
        if (this.have === FRAME_HEADER) {
          const n = this.buf[5]!;
          if (n > CANFD_MAX_DLEN) {
            this.events.rejected(`frame length ${n} above 64`);
            this.state = "idle";
            return;
          }
          this.need = FRAME_HEADER + n + 1;
        } else if (this.have === this.need) this.frameDone();
        return;
    }
  }

  private command(b: number): void {
    this.cmd = b;
    this.have = 0;
    if (b === GvretCmd.frame || b === GvretCmd.echoFrame || b === GvretCmd.fdFrame) {
      this.state = "frame";
      this.need = FRAME_HEADER + 1; // corrected once the length byte is in
      return;
    }
    if (GVRET_QUERIES.has(b)) {
      this.state = "idle";
      this.events.query(b);
      return;
    }
    const n = FIXED_PAYLOAD.get(b);
    if (n !== undefined) {
      this.need = n;
      if (n === 0) this.fixedDone();
      else this.state = "fixed";
      return;
    }
    // Unknown command: skip it. F1 F1 … keeps waiting for a command (as ESP32RET does).
    this.skippedBytes += 2;
    if (b === GVRET_START) {
      this.skippedBytes--;
      return;
    }
    this.state = "idle";
    if (b === GVRET_BINARY_MODE) {
      this.skippedBytes--;
      this.events.binaryMode();
    }
  }

  private fixedDone(): void {
    this.state = "idle";
    if (this.cmd === GvretCmd.setupBuses) this.events.setupBuses(u32le(this.buf, 0), u32le(this.buf, 4));
  }

  private frameDone(): void {
    this.state = "idle";
    const raw = u32le(this.buf, 0);
    const bus = this.buf[4]!;
    const n = this.buf[5]!;
    const ext = (raw & CAN_EFF_FLAG) !== 0;
    const id = raw & 0x7fffffff;
    if (ext ? id > CAN_EFF_MASK : id > CAN_SFF_MASK) {
      this.events.rejected(`${ext ? "extended" : "standard"} id 0x${id.toString(16)} out of range`);
      return;
    }
    const fd = this.cmd === GvretCmd.fdFrame || n > CAN_MAX_DLEN;
    if (fd && !isValidFdLength(n)) {
      this.events.rejected(`invalid CAN FD length ${n}`);
      return;
    }
    const data = n === 0 ? EMPTY : this.buf.slice(FRAME_HEADER, FRAME_HEADER + n);
    const frame: CanFrame = { canId: (ext ? id | CAN_EFF_FLAG : id) >>> 0, len: n, data, fd, fdFlags: 0 };
    if (this.cmd === GvretCmd.echoFrame) this.events.echo(frame, bus);
    else this.events.frame(frame, bus);
  }
}

function u32le(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function putU32le(b: Uint8Array, o: number, v: number): void {
  b[o] = v;
  b[o + 1] = v >>> 8;
  b[o + 2] = v >>> 16;
  b[o + 3] = v >>> 24;
}

/** The GVRET id word: bare id, bit 31 for extended. */
function idWord(f: CanFrame): number {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  return ext ? ((f.canId & CAN_EFF_MASK) | 0x80000000) >>> 0 : f.canId & CAN_SFF_MASK;
}

/**
 * Whether a bus frame has a GVRET form: the format has no RTR or error bit, so those are not
 * sent (a client would see a data frame that never was on the bus); FD only when enabled.
 */
export function gvretCanCarry(f: CanFrame, fd: boolean): boolean {
  if ((f.canId & (CAN_RTR_FLAG | CAN_ERR_FLAG)) !== 0) return false;
  if (f.fd) return fd;
  return f.data.length <= CAN_MAX_DLEN;
}

export interface GvretEncodeOptions {
  readonly fd: boolean;
  /**
   * The wall-clock time (µs) that is device time 0: each frame's device timestamp is its arrival
   * time (StampedFrame.ts) minus this, in microseconds wrapping at 2^32 as a GVRET device's micros().
   */
  readonly epochUs: number;
  /** Bus number written into every frame; default: each frame's own bus (StampedFrame.bus). */
  readonly bus?: number;
}

/** Encodes frames[0..count) device → host in one buffer; frames without a GVRET form are skipped. */
export function encodeGvretFrames(frames: readonly StampedFrame[], count: number, opts: GvretEncodeOptions): Uint8Array {
  let size = 0;
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    // classic: F1 00 ts4 id4 len|bus data 00 = 12 + n; FD has a separate bus byte: 13 + n.
    if (gvretCanCarry(f, opts.fd)) size += (f.fd ? 13 : 12) + f.data.length;
  }
  const out = new Uint8Array(size);
  let p = 0;
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    if (!gvretCanCarry(f, opts.fd)) continue;
    const bus = (opts.bus ?? f.bus ?? 0) & 0x0f;
    out[p] = GVRET_START;
    out[p + 1] = f.fd ? GvretCmd.fdFrame : GvretCmd.frame;
    putU32le(out, p + 2, (f.ts - opts.epochUs) >>> 0);
    putU32le(out, p + 6, idWord(f));
    if (f.fd) {
      out[p + 10] = f.data.length;
      out[p + 11] = bus;
    } else {
      out[p + 10] = f.data.length | (bus << 4);
    }
    const d = f.fd ? p + 12 : p + 11;
    out.set(f.data, d);
    // The trailing byte (checksum, always 0, already zero): SavvyCAN needs it to finish an FD frame.
    p = d + f.data.length + 1;
  }
  return out;
}

/**
 * Encodes frames host → device (what SavvyCAN writes): cmd 0 for classic frames, cmd 20 for FD,
 * checksum byte 0. RTR and error frames have no form and are skipped. For tests and test clients.
 */
export function encodeGvretHostFrames(frames: readonly CanFrame[], bus = 0): Uint8Array {
  const sendable = frames.filter((f) => (f.canId & (CAN_RTR_FLAG | CAN_ERR_FLAG)) === 0);
  let size = 0;
  for (const f of sendable) size += 9 + f.data.length;
  const out = new Uint8Array(size);
  let p = 0;
  for (const f of sendable) {
    out[p] = GVRET_START;
    out[p + 1] = f.fd ? GvretCmd.fdFrame : GvretCmd.frame;
    putU32le(out, p + 2, idWord(f));
    out[p + 6] = bus;
    out[p + 7] = f.data.length;
    out.set(f.data, p + 8);
    p += 9 + f.data.length; // last byte: checksum 0
  }
  return out;
}

/** `F1 01 ts_us u32`: the device clock, for SavvyCAN's time base. */
export function gvretTimeSyncReply(timestampUs: number): Uint8Array {
  const b = new Uint8Array(6);
  b[0] = GVRET_START;
  b[1] = GvretCmd.timeSync;
  putU32le(b, 2, timestampUs >>> 0);
  return b;
}

export interface GvretBusParams {
  readonly enabled: boolean;
  readonly listenOnly: boolean;
  /** Nominal bit rate in bit/s (0 when unknown). */
  readonly bitrate: number;
}

/** `F1 06 | flags | speed u32 | flags | speed u32` for can0 and can1 (flags: enabled | listenOnly << 4). */
export function gvretBusParamsReply(can0: GvretBusParams, can1: GvretBusParams = { enabled: false, listenOnly: false, bitrate: 0 }): Uint8Array {
  const b = new Uint8Array(12);
  b[0] = GVRET_START;
  b[1] = GvretCmd.getBusParams;
  b[2] = (can0.enabled ? 1 : 0) | (can0.listenOnly ? 0x10 : 0);
  putU32le(b, 3, can0.bitrate >>> 0);
  b[7] = (can1.enabled ? 1 : 0) | (can1.listenOnly ? 0x10 : 0);
  putU32le(b, 8, can1.bitrate >>> 0);
  return b;
}

/** `F1 07 | build u16 | EEPROM version 0x20 | file type | auto-log | single-wire`. */
export function gvretDeviceInfoReply(build: number): Uint8Array {
  return Uint8Array.of(GVRET_START, GvretCmd.getDeviceInfo, build & 0xff, (build >>> 8) & 0xff, 0x20, 0, 0, 0);
}

/** `F1 09 DE AD`: the keepalive ("validation") answer. */
export function gvretKeepaliveReply(): Uint8Array {
  return Uint8Array.of(GVRET_START, GvretCmd.keepalive, 0xde, 0xad);
}

/** Buses a GVRET frame can name (the bus number is 4 bits in the classic frame's length byte). */
export const GVRET_MAX_BUSES = 16;

/** `F1 0C n`: number of buses. */
export function gvretNumBusesReply(n: number): Uint8Array {
  return Uint8Array.of(GVRET_START, GvretCmd.getNumBuses, n & 0xff);
}

/** `F1 0D` + 15 zero bytes: no single-wire CAN, no LIN buses. */
export function gvretExtBusesReply(): Uint8Array {
  const b = new Uint8Array(17);
  b[0] = GVRET_START;
  b[1] = GvretCmd.getExtBuses;
  return b;
}

/** The UDP discovery datagram ESP32RET broadcasts to port 17222 once a second. */
export const GVRET_DISCOVERY_PORT = 17222;
export const GVRET_DISCOVERY_PAYLOAD: Uint8Array = Uint8Array.of(0x1c, 0xef, 0xac, 0xed);
