/**
 * Helpers for the real-kernel SocketCAN tests: whether this machine has AF_CAN and vcan0 (inside
 * ../shared/vmcan it does; the development host does not), can-utils (cansend, candump, cangen)
 * and iproute2 as the independent other end, a recording BackendListener, and the SocketCanBackends
 * a test file opens (fast reconnects, fresh Stats, a debug memory log), stopped after each test.
 */
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { kernelHasSocketCan } from "../../src/backends/socketcan/ffi.ts";
import { SocketCanBackend, type SocketCanBackendOptions } from "../../src/backends/socketcan/socketcan-backend.ts";
import { formatFrame, parseFrame, type CanFrame } from "../../src/can/frame.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { type RecordingListener, recordingListener } from "../helpers/tx-request.ts";

export const IFACE = "vcan0";
export const HAVE_AF_CAN = kernelHasSocketCan();
export const HAVE_VCAN = HAVE_AF_CAN && existsSync(`/sys/class/net/${IFACE}`);
/** Link changes (ip link set/add/del) need root: true inside the VM. */
export const CAN_MANAGE_LINKS = HAVE_VCAN && process.getuid?.() === 0;

let skipNoticeShown = false;
/** Prints once why the real-kernel suite is skipped here. */
export function noteSkipped(): void {
  if (HAVE_VCAN || skipNoticeShown) return;
  skipNoticeShown = true;
  process.stderr.write(
    `SocketCAN kernel tests skipped: ${HAVE_AF_CAN ? `no ${IFACE} interface` : "this kernel has no AF_CAN"}; ` +
      "run them with `npm run test:socketcan` (a VM with vcan)\n",
  );
}

/** Runs a command, throwing with its stderr if it fails. */
export function run(...argv: string[]): void {
  const r = Bun.spawnSync(argv, { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
}

export function cansend(iface: string, text: string): void {
  run("cansend", iface, text);
}

/** The frame attached() sends; tests leave it out of what they compare. */
export const ATTACH_MARKER = "7FD#A1";

/** Sends ATTACH_MARKER on vcan0 until every client has seen it: they are attached to the hub. */
export async function attached(...clients: { readonly frames: readonly CanFrame[] }[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!clients.every((c) => c.frames.some((f) => formatFrame(f) === ATTACH_MARKER))) {
    if (Date.now() > deadline) throw new Error("a client never received the attach marker");
    cansend(IFACE, ATTACH_MARKER);
    await Bun.sleep(100);
  }
}

export async function until(cond: () => boolean, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await Bun.sleep(10);
  }
}

export interface Recorder {
  readonly listener: RecordingListener;
  readonly frames: CanFrame[];
  readonly states: { up: boolean; reason: string }[];
}

export function recorder(): Recorder {
  const listener = recordingListener();
  return { frames: listener.frames, states: listener.states, listener };
}

export interface TestBackend {
  readonly backend: SocketCanBackend;
  readonly stats: Stats;
  readonly lines: string[];
  /** The log lines so far, parsed. */
  events(): { msg: string; level: string; [k: string]: unknown }[];
}

/** The SocketCanBackends one test file opens; call stopAll() from afterEach. */
export class TestBackends {
  private readonly open: SocketCanBackend[] = [];

  /** A backend on IFACE (unless overridden) with fast reconnects, fresh Stats and a debug memory log; not started. */
  readonly create = (overrides: Partial<SocketCanBackendOptions> = {}): TestBackend => {
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const backend = new SocketCanBackend({
      iface: IFACE,
      fd: false,
      stats,
      log,
      reconnect: { initialMs: 20, maxMs: 200, factor: 2 },
      ...overrides,
    });
    this.open.push(backend);
    const events = () => lines.map((l) => JSON.parse(l) as { msg: string; level: string; [k: string]: unknown });
    return { backend, stats, lines, events };
  };

  async stopAll(): Promise<void> {
    await Promise.all(this.open.splice(0).map((b) => b.stop()));
  }
}

/** A frame the tests use to learn that candump is listening; filtered out of results. */
const SENTINEL = "7FE#5E";

/** `candump -L` on an interface, its output parsed into frames. */
export class Candump {
  private text = "";
  private constructor(private readonly proc: Subprocess<"ignore", "pipe", "ignore">) {}

  /** Starts candump and returns once it demonstrably receives (a sentinel frame came through). */
  static async start(iface: string): Promise<Candump> {
    const proc = Bun.spawn(["candump", "-L", iface], { stdout: "pipe", stderr: "ignore" });
    const dump = new Candump(proc);
    void dump.collect();
    const deadline = Date.now() + 10_000;
    while (!dump.text.includes(SENTINEL)) {
      if (Date.now() > deadline) {
        dump.stop();
        throw new Error("candump did not start");
      }
      cansend(iface, SENTINEL);
      await Bun.sleep(100);
    }
    return dump;
  }

  private async collect(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.proc.stdout) this.text += decoder.decode(chunk, { stream: true });
  }

  /** Frames seen so far (candump text, `(time) iface FRAME` lines), sentinels removed. */
  frames(): CanFrame[] {
    const out: CanFrame[] = [];
    for (const line of this.text.split("\n")) {
      const text = line.trim().split(" ")[2];
      if (text === undefined || text === SENTINEL) continue;
      out.push(parseFrame(text));
    }
    return out;
  }

  async waitFrames(n: number, timeoutMs = 10_000): Promise<CanFrame[]> {
    await until(() => this.frames().length >= n, () => `${n} frames in candump (have ${this.frames().length})`, timeoutMs);
    return this.frames();
  }

  stop(): void {
    this.proc.kill();
  }
}
