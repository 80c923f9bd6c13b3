/**
 * A real Waveshare 13-byte TCP client for tests (docs/protocols.md §5), over Bun.connect
 * on loopback. Encoder and decoder are written here independently of src/protocols/waveshare, so
 * a codec bug cannot hide by being on both ends of a test. The decoder is as strict as the Home
 * Assistant client (python-can `waveshare` interface) and stricter: every frame the gateway sends
 * must have a DLC of 0..8, no reserved info bits, an id in range and zero padding, and the stream
 * must stay aligned on 13 bytes; anything else is recorded in `problems` (a test failure).
 * Also a non-reading Waveshare client in a separate python3 process, for backpressure tests.
 */
import type { Subprocess } from "bun";
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_RTR_FLAG, CAN_SFF_MASK, type CanFrame } from "../../src/can/frame.ts";
import { TcpTestClient } from "./tcp-test-client.ts";

export const WS_FRAME_BYTES = 13;
const INFO_EXT = 0x80;
const INFO_RTR = 0x40;

/** Raw 13-byte element: info, id (bare, no flag bits), data (padding included). */
export function wsBytes(info: number, id: number, data: readonly number[] = []): Uint8Array {
  const out = new Uint8Array(WS_FRAME_BYTES);
  out[0] = info;
  out[1] = (id >>> 24) & 0xff;
  out[2] = (id >>> 16) & 0xff;
  out[3] = (id >>> 8) & 0xff;
  out[4] = id & 0xff;
  out.set(data.slice(0, 8), 5);
  return out;
}

/** Independent encoder: one 13-byte element per frame, RTR keeps its DLC and sends no data. */
export function encodeWs(frames: readonly CanFrame[]): Uint8Array {
  const out = new Uint8Array(frames.length * WS_FRAME_BYTES);
  frames.forEach((f, i) => {
    const ext = (f.canId & CAN_EFF_FLAG) !== 0;
    const rtr = (f.canId & CAN_RTR_FLAG) !== 0;
    const id = ext ? f.canId & CAN_EFF_MASK : f.canId & CAN_SFF_MASK;
    const info = (ext ? INFO_EXT : 0) | (rtr ? INFO_RTR : 0) | f.len;
    out.set(wsBytes(info, id, rtr ? [] : Array.from(f.data)), i * WS_FRAME_BYTES);
  });
  return out;
}

export class WaveshareTestClient extends TcpTestClient {
  /** Every element exactly as received (13 bytes each). */
  readonly raw: Uint8Array[] = [];
  /** Anything the gateway sent that this format (or the HA client) would not accept. */
  readonly problems: string[] = [];
  /** Bytes of an element split across reads (stays < 13; non-zero at the end = misaligned). */
  private partial = new Uint8Array(0);

  static async connect(port: number, host = "127.0.0.1", localAddress?: string): Promise<WaveshareTestClient> {
    const c = await new WaveshareTestClient().connectTo(port, host, localAddress);
    // The HA client sets TCP_NODELAY too; here it also keeps byte-by-byte writes separate.
    c.socket.setNoDelay(true);
    return c;
  }

  get pendingBytes(): number {
    return this.partial.length;
  }

  send(...frames: CanFrame[]): void {
    this.write(encodeWs(frames));
  }

  protected onData(data: Uint8Array): void {
    const arrived = this.arrivalTime();
    const merged = new Uint8Array(this.partial.length + data.length);
    merged.set(this.partial);
    merged.set(data, this.partial.length);
    let off = 0;
    for (; merged.length - off >= WS_FRAME_BYTES; off += WS_FRAME_BYTES) this.element(merged.slice(off, off + WS_FRAME_BYTES), arrived);
    this.partial = merged.slice(off);
    this.wake();
  }

  private element(b: Uint8Array, arrived: number): void {
    this.raw.push(b);
    const info = b[0]!;
    const ext = (info & INFO_EXT) !== 0;
    const rtr = (info & INFO_RTR) !== 0;
    const dlc = info & 0x0f;
    const id = ((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) >>> 0;
    // Only a problem needs the element in hex (a benchmark receives millions of good ones).
    const hex = { toString: () => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("") };
    if ((info & 0x30) !== 0) this.problems.push(`reserved info bits in ${hex}`);
    if (dlc > 8) {
      // The HA client skips such an element; it must never be sent.
      this.problems.push(`DLC ${dlc} in ${hex}`);
      return;
    }
    if (id > (ext ? CAN_EFF_MASK : CAN_SFF_MASK)) this.problems.push(`id out of range in ${hex}`);
    const used = rtr ? 0 : dlc;
    for (let i = 5 + used; i < WS_FRAME_BYTES; i++) if (b[i] !== 0) this.problems.push(`non-zero padding in ${hex}`);
    const canId = ((ext ? id | CAN_EFF_FLAG : id) | (rtr ? CAN_RTR_FLAG : 0)) >>> 0;
    this.addFrame({ canId, len: dlc, data: b.slice(5, 5 + used), fd: false, fdFlags: 0 }, arrived);
  }
}

const SLOW_SCRIPT = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
`;

export interface SlowWaveshareClient {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  kill(): void;
}

/**
 * A Waveshare client that connects (no handshake in this format) and never reads: a separate
 * python3 process with a tiny receive buffer, so the gateway's socket really stops draining.
 */
export async function startSlowWaveshareClient(port: number, lifetimeSeconds = 20): Promise<SlowWaveshareClient> {
  const proc = Bun.spawn(["python3", "-c", SLOW_SCRIPT, String(port), String(lifetimeSeconds)], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("slow Waveshare client did not start");
  return { proc, kill: () => proc.kill() };
}
