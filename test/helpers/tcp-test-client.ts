/**
 * What every real-TCP test client shares (cannelloni, Waveshare): writing a whole buffer on a
 * Bun socket, waiting for a condition with a deadline (woken early by incoming data), and the
 * received-frames / closed bookkeeping. Protocol decoding stays in each client.
 */
import type { Socket } from "bun";
import type { CanFrame } from "../../src/can/frame.ts";

export abstract class TcpTestClient {
  readonly frames: CanFrame[] = [];
  closed = false;
  /**
   * Called after each received chunk with every frame received so far. Benchmarks stamp the new
   * frames and empty the array (and `raw`, where the client keeps one), so a long run keeps no history.
   */
  onReceive: ((frames: CanFrame[]) => void) | null = null;
  protected abstract socket: Socket<undefined>;
  private waiters: (() => void)[] = [];

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
