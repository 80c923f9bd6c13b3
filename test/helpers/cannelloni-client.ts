/**
 * A real cannelloni TCP client for tests, over Bun.connect on loopback. Its encoder and decoder
 * are written here independently of src/protocols/cannelloni, so a codec bug cannot hide itself
 * by being on both ends of a test.
 */
import { CAN_RTR_FLAG, type CanFrame } from "../../src/can/frame.ts";
import { TcpTestClient } from "./tcp-test-client.ts";

export const HELLO = new TextEncoder().encode("CANNELLONIv1");

/** Independent encoder (spec §2): id BE, len (|0x80 + flags for FD), data; RTR carries no data. */
export function encodeForTest(frames: readonly CanFrame[]): Uint8Array {
  const parts: number[] = [];
  for (const f of frames) {
    parts.push((f.canId >>> 24) & 0xff, (f.canId >>> 16) & 0xff, (f.canId >>> 8) & 0xff, f.canId & 0xff);
    const rtr = (f.canId & CAN_RTR_FLAG) !== 0;
    if (f.fd) parts.push(0x80 | f.len, f.fdFlags);
    else parts.push(rtr ? 0 : f.len);
    if (!rtr) parts.push(...f.data);
  }
  return Uint8Array.from(parts);
}

export interface ClientOptions {
  /** Send our hello right after connecting (python-can-cannelloni does; ESP32 ports wait). */
  helloFirst?: boolean;
  /** Do not send any hello at all. */
  noHello?: boolean;
  host?: string;
  /** Connect from this local address (another "host" on loopback, e.g. 127.0.0.2). */
  localAddress?: string;
}

export class CannelloniTestClient extends TcpTestClient {
  private buf = new Uint8Array(0);
  private gotHello = false;
  readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  /** Set when the server's bytes do not parse (a test failure). */
  protocolError: string | null = null;

  private constructor() {
    super();
    this.closedPromise = new Promise((r) => (this.resolveClosed = r));
  }

  static async connect(port: number, opts: ClientOptions = {}): Promise<CannelloniTestClient> {
    const c = await new CannelloniTestClient().connectTo(port, opts.host, opts.localAddress);
    if (opts.helloFirst && !opts.noHello) c.write(HELLO);
    return c;
  }

  /** Resolves when the server's hello has arrived (and, unless noHello, answers it). */
  async handshake(opts: ClientOptions = {}, timeoutMs = 3000): Promise<void> {
    await this.until(() => this.gotHello, timeoutMs, "server hello");
    if (!opts.helloFirst && !opts.noHello) this.write(HELLO);
  }

  send(...frames: CanFrame[]): void {
    this.write(encodeForTest(frames));
  }

  protected override onClose(): void {
    super.onClose();
    this.resolveClosed();
  }

  protected onData(data: Uint8Array): void {
    const arrived = this.arrivalTime();
    const merged = new Uint8Array(this.buf.length + data.length);
    merged.set(this.buf);
    merged.set(data, this.buf.length);
    let off = 0;
    if (!this.gotHello) {
      if (merged.length < 12) {
        this.buf = merged;
        return;
      }
      for (let i = 0; i < 12; i++) if (merged[i] !== HELLO[i]) this.protocolError = "bad server hello";
      this.gotHello = true;
      off = 12;
    }
    while (merged.length - off >= 5) {
      const id = ((merged[off]! << 24) | (merged[off + 1]! << 16) | (merged[off + 2]! << 8) | merged[off + 3]!) >>> 0;
      const lenByte = merged[off + 4]!;
      const fd = (lenByte & 0x80) !== 0;
      const len = lenByte & 0x7f;
      const rtr = (id & CAN_RTR_FLAG) !== 0;
      const head = fd ? 6 : 5;
      const dataLen = rtr ? 0 : len;
      if (merged.length - off < head + dataLen) break;
      const fdFlags = fd ? merged[off + 5]! : 0;
      const payload = merged.slice(off + head, off + head + dataLen);
      this.addFrame({ canId: id, len, data: payload, fd, fdFlags }, arrived);
      off += head + dataLen;
    }
    this.buf = merged.slice(off);
    this.wake();
  }
}
