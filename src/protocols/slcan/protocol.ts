/**
 * slcan (Lawicel) over TCP as a WireSession (docs/protocols.md §6; usual port 3333). Each
 * connection is one emulated adapter with its own state: channel closed / open / listen-only,
 * timestamps on/off, bit rate and acceptance code/mask. Every command line is answered with CR
 * (ok) or BEL (error) as a Lawicel adapter does; `V`, `v`, `N` and `F` answer with their value.
 *
 * Mapping onto the server session:
 * - `ready()` fires the first time the client opens the channel (`O` or `L`); until then no bus
 *   frame is queued for it. After a later `C`, `accepts()` returns false again, so frames flow
 *   only while the channel is open; `encode()` re-checks, so nothing queued before a `C` leaks.
 * - `accepts(frame)`: channel open (or listen-only), the frame has an slcan form (no error
 *   frames; FD only with `options.fd`) and passes the client's `M`/`m` acceptance filter.
 * - `rejected(reason)`: a frame line the adapter refuses (channel closed, listen-only, bad
 *   syntax, FD not enabled) and an over-long line — each answered with BEL, connection kept.
 * - `fail()` is never used: nothing a client sends ends its connection.
 * `S`/`s` change nothing on the bus: the gateway does not retune it. A different rate is
 * acknowledged (CR) and reported through `options.notice` so the server can log it.
 */
import type { CanFrame, StampedFrame } from "../../can/frame.ts";
import type { WireProtocol, WireSession, WireSessionEvents, WireSessionOptions } from "../protocol.ts";
import {
  encodeSlcanFrames,
  isSlcanFrameCommand,
  parseSlcanFrame,
  printable,
  SLCAN_MAX_LINE,
  SlcanLineReader,
  sja1000DualFilterAccepts,
  slcanCanCarry,
} from "./codec.ts";

export const SLCAN_NAME = "slcan";
/** No registry of ports exists for slcan over TCP; 3333 is what slcan-over-TCP bridges commonly use. */
export const SLCAN_DEFAULT_PORT = 3333;

/** `Sn` → bit/s (Lawicel S0..S8; S9 = 83.3k is python-can's/CANable's extension). */
export const SLCAN_BITRATES: readonly number[] = [10000, 20000, 50000, 100000, 125000, 250000, 500000, 800000, 1000000, 83333];

/** Replies: `V` hardware/firmware version, `v` major/minor, `N` serial number (4 characters). */
export const SLCAN_VERSION_REPLY = "V1013";
export const SLCAN_SW_VERSION_REPLY = "v1014";
export const SLCAN_SERIAL_REPLY = "NCSGW";

export type SlcanChannel = "closed" | "open" | "listen-only";

export interface SlcanOptions extends WireSessionOptions {
  /** The bus bit rate, if known: an `S` naming another rate is then reported via `notice`. */
  readonly busBitrate?: number;
  /** Something worth a log line that is not an error (a bit rate the gateway will not apply). */
  readonly notice?: (text: string) => void;
}


export class SlcanSession implements WireSession {
  private chan: SlcanChannel = "closed";
  private ts = false;
  private code = 0x00000000;
  private mask = 0xffffffff;
  private rate: number | null = null;
  private readyFired = false;
  private readonly reader: SlcanLineReader;
  private readonly acceptFn = (f: CanFrame): boolean => this.accepts(f);
  /** Replies produced while handling one received chunk: written as one reply, in order. */
  private out = "";

  constructor(
    private readonly events: WireSessionEvents,
    private readonly options: SlcanOptions,
  ) {
    this.reader = new SlcanLineReader({
      line: (text) => this.command(text),
      overlong: () => {
        this.events.rejected(`line longer than ${SLCAN_MAX_LINE} characters skipped`);
        this.bell();
      },
    });
  }

  get channel(): SlcanChannel {
    return this.chan;
  }
  get timestamps(): boolean {
    return this.ts;
  }
  /** The acceptance code and mask last set with `M`/`m`. */
  get filter(): { code: number; mask: number } {
    return { code: this.code, mask: this.mask };
  }
  /** The bit rate the client asked for with `S` (null before any `S`; `s` sets NaN: custom BTR). */
  get requestedBitrate(): number | null {
    return this.rate;
  }
  /** Bytes held for an unfinished command line. */
  get buffered(): number {
    return this.reader.buffered;
  }

  start(): void {
    // An adapter says nothing until asked.
  }

  receive(chunk: Uint8Array): void {
    this.reader.push(chunk);
    if (this.out !== "") {
      const bytes = new Uint8Array(this.out.length);
      for (let i = 0; i < this.out.length; i++) bytes[i] = this.out.charCodeAt(i);
      this.out = "";
      this.events.reply(bytes);
    }
  }

  accepts(frame: CanFrame): boolean {
    return this.chan !== "closed" && slcanCanCarry(frame, this.options.fd) && sja1000DualFilterAccepts(frame, this.code, this.mask);
  }

  encode(frames: readonly StampedFrame[], count: number): Uint8Array {
    return encodeSlcanFrames(frames, count, { fd: this.options.fd, timestamps: this.ts, accept: this.acceptFn });
  }

  private command(line: string): void {
    if (line === "") return; // a bare CR: python-can's "no data bit rate"; adapters ignore it
    const c = line.charAt(0);
    if (isSlcanFrameCommand(c)) return this.frameLine(line);
    const closed = this.chan === "closed";
    switch (c) {
      case "O":
      case "L":
        if (line.length !== 1 || !closed) return this.bell();
        this.chan = c === "O" ? "open" : "listen-only";
        this.ok();
        if (!this.readyFired) {
          this.readyFired = true;
          this.events.ready();
        }
        return;
      case "C":
        // Closing a closed channel is answered CR (as slcanpty and CANable do): clients send C first.
        if (line.length !== 1) return this.bell();
        this.chan = "closed";
        return this.ok();
      case "S": {
        const n = /^S([0-9])$/.exec(line);
        if (!n || !closed) return this.bell();
        this.setRate(SLCAN_BITRATES[Number(n[1])]!);
        return this.ok();
      }
      case "s":
        if (!/^s[0-9a-fA-F]{4}$/.test(line) || !closed) return this.bell();
        this.rate = Number.NaN;
        this.options.notice?.(`slcan client set custom bit timing ${line.slice(1)}; the gateway does not retune the bus`);
        return this.ok();
      case "Y":
        // CANable's data bit rate for FD (python-can sends Y2/Y5): acknowledged, not applied.
        if (!/^Y[0-9]$/.test(line) || !closed || !this.options.fd) return this.bell();
        return this.ok();
      case "Z":
        if (!/^Z[01]$/.test(line) || !closed) return this.bell();
        this.ts = line === "Z1";
        return this.ok();
      case "M":
      case "m": {
        if (!/^[Mm][0-9a-fA-F]{8}$/.test(line) || !closed) return this.bell();
        const v = parseInt(line.slice(1), 16) >>> 0;
        if (c === "M") this.code = v;
        else this.mask = v;
        return this.ok();
      }
      case "V":
        return line.length === 1 ? this.text(SLCAN_VERSION_REPLY) : this.bell();
      case "v":
        return line.length === 1 ? this.text(SLCAN_SW_VERSION_REPLY) : this.bell();
      case "N":
        return line.length === 1 ? this.text(SLCAN_SERIAL_REPLY) : this.bell();
      case "F":
        // Status flags: nothing to report (no overrun, no error-passive, no bus error).
        return line.length === 1 ? this.text("F00") : this.bell();
      default:
        return this.bell();
    }
  }

  private frameLine(line: string): void {
    if (this.chan === "closed") {
      this.events.rejected("frame sent while the channel is closed");
      return this.bell();
    }
    if (this.chan === "listen-only") {
      this.events.rejected("frame sent on a listen-only channel");
      return this.bell();
    }
    const frame = parseSlcanFrame(line, this.options.fd);
    if (typeof frame === "string") {
      this.events.rejected(`${frame}: "${printable(line)}"`);
      return this.bell();
    }
    this.events.frame(frame);
    this.ok();
  }

  private setRate(bitrate: number): void {
    this.rate = bitrate;
    const bus = this.options.busBitrate;
    if (bus !== undefined && bus !== bitrate) {
      this.options.notice?.(`slcan client asked for ${bitrate} bit/s, the bus runs at ${bus} bit/s; the gateway does not retune the bus`);
    }
  }

  private ok(): void {
    this.out += "\r";
  }
  private bell(): void {
    this.out += "\x07";
  }
  private text(s: string): void {
    this.out += s + "\r";
  }
}

export function open(events: WireSessionEvents, options: SlcanOptions): SlcanSession {
  return new SlcanSession(events, options);
}

export const slcan: WireProtocol = { name: "slcan", defaultPort: SLCAN_DEFAULT_PORT, open };
