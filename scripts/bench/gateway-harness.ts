/**
 * The gateway side every benchmark shares: a gateway on the virtual bus in its own process (so
 * its CPU and memory are its own), driven by line commands on stdin until stdin closes:
 *   run RATE COUNT   inject COUNT frames at RATE frames/s (0 = flat out), each carrying its
 *                    injection time in its first 8 data bytes (stampSendTime); answers "done"
 *   stats            print a JSON line: the caller's counters, anonBytes (RssAnon), fileBytes
 *                    (RssFile), and cpuPercent since the last `run` started
 * The scripts using it (gateway-proc.ts, protocols-gateway.ts, views-proc.ts, mqtt.ts --gateway)
 * choose the listeners, print their ports, and name what their `stats` line adds.
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { createLogger, type Logger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { stampSendTime } from "./measure.ts";
import { procMemory } from "./proc.ts";

export interface BenchRig {
  readonly stats: Stats;
  readonly log: Logger;
  readonly backend: VirtualBackend;
}

/** Stats, a warn-level text logger and a virtual backend without a file descriptor. */
export function benchRig(): BenchRig {
  const stats = new Stats();
  const log = createLogger("text", "warn");
  return { stats, log, backend: new VirtualBackend({ stats, log, fd: false }) };
}

/** The default configuration on the virtual bus with a cannelloni listener on a free loopback port. */
/**
 * The benches' gateway: a virtual bus on loopback. Their clients stand for many hosts but all
 * come from 127.0.0.1, so the per-host limits (which would refuse the 17th concurrent handshake
 * or the 65th connection of "one host") are off and the client limit is explicit (the default
 * derives 128 per core); the descriptor budget still applies.
 */
export function benchConfig(overrides: Partial<Config> = {}): Config {
  return { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", maxHostHandshakes: 0, maxHostConnections: 0, maxClients: 100_000, ...overrides };
}

/** A standard 8-byte frame stamped with the current time; ids cycle through 0x100..0x6ff. */
export function stampedFrame(seq: number): CanFrame {
  const data = new Uint8Array(8);
  stampSendTime(data);
  return dataFrame(0x100 + (seq % 0x600), data);
}

export interface DriveOptions {
  /** The frame injected as number `seq` of a run (stampedFrame by default). */
  readonly frame?: (seq: number) => CanFrame;
  /** A run stops after this long even if COUNT is not reached (120 s by default). */
  readonly maxRunMs?: number;
}

/** Injects `count` frames at `rate` frames/s (0 = flat out, 64 per turn of the event loop). */
async function run(backend: Pick<VirtualBackend, "inject">, rate: number, count: number, frame: (seq: number) => CanFrame, maxRunMs: number): Promise<void> {
  let sent = 0;
  const t0 = performance.now();
  const deadline = t0 + maxRunMs; // every load loop stops by itself
  while (sent < count && performance.now() < deadline) {
    if (rate === 0) {
      for (let i = 0; i < 64 && sent < count; i++) backend.inject(frame(sent++));
      await new Promise<void>((r) => setImmediate(r));
    } else {
      const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (sent < due) backend.inject(frame(sent++));
      await Bun.sleep(1);
    }
  }
}

/**
 * Answers `run` and `stats` lines from stdin until it closes. `counters` gives the fields the
 * `stats` line carries before anonBytes, fileBytes and cpuPercent.
 */
export async function driveFromStdin(backend: Pick<VirtualBackend, "inject">, counters: () => Record<string, unknown>, opts: DriveOptions = {}): Promise<void> {
  const frame = opts.frame ?? stampedFrame;
  const maxRunMs = opts.maxRunMs ?? 120_000;
  let cpu0 = process.cpuUsage();
  let wall0 = performance.now();
  for await (const line of console) {
    const [cmd, a, b] = line.trim().split(/\s+/);
    if (cmd === "run") {
      cpu0 = process.cpuUsage();
      wall0 = performance.now();
      await run(backend, Number(a), Number(b), frame, maxRunMs);
      process.stdout.write("done\n");
    } else if (cmd === "stats") {
      const cpu = process.cpuUsage(cpu0);
      const wall = performance.now() - wall0;
      const mem = procMemory(process.pid);
      process.stdout.write(
        JSON.stringify({ ...counters(), anonBytes: mem.anonKiB * 1024, fileBytes: mem.fileKiB * 1024, cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100 }) + "\n",
      );
    }
  }
}
