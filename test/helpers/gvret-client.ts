/**
 * A GVRET test client written from SavvyCAN's connection sequence (connections/gvretserial.cpp,
 * docs/protocols.md §7), over Bun.connect on loopback, for tests and benchmarks. Its encoder and
 * parser are written here independently of src/protocols/gvret. What it does, as SavvyCAN does:
 * on connect it writes `E7 E7 F1 0C F1 06 F1 07 F1 01 F1 09` in one segment; it counts the device
 * as connected once it has parsed the bus-parameter answer (F1 06) or the extended-bus answer
 * (F1 0D, which it requests after the bus-count answer F1 0C); then it sends `F1 09` every
 * 250 ms and gives up (as SavvyCAN does: disconnect) after 10 ticks without an answer. Anything
 * the device sends that does not parse goes to `problems` (a test failure).
 */
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_SFF_MASK, type CanFrame } from "../../src/can/frame.ts";
import { TcpTestClient } from "./tcp-test-client.ts";

export const SAVVYCAN_OPENING = Uint8Array.of(0xe7, 0xe7, 0xf1, 0x0c, 0xf1, 0x06, 0xf1, 0x07, 0xf1, 0x01, 0xf1, 0x09);
const KEEPALIVE = Uint8Array.of(0xf1, 0x09);
/** SavvyCAN disconnects after this many keepalive ticks without an answer. */
export const SAVVYCAN_MAX_MISSED = 10;

const u32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;

/** SavvyCAN's host → device frame: F1 00 (FD: F1 14) id u32 LE (bit 31 extended) | bus | len | data | 00. */
export function gvretHostFrame(f: CanFrame, bus = 0): Uint8Array {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const id = ext ? ((f.canId & CAN_EFF_MASK) | 0x80000000) >>> 0 : f.canId & CAN_SFF_MASK;
  const out = new Uint8Array(9 + f.data.length);
  out[0] = 0xf1;
  out[1] = f.fd ? 0x14 : 0x00;
  out[2] = id & 0xff;
  out[3] = (id >>> 8) & 0xff;
  out[4] = (id >>> 16) & 0xff;
  out[5] = id >>> 24;
  out[6] = bus;
  out[7] = f.data.length;
  out.set(f.data, 8);
  return out; // checksum byte stays 0
}

export interface GvretFrameRx {
  readonly frame: CanFrame;
  readonly timestampUs: number;
  readonly bus: number;
}

export class GvretTestClient extends TcpTestClient {
  readonly received: GvretFrameRx[] = [];
  readonly problems: string[] = [];
  /** Command bytes of every non-frame answer, in order (0x06 bus params, 0x09 keepalive, …). */
  readonly answers: number[] = [];
  busParams: { enabled0: boolean; bitrate0: number; enabled1: boolean; bitrate1: number } | null = null;
  numBuses: number | null = null;
  deviceBuild: number | null = null;
  /** SavvyCAN's "connected": bus parameters (or extended buses) parsed. */
  connected = false;
  keepalivesSent = 0;
  keepalivesAnswered = 0;
  /** Ticks since the last answered keepalive; SavvyCAN gives up at 10. */
  missed = 0;
  gaveUp = false;
  private buf = new Uint8Array(0);
  private keepaliveTimer: ReturnType<typeof setInterval> | null = null;

  static async connect(port: number, host = "127.0.0.1"): Promise<GvretTestClient> {
    return new GvretTestClient().connectTo(port, host);
  }

  /** SavvyCAN's opening write; resolves once "connected" (validation passed). */
  async openLikeSavvyCan(timeoutMs = 5000): Promise<void> {
    this.write(SAVVYCAN_OPENING);
    this.keepalivesSent++; // the opening ends with a keepalive
    await this.until(() => this.connected, timeoutMs, "SavvyCAN's validation (bus parameters answer)");
  }

  /** Sends `F1 09` every `intervalMs`, counting unanswered ticks; after 10, closes as SavvyCAN does. */
  startKeepalive(intervalMs = 250): void {
    this.keepaliveTimer = setInterval(() => {
      if (this.closed) return this.stopKeepalive();
      if (this.keepalivesSent > this.keepalivesAnswered) this.missed++;
      if (this.missed >= SAVVYCAN_MAX_MISSED) {
        this.gaveUp = true;
        this.stopKeepalive();
        this.close();
        return;
      }
      this.keepalivesSent++;
      this.write(KEEPALIVE);
    }, intervalMs);
  }

  stopKeepalive(): void {
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
  }

  override close(): void {
    this.stopKeepalive();
    super.close();
  }

  send(...frames: CanFrame[]): void {
    this.sendOn(0, ...frames);
  }

  /** Sends frames for GVRET bus number `bus` (SavvyCAN's bus byte). */
  sendOn(bus: number, ...frames: CanFrame[]): void {
    const parts = frames.map((f) => gvretHostFrame(f, bus));
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    this.write(all);
  }

  protected onData(data: Uint8Array): void {
    const arrived = this.arrivalTime();
    const b = new Uint8Array(this.buf.length + data.length);
    b.set(this.buf);
    b.set(data, this.buf.length);
    let p = 0;
    while (p < b.length) {
      if (b[p] !== 0xf1) {
        this.problems.push(`byte 0x${b[p]!.toString(16)} outside a command`);
        p++;
        continue;
      }
      if (p + 2 > b.length) break;
      const cmd = b[p + 1]!;
      const need = this.length(b, p, cmd);
      if (need === null) {
        this.problems.push(`unknown command 0x${cmd.toString(16)}`);
        p += 2;
        continue;
      }
      if (need < 0 || p + need > b.length) break;
      this.handle(b.subarray(p, p + need), cmd, arrived);
      p += need;
    }
    this.buf = b.slice(p);
    this.wake();
  }

  /** Total bytes of the message at p (header included); -1 = need more to know; null = unknown. */
  private length(b: Uint8Array, p: number, cmd: number): number | null {
    switch (cmd) {
      case 0x00: // F1 00 ts4 id4 len|bus data 00
        if (p + 11 > b.length) return -1;
        return 11 + (b[p + 10]! & 0x0f) + 1;
      case 0x14: // F1 14 ts4 id4 len bus data 00
        if (p + 11 > b.length) return -1;
        return 12 + b[p + 10]! + 1;
      case 0x01:
        return 6;
      case 0x06:
        return 12;
      case 0x07:
        return 8;
      case 0x09:
        return 4;
      case 0x0c:
        return 3;
      case 0x0d:
        return 17;
      default:
        return null;
    }
  }

  private handle(m: Uint8Array, cmd: number, arrived: number): void {
    if (cmd === 0x00 || cmd === 0x14) {
      const ts = u32(m, 2);
      const idWord = u32(m, 6);
      const ext = (idWord & 0x80000000) !== 0;
      const fd = cmd === 0x14;
      const len = fd ? m[10]! : m[10]! & 0x0f;
      const bus = fd ? m[11]! : m[10]! >> 4;
      const start = fd ? 12 : 11;
      if (m[start + len] !== 0) this.problems.push("frame without its trailing 00");
      if (!fd && len > 8) this.problems.push(`classic frame length ${len}`);
      const id = idWord & 0x7fffffff;
      const frame: CanFrame = { canId: (ext ? id | CAN_EFF_FLAG : id) >>> 0, len, data: m.slice(start, start + len), fd, fdFlags: 0 };
      this.addFrame(frame, arrived);
      this.received.push({ frame, timestampUs: ts, bus });
      return;
    }
    this.answers.push(cmd);
    switch (cmd) {
      case 0x06:
        this.busParams = { enabled0: (m[2]! & 1) === 1, bitrate0: u32(m, 3), enabled1: (m[7]! & 1) === 1, bitrate1: u32(m, 8) };
        this.connected = true;
        return;
      case 0x07:
        this.deviceBuild = m[2]! | (m[3]! << 8);
        return;
      case 0x09:
        if (m[2] !== 0xde || m[3] !== 0xad) this.problems.push("keepalive answer is not DE AD");
        this.keepalivesAnswered++;
        this.missed = 0;
        return;
      case 0x0c:
        this.numBuses = m[2]!;
        // SavvyCAN asks for the extended buses after the bus count.
        this.write(Uint8Array.of(0xf1, 0x0d));
        return;
      case 0x0d:
        this.connected = true;
        return;
    }
  }
}
