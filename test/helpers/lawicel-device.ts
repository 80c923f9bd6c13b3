/**
 * A scripted Lawicel slcan adapter (CANable slcan firmware, USBtin, CANUSB) on the adapter end of
 * a socat pty pair, for the slcan backend's tests: it answers commands the way the adapters do
 * (CR for `C`, `Sn`, `O`, `L`; `V1013`/`F00` replies; BEL for anything it does not know or a
 * frame while closed), acknowledges transmitted frames like an auto-poll adapter (`z`/`Z`),
 * records every line the host sent, parses frame lines with its own parser (independent of
 * src/protocols/slcan, so a codec bug cannot hide on both ends), and sends `t…` lines to the host.
 * A mock only in the sense that no USB adapter exists on this machine: the tty is a real kernel pty.
 */
import fs from "node:fs";
import { CAN_EFF_FLAG, CAN_RTR_FLAG, type CanFrame } from "../../src/can/frame.ts";
import { readAvailable } from "./pty.ts";

const CR = 0x0d;
const BEL = 0x07;

/** Parses `tiiiL…`, `TiiiiiiiiL…`, `riiiL`, `RiiiiiiiiL`; null if the line is not one. */
export function parseLawicelFrame(line: string): CanFrame | null {
  const m = /^([tTrR])([0-9A-Fa-f]+)$/.exec(line);
  if (!m) return null;
  const kind = m[1]!;
  const ext = kind === "T" || kind === "R";
  const idLen = ext ? 8 : 3;
  const body = m[2]!;
  if (body.length < idLen + 1) return null;
  const id = Number.parseInt(body.slice(0, idLen), 16);
  const dlc = Number.parseInt(body.charAt(idLen), 16);
  if (dlc > 8) return null;
  const rtr = kind === "r" || kind === "R";
  const hex = body.slice(idLen + 1);
  if (rtr ? hex.length !== 0 : hex.length !== dlc * 2) return null;
  const data = new Uint8Array(rtr ? 0 : dlc);
  for (let i = 0; i < data.length; i++) data[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  const canId = ((ext ? id | CAN_EFF_FLAG : id) | (rtr ? CAN_RTR_FLAG : 0)) >>> 0;
  return { canId, len: dlc, data, fd: false, fdFlags: 0 };
}

export class LawicelDevice {
  /** Every line the host wrote, in order (commands and frames, without CR). */
  readonly lines: string[] = [];
  /** Frames the host transmitted, in order. */
  readonly frames: CanFrame[] = [];
  /** The channel state the host's commands left the adapter in. */
  open = false;
  /** The last `Sn` the host set. */
  bitrateCommand = "";
  /** Stop reading (the host's writes pile up in the pty until it pushes back). */
  paused = false;
  /** Answer frames with BEL (an adapter whose buffer is full or whose bus is off). */
  refuseFrames = false;
  /** Answer `Sn` with BEL (an adapter that does not support the rate). */
  refuseBitrate = false;
  /** First protocol violation seen (a line that is neither a known command nor a valid frame). */
  error = "";
  private fd: number;
  private pending = "";
  private readonly timer: ReturnType<typeof setInterval>;
  private readonly buf = new Uint8Array(65536);

  constructor(fd: number) {
    this.fd = fd;
    this.timer = setInterval(() => this.poll(), 1);
  }

  /** The adapter was re-plugged: a fresh device on a new fd (closed channel, as after power-up). */
  reopen(fd: number): void {
    this.fd = fd;
    this.pending = "";
    this.open = false;
  }

  /** Sends lines to the host, each followed by CR (e.g. "t1232AABB"). */
  send(...lines: string[]): void {
    this.write(new TextEncoder().encode(lines.map((l) => `${l}\r`).join("")));
  }

  /** Sends raw bytes to the host (garbage, BEL, partial lines). */
  write(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(this.fd, bytes, off, bytes.length - off);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private poll(): void {
    if (this.paused || this.fd < 0) return;
    readAvailable(this.fd, this.buf, (chunk) => {
      for (const b of chunk) {
        if (b === CR) {
          const line = this.pending;
          this.pending = "";
          this.line(line);
        } else this.pending += String.fromCharCode(b);
      }
    });
  }

  private answer(text: string): void {
    try {
      if (text === "\x07") this.write(Uint8Array.of(BEL));
      else this.write(new TextEncoder().encode(`${text}\r`));
    } catch {
      // The host end is gone: nothing to answer.
    }
  }

  private line(line: string): void {
    this.lines.push(line);
    const c = line.charAt(0);
    if ("tTrR".includes(c) && c !== "") {
      const frame = parseLawicelFrame(line);
      if (frame === null) {
        this.error ||= `bad frame line "${line}"`;
        return this.answer("\x07");
      }
      if (!this.open || this.refuseFrames) return this.answer("\x07");
      this.frames.push(frame);
      return this.answer(c === "t" || c === "r" ? "z" : "Z");
    }
    if (line === "C") {
      // Lawicel: BEL when already closed; CANable answers CR either way. The backend must cope with both.
      const was = this.open;
      this.open = false;
      return this.answer(was ? "" : "\x07");
    }
    if (/^S[0-9]$/.test(line)) {
      if (this.open || this.refuseBitrate) return this.answer("\x07");
      this.bitrateCommand = line;
      return this.answer("");
    }
    if (line === "O" || line === "L") {
      if (this.open) return this.answer("\x07");
      this.open = true;
      return this.answer("");
    }
    if (line === "V") return this.answer("V1013");
    if (line === "F") return this.answer("F00");
    this.error ||= `unexpected line "${line}"`;
    return this.answer("\x07");
  }
}
