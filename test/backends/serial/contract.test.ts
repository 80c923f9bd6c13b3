/**
 * The serial backend runs the backend transmit contract over real kernel ttys: a socat pty pair,
 * end `a` for the backend, end `b` read by an independent parser of the host→adapter format
 * (spec §4, checksum checked) playing the adapter. Stalling is real back-pressure: the adapter
 * end stops reading, fillers fill the pty and socat buffers until fs.writeSync hits EAGAIN, and
 * the backend then holds frames it cannot write. Unplugging kills socat (the device vanishes).
 */
import { SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { type CanFrame, dataFrame } from "../../../src/can/frame.ts";
import { readAvailable } from "../../helpers/pty.ts";
import { runBackendContract } from "../contract.ts";
import { type PtyAdapterEnd, PtyScope, ptyContractFixture } from "./harness.ts";

const scope = new PtyScope();

/**
 * Reads host→adapter frames from the adapter end: `2D D4 | L | 02 | 80|dlc | id u32 BE |
 * payload | checksum` (L = 6 + dlc + 1; checksum = 2D + L + bytes 3.. mod 256). Anything else
 * fails the test: the backend must never put other bytes on the line.
 */
class AdapterEnd implements PtyAdapterEnd {
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
    readAvailable(this.fd, this.buf, (chunk) => {
      for (const b of chunk) this.pending.push(b);
      this.parse();
    });
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
  open: () =>
    ptyContractFixture(scope, {
      name: "contract",
      backend: (o) => new SerialBackend({ ...o, baud: 115200 }),
      adapter: (fd) => new AdapterEnd(fd),
    }),
  release: () => scope.release(),
});
