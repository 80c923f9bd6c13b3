/**
 * The serial backend runs the backend transmit contract over real kernel ttys: a socat pty pair,
 * end `a` for the backend, end `b` read by an independent parser of the host→adapter format
 * (spec §4, checksum checked) playing the adapter. Stalling is real back-pressure: the adapter
 * end stops reading, fillers fill the pty and socat buffers until fs.writeSync hits EAGAIN, and
 * the backend then holds frames it cannot write. Unplugging kills socat (the device vanishes).
 */
import fs from "node:fs";
import { SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { type CanFrame, dataFrame } from "../../../src/can/frame.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { waitFor } from "../../helpers/pty.ts";
import { recordingListener, TxLog } from "../../helpers/tx-request.ts";
import { type BackendFixture, FILLER_ID_BASE, isFiller, runBackendContract } from "../contract.ts";
import { PtyScope } from "./harness.ts";

const scope = new PtyScope();

/**
 * Reads host→adapter frames from the adapter end: `2D D4 | L | 02 | 80|dlc | id u32 BE |
 * payload | checksum` (L = 6 + dlc + 1; checksum = 2D + L + bytes 3.. mod 256). Anything else
 * fails the test: the backend must never put other bytes on the line.
 */
class AdapterEnd {
  readonly frames: CanFrame[] = [];
  paused = false;
  private fd: number;
  private pending: number[] = [];
  private timer: ReturnType<typeof setInterval>;
  private readonly buf = new Uint8Array(65536);
  error = "";

  constructor(fd: number) {
    this.fd = fd;
    this.timer = setInterval(() => this.poll(), 1);
  }

  reopen(fd: number): void {
    this.fd = fd;
    this.pending = [];
  }

  private poll(): void {
    if (this.paused || this.fd < 0) return;
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch {
        return; // EAGAIN, or the pair is gone (EIO)
      }
      if (n <= 0) return;
      for (let i = 0; i < n; i++) this.pending.push(this.buf[i]!);
      this.parse();
    }
  }

  private parse(): void {
    const p = this.pending;
    let at = 0;
    while (p.length - at >= 3) {
      if (p[at] !== 0x2d || p[at + 1] !== 0xd4) {
        this.error ||= `garbage on the line: ${p.slice(at, at + 8).map((b) => b.toString(16))}`;
        at++;
        continue;
      }
      const len = p[at + 2]!;
      if (p.length - at < 3 + len) break;
      const dlc = p[at + 4]! & 0x0f;
      let sum = 0x2d + len;
      for (let i = at + 3; i < at + 3 + len - 1; i++) sum += p[i]!;
      if ((sum & 0xff) !== p[at + 3 + len - 1] || p[at + 3] !== 0x02 || len !== 7 + dlc) this.error ||= "bad frame on the line";
      const id = ((p[at + 5]! << 24) | (p[at + 6]! << 16) | (p[at + 7]! << 8) | p[at + 8]!) >>> 0;
      this.frames.push(dataFrame(id, p.slice(at + 9, at + 9 + dlc)));
      at += 3 + len;
    }
    this.pending = p.slice(at);
  }

  close(): void {
    clearInterval(this.timer);
  }
}

runBackendContract({
  name: "serial (pty)",
  carries: { rtr: false, fd: false },
  settleMs: 50,
  canStall: true,
  async open(): Promise<BackendFixture> {
    const pair = await scope.pty("contract");
    const stats = new Stats();
    const { log } = memoryLogger("debug");
    const backend = new SerialBackend({ path: pair.deviceA, baud: 115200, stats, log, reconnect: { initialMs: 10, maxMs: 100, factor: 2 } });
    const adapter = new AdapterEnd(scope.peer(pair.deviceB));
    scope.defer(() => adapter.close());
    const listener = recordingListener();
    await backend.start(listener);
    scope.defer(() => backend.stop());
    let filler = 0;
    return {
      backend,
      listener,
      busFrames: () => {
        if (adapter.error) throw new Error(adapter.error);
        return adapter.frames.filter((f) => !isFiller(f));
      },
      unplug: async () => {
        await pair.kill();
        await waitFor(() => !backend.up, 5000, "backend down");
      },
      replug: async () => {
        await pair.recreate();
        await waitFor(() => backend.up, 5000, "backend up");
        adapter.reopen(scope.peer(pair.deviceB));
      },
      stall: async () => {
        adapter.paused = true;
        // Fill the pty until a write hits EAGAIN; then the batch in flight is stuck and what
        // the test sends next waits in the queue. A few fillers per turn leave the queue room.
        const fills = new TxLog();
        const deadline = Date.now() + 20_000;
        while (backend.txRetries === 0 || fills.with("pending").length === 0) {
          if (Date.now() > deadline) throw new Error("the pty never filled up");
          for (let i = 0; i < 8; i++) {
            if (backend.send(fills.request(dataFrame(FILLER_ID_BASE + (filler++ & 0xffff), [1, 2, 3, 4, 5, 6, 7, 8]))) !== "accepted") break;
          }
          await Bun.sleep(1);
        }
      },
      unstall: async () => {
        adapter.paused = false;
      },
    };
  },
  release: () => scope.release(),
});
