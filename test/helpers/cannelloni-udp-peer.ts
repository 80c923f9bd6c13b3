/**
 * An independent cannelloni UDP peer (format v2, docs/protocols.md §3) on loopback for tests and
 * benchmarks: a Bun UDP socket bound to 127.0.0.1 with its own datagram encoder and decoder,
 * written here from cannelloni's doc/udp_format.md (not from src/protocols/cannelloni-udp), so a
 * codec bug cannot hide by being on both ends. It numbers its datagrams itself (a test can skip a
 * number to simulate a lost datagram), and records every datagram it receives with its sequence
 * number; a datagram it cannot parse goes to `problems` (a test failure).
 */
import type { udp } from "bun";
import { CAN_RTR_FLAG, type CanFrame } from "../../src/can/frame.ts";

/** Encodes frames as one v2 DATA datagram: 02 00 seq count(BE u16), then id(BE) len [flags] data. */
export function udpDatagram(seq: number, frames: readonly CanFrame[], countOverride?: number): Uint8Array {
  const body: number[] = [];
  for (const f of frames) {
    body.push(f.canId >>> 24, (f.canId >>> 16) & 0xff, (f.canId >>> 8) & 0xff, f.canId & 0xff);
    const rtr = (f.canId & CAN_RTR_FLAG) !== 0;
    if (f.fd) body.push(0x80 | f.data.length, f.fdFlags & 0x03);
    else body.push(f.len); // RTR keeps its DLC over UDP
    if (!rtr) body.push(...f.data);
  }
  const count = countOverride ?? frames.length;
  return Uint8Array.from([2, 0, seq & 0xff, count >> 8, count & 0xff, ...body]);
}

export interface ReceivedDatagram {
  readonly seq: number;
  readonly frames: CanFrame[];
  readonly bytes: number;
  readonly at: number;
}

export class CannelloniUdpPeer {
  readonly frames: CanFrame[] = [];
  readonly datagrams: ReceivedDatagram[] = [];
  readonly problems: string[] = [];
  /** Sender address of every datagram received (should all be the gateway). */
  readonly senders: string[] = [];
  stampReceipts = false;
  readonly receipts: number[] = [];
  /** Next sequence number send() uses. */
  seq = 0;

  private constructor(private readonly socket: udp.Socket<"uint8array">) {}

  get port(): number {
    return this.socket.port;
  }

  static async bind(port = 0, hostname = "127.0.0.1"): Promise<CannelloniUdpPeer> {
    let peer: CannelloniUdpPeer | null = null;
    const socket = await Bun.udpSocket({
      hostname,
      port,
      binaryType: "uint8array",
      socket: { data: (_s, data, p, addr) => peer?.onDatagram(data, p, addr) },
    });
    peer = new CannelloniUdpPeer(socket);
    return peer;
  }

  /** Sends frames in one datagram with the next sequence number, to the gateway's UDP port. */
  send(gatewayPort: number, ...frames: CanFrame[]): void {
    this.sendRaw(gatewayPort, udpDatagram(this.seq, frames));
    this.seq = (this.seq + 1) & 0xff;
  }

  sendRaw(gatewayPort: number, bytes: Uint8Array): void {
    if (!this.socket.send(bytes, gatewayPort, "127.0.0.1")) throw new Error("the test peer's socket refused a datagram");
  }

  async waitFrames(n: number, timeoutMs = 3000): Promise<CanFrame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < n) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} frames over UDP (have ${this.frames.length})`);
      await Bun.sleep(2);
    }
    return this.frames.slice(0, n);
  }

  close(): void {
    this.socket.close();
  }

  private onDatagram(d: Uint8Array, port: number, addr: string): void {
    const at = performance.timeOrigin + performance.now();
    this.senders.push(`${addr}:${port}`);
    if (d.length < 5 || d[0] !== 2 || d[1] !== 0) {
      this.problems.push(`bad header ${Buffer.from(d.subarray(0, 5)).toString("hex")}`);
      return;
    }
    const count = (d[3]! << 8) | d[4]!;
    const frames: CanFrame[] = [];
    let p = 5;
    for (let k = 0; k < count; k++) {
      if (p + 5 > d.length) {
        this.problems.push(`count ${count} overruns the datagram`);
        return;
      }
      const canId = ((d[p]! << 24) | (d[p + 1]! << 16) | (d[p + 2]! << 8) | d[p + 3]!) >>> 0;
      const lenByte = d[p + 4]!;
      const fd = (lenByte & 0x80) !== 0;
      const len = lenByte & 0x7f;
      const head = fd ? 6 : 5;
      const n = (canId & CAN_RTR_FLAG) !== 0 ? 0 : len;
      if (p + head + n > d.length) {
        this.problems.push(`frame ${k} runs past the datagram`);
        return;
      }
      frames.push({ canId, len, data: d.slice(p + head, p + head + n), fd, fdFlags: fd ? d[p + 5]! : 0 });
      p += head + n;
    }
    if (p !== d.length) this.problems.push(`${d.length - p} bytes after the frames`);
    this.datagrams.push({ seq: d[2]!, frames, bytes: d.length, at });
    for (const f of frames) {
      this.frames.push(f);
      if (this.stampReceipts) this.receipts.push(at);
    }
  }
}
