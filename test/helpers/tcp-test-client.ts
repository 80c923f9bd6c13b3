/**
 * What every real-TCP test client shares (cannelloni, Waveshare, slcan, GVRET, canlogserver):
 * connecting over Bun.connect with every chunk routed to the client's decoder, writing a whole
 * buffer, waiting for a condition with a deadline (woken early by incoming data), and the
 * received-frames / receipt-time / closed bookkeeping. Protocol decoding stays in each client.
 */
import net from "node:net";
import type { CanFrame } from "../../src/can/frame.ts";

/** What the clients use of a connection: Bun.connect's socket, or a node:net one bound to a local address. */
interface Conn {
  write(data: Uint8Array): number;
  end(): void;
  terminate(): void;
  setNoDelay(on: boolean): void;
  readonly localPort: number;
}

export abstract class TcpTestClient {
  readonly frames: CanFrame[] = [];
  closed = false;
  /**
   * Called after each received chunk with every frame received so far. Benchmarks stamp the new
   * frames and empty the array (and `raw`, where the client keeps one), so a long run keeps no history.
   */
  onReceive: ((frames: CanFrame[]) => void) | null = null;
  /** When true, receipts[i] is the time (ms, timeOrigin-based) frames[i] arrived (benchmarks). */
  stampReceipts = false;
  readonly receipts: number[] = [];
  protected socket!: Conn;
  private waiters: (() => void)[] = [];

  /**
   * Connects this client to host:port; every chunk goes to onData, close and error to onClose.
   * With `localAddress` (e.g. 127.0.0.2: loopback is all of 127.0.0.0/8) the connection comes
   * from that address, so a test can play several hosts (node:net: Bun.connect cannot bind).
   */
  protected async connectTo(port: number, host = "127.0.0.1", localAddress?: string): Promise<this> {
    if (localAddress !== undefined) {
      this.socket = await new Promise<Conn>((resolve, reject) => {
        const s = net.connect({ host, port, localAddress }, () => {
          s.off("error", reject);
          s.on("error", () => this.onClose());
          resolve({
            // node:net buffers what the kernel does not take yet: every byte is accepted.
            write: (data) => (s.write(data), data.length),
            end: () => s.end(),
            terminate: () => s.resetAndDestroy(),
            setNoDelay: (on) => s.setNoDelay(on),
            get localPort() {
              return s.localPort ?? 0;
            },
          });
        });
        s.on("data", (d: Buffer) => this.onData(new Uint8Array(d.buffer, d.byteOffset, d.length)));
        s.on("close", () => this.onClose());
        s.once("error", reject);
      });
      return this;
    }
    this.socket = await Bun.connect({
      hostname: host,
      port,
      socket: {
        data: (_s, data) => this.onData(data),
        close: () => this.onClose(),
        error: () => this.onClose(),
      },
    });
    return this;
  }

  /** Decodes one received chunk (and calls wake()). */
  protected abstract onData(data: Uint8Array): void;

  /** The time a chunk arrived, when receipts are stamped (0 otherwise). */
  protected arrivalTime(): number {
    return this.stampReceipts ? performance.timeOrigin + performance.now() : 0;
  }

  /** Records a decoded frame (and, when stamping, the time its chunk arrived). */
  protected addFrame(frame: CanFrame, arrived: number): void {
    this.frames.push(frame);
    if (this.stampReceipts) this.receipts.push(arrived);
  }

  write(bytes: Uint8Array): void {
    let off = 0;
    // Loopback test traffic is small; spin on partial writes rather than buffering.
    for (let spins = 0; off < bytes.length && spins < 10_000; spins++) {
      const n = this.socket.write(bytes.subarray(off));
      if (n < 0) throw new Error("socket closed");
      off += n;
    }
    if (off < bytes.length) throw new Error("test client could not write");
  }

  /** Writes what the socket takes now, without waiting (a flooder): bytes taken, < 0 when closed. */
  offer(bytes: Uint8Array): number {
    return this.socket.write(bytes);
  }

  close(): void {
    this.socket.end();
  }

  /** This end's port (how the gateway's logs name this client: remote 127.0.0.1:PORT). */
  get localPort(): number {
    return this.socket.localPort;
  }

  /** Vanishes without FIN: the connection is reset. */
  reset(): void {
    this.socket.terminate();
  }

  async waitFrames(n: number, timeoutMs = 5000): Promise<CanFrame[]> {
    await this.until(() => this.frames.length >= n, timeoutMs, `${n} frames (have ${this.frames.length})`);
    return this.frames.slice(0, n);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await this.until(() => this.closed, timeoutMs, "close");
  }

  async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 20);
      });
    }
  }

  /** Call after new data: wakes waiting until() calls early. */
  protected wake(): void {
    this.onReceive?.(this.frames);
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  protected onClose(): void {
    this.closed = true;
    this.wake();
  }
}
