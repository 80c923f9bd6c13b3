/**
 * can-server against near-limit reference forwarders, side by side in one run, over the serial
 * path: a writer process feeds Ampio adapter frames (each stamped with its write time) into one
 * end of a socat pty pair at the Ampio bus maximum (382 frames/s); the forwarder under test reads
 * the other end and sends cannelloni to N clients in this process, which timestamp each receipt.
 * Forwarders (each its own process, started afresh per measurement):
 *   - C reference   scripts/bench/ref-forwarder.c: one epoll loop, the floor of the machine;
 *   - Bun reference scripts/bench/ref-forwarder.ts: one read loop on the same runtime and the
 *                   same pty reader as SerialBackend, no hub: Bun's floor for this path;
 *   - can-server    `bun src/main.ts -backend serial` (the whole program, as shipped);
 *   - extra variants given with --also LABEL=DIR (can-server from another checkout, e.g. the
 *     commit before a change) or --smol (can-server under `bun --smol`).
 * Every round runs every forwarder at every client count, in a rotating order; the table gives
 * medians over the rounds and can-server's p50/p99 as ratios to each reference. Every load loop
 * is bounded in count and time; traffic is loopback only.
 *
 *   bun scripts/bench/serial-ref.ts [--rounds 3] [--count 1000] [--warmup 3000] [--clients 1,10,50] [--write]
 *                                   [--also before=/tmp/before] [--smol] [--json]
 */
import path from "node:path";
import { createPtyPair, waitFor } from "../../test/helpers/pty.ts";
import type { CannelloniTestClient } from "../../test/helpers/cannelloni-client.ts";
import { cReference, launchCanServer, launchPortPrinter, MAIN, type Launched } from "./launch.ts";
import { connectStampedClients, percentile, sentAt } from "./measure.ts";
import { median, procCpuTicks, procMemory, CLK_TCK } from "./proc.ts";
import { f2, f3, machineLoad, measuredLine, writeSection } from "./report.ts";
import { arg } from "./args.ts";

const ROOT = path.resolve(import.meta.dir, "../..");
const BENCH_SERIAL = path.join(ROOT, "scripts/bench-serial.ts");

const ROUNDS = Number(arg("--rounds", "3"));
const COUNT = Number(arg("--count", "1000"));
const RATE = Number(arg("--rate", "382"));
const CLIENTS = arg("--clients", "1,10,50").split(",").map(Number);
// Frames sent at the measured rate (and thrown away) before each measurement, so every forwarder
// runs optimised code, as a gateway that has been up for a while does. JavaScriptCore tiers a
// function up to its optimising JITs by how often it ran: at 382 frames/s can-server's per-frame
// functions were still being compiled (BUN_JSC_reportCompileTimes) after 400 frames, and the
// measured p50 carried ~70 µs of unoptimised code; after ~3,000 frames they have been.
const WARMUP = Number(arg("--warmup", "3000"));

export interface Forwarder {
  readonly label: string;
  start(device: string): Promise<Launched>;
}

const canServerArgs = (device: string): string[] => ["-backend", "serial", "-serial", device, "-listen", "127.0.0.1:0", "-log-level", "info"];

function forwarders(): Forwarder[] {
  const list: Forwarder[] = [];
  const c = cReference();
  if (c) list.push({ label: "C reference", start: (d) => launchPortPrinter([c, d]) });
  // --gc-log: JavaScriptCore logs every collection with its pause (BUN_JSC_logGC), counted per run.
  const env = process.argv.includes("--gc-log") ? { BUN_JSC_logGC: "1" } : undefined;
  list.push({ label: "Bun reference", start: (d) => launchPortPrinter([process.execPath, path.join(ROOT, "scripts/bench/ref-forwarder.ts"), d], env) });
  list.push({ label: "can-server", start: (d) => launchCanServer(canServerArgs(d), { env }) });
  if (process.argv.includes("--smol")) list.push({ label: "can-server --smol", start: (d) => launchCanServer(canServerArgs(d), { runner: [process.execPath, "--smol", MAIN] }) });
  for (let i = 0; i < process.argv.length; i++) {
    if (process.argv[i] !== "--also") continue;
    const [label, dir] = process.argv[i + 1]!.split("=");
    list.push({ label: label!, start: (d) => launchCanServer(canServerArgs(d), { env, runner: [process.execPath, path.join(dir!, "src/main.ts")] }) });
  }
  return list;
}

export interface Sample {
  label: string;
  clients: number;
  delivered: number;
  expected: number;
  inOrder: boolean;
  p50: number;
  p99: number;
  max: number;
  anonKiB: number;
  fileKiB: number;
  cpuPercent: number;
  /** With --gc-log: collections during the run, their summed and longest pause (ms). */
  gcCount: number;
  gcPauseMs: number;
  gcMaxMs: number;
}

/** Pauses of the JSC collections logged (BUN_JSC_logGC) in lines[from..]. */
function gcPauses(lines: readonly string[], from: number): number[] {
  const out: number[] = [];
  for (let i = from; i < lines.length; i++) {
    const m = / p=([\d.]+)ms/.exec(lines[i]!);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

async function measureOne(fw: Forwarder, nClients: number): Promise<Sample> {
  const pair = await createPtyPair("bench-ref");
  let impl: Launched | null = null;
  let clients: CannelloniTestClient[] = [];
  try {
    impl = await fw.start(pair.deviceA);
    clients = await connectStampedClients(impl.ports.cannelloni!, nClients);
    if (WARMUP > 0) {
      const warm = Bun.spawn([process.execPath, BENCH_SERIAL, "--writer", pair.deviceB, String(RATE), String(WARMUP)], { stdout: "inherit", stderr: "inherit" });
      await warm.exited;
      await waitFor(() => clients.every((c) => c.frames.length >= WARMUP), 20_000, "warm-up frames").catch(() => undefined);
      for (const c of clients) {
        c.frames.length = 0;
        c.receipts.length = 0;
      }
    }
    const log0 = impl.log.length;
    const cpu0 = procCpuTicks(impl.pid);
    const t0 = performance.now();
    const writer = Bun.spawn([process.execPath, BENCH_SERIAL, "--writer", pair.deviceB, String(RATE), String(COUNT)], { stdout: "inherit", stderr: "inherit" });
    const want = COUNT * nClients;
    const total = (): number => clients.reduce((n, c) => n + c.frames.length, 0);
    await waitFor(() => total() >= want, (COUNT / RATE) * 1000 + 20_000, `${want} frames`).catch(() => undefined);
    await writer.exited;
    const wall = performance.now() - t0;
    const cpu = procCpuTicks(impl.pid) - cpu0;
    const mem = procMemory(impl.pid);
    const lat: number[] = [];
    let inOrder = true;
    for (const c of clients) {
      c.frames.forEach((f, i) => {
        if ((f.canId & 0x1fffffff) !== i) inOrder = false;
        lat.push(c.receipts[i]! - sentAt(f.data));
      });
    }
    const sorted = Float64Array.from(lat).sort();
    const gc = gcPauses(impl.log, log0);
    const gcDump = process.env.BENCH_GC_DUMP;
    if (gcDump && gc.length) await Bun.write(`${gcDump}-${fw.label.replace(/\W+/g, "_")}-${nClients}.log`, impl.log.slice(log0).filter((l) => l.includes("GC")).join("\n"));
    return {
      label: fw.label,
      clients: nClients,
      delivered: total(),
      expected: want,
      inOrder,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      anonKiB: mem.anonKiB,
      fileKiB: mem.fileKiB,
      cpuPercent: ((cpu / CLK_TCK) * 1000 * 100) / wall,
      gcCount: gc.length,
      gcPauseMs: gc.reduce((a, b) => a + b, 0),
      gcMaxMs: gc.length ? Math.max(...gc) : 0,
    };
  } finally {
    for (const c of clients) c.close();
    await impl?.stop();
    await pair.close();
  }
}

export async function runSerialRef(): Promise<{ samples: Sample[]; labels: string[]; load: string }> {
  const load = machineLoad();
  const fws = forwarders();
  const samples: Sample[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const n of CLIENTS) {
      // Rotate the order each round so no forwarder always runs first (or after the heaviest).
      for (let k = 0; k < fws.length; k++) {
        const fw = fws[(k + round) % fws.length]!;
        const s = await measureOne(fw, n);
        samples.push(s);
        console.error(
          `round ${round + 1}/${ROUNDS} ${fw.label.padEnd(20)} clients=${String(n).padStart(3)} ${s.delivered}/${s.expected}${s.inOrder ? "" : " OUT OF ORDER"} ` +
            `p50=${f3(s.p50)} p99=${f3(s.p99)} max=${f3(s.max)} ms anon=${(s.anonKiB / 1024).toFixed(1)} MiB cpu=${s.cpuPercent.toFixed(1)}%${s.gcCount ? ` gc=${s.gcCount} (${f3(s.gcPauseMs)} ms, max ${f3(s.gcMaxMs)})` : ""}`,
        );
      }
    }
  }
  return { samples, labels: fws.map((f) => f.label), load };
}

export function serialRefTable(samples: readonly Sample[], labels: readonly string[]): string {
  const ref = labels.includes("C reference") ? "C reference" : "Bun reference";
  const rows = [
    `| forwarder | clients | delivered / expected | p50 ms | p99 ms | max ms | p50 ÷ C ref | p99 ÷ C ref | p50 ÷ Bun ref | p99 ÷ Bun ref | RssAnon MiB | RssFile MiB | CPU % |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  const clientsList = [...new Set(samples.map((s) => s.clients))];
  for (const n of clientsList) {
    const med = (label: string, key: "p50" | "p99" | "max" | "anonKiB" | "fileKiB" | "cpuPercent"): number =>
      median(samples.filter((s) => s.label === label && s.clients === n).map((s) => s[key]));
    const refC = { p50: med("C reference", "p50"), p99: med("C reference", "p99") };
    const refB = { p50: med("Bun reference", "p50"), p99: med("Bun reference", "p99") };
    for (const label of labels) {
      const mine = samples.filter((s) => s.label === label && s.clients === n);
      const delivered = mine.reduce((a, s) => a + s.delivered, 0);
      const expected = mine.reduce((a, s) => a + s.expected, 0);
      const p50 = med(label, "p50");
      const p99 = med(label, "p99");
      const ratio = (a: number, b: number): string => (label === ref && b === a ? "1" : Number.isFinite(a / b) ? (a / b).toFixed(2) : "-");
      rows.push(
        `| ${label} | ${n} | ${delivered} / ${expected}${mine.every((s) => s.inOrder) ? "" : " (out of order)"} | ${f3(p50)} | ${f3(p99)} | ${f2(med(label, "max"))} | ${ratio(p50, refC.p50)} | ${ratio(p99, refC.p99)} | ${ratio(p50, refB.p50)} | ${ratio(p99, refB.p99)} | ${(med(label, "anonKiB") / 1024).toFixed(1)} | ${(med(label, "fileKiB") / 1024).toFixed(1)} | ${med(label, "cpuPercent").toFixed(1)} |`,
      );
    }
  }
  return rows.join("\n");
}

export function serialRefSection(samples: readonly Sample[], labels: readonly string[], load: string, command: string): string {
  return [
    "## Serial path against near-limit references (pty → cannelloni clients)",
    "",
    `${measuredLine(load)} Command: \`${command}\`.`,
    `${RATE} frames/s (Ampio 50 kbit/s maximum), ${COUNT} frames per measurement after ${WARMUP} warm-up frames at the same rate (not`,
    `measured: until the JIT has optimised the per-frame code); medians over ${ROUNDS} rounds, each round running every`,
    "forwarder at every client count in a rotating order. Latency = byte written on the pty → frame received by the client",
    "(clients share the bench process). The C reference is one epoll loop (scripts/bench/ref-forwarder.c); the Bun reference",
    "is one read loop on the same runtime and pty reader, no hub (scripts/bench/ref-forwarder.ts). Memory of the forwarder",
    "process at the end of the run: RssAnon (private) and RssFile (mapped binary and libraries) apart.",
    "",
    serialRefTable(samples, labels),
  ].join("\n");
}

if (import.meta.main) {
  const { samples, labels, load } = await runSerialRef();
  const command = `bun scripts/bench/serial-ref.ts ${process.argv.slice(2).filter((a) => a !== "--write" && a !== "--json").join(" ")}`.trim();
  if (process.argv.includes("--json")) console.log(JSON.stringify({ samples, labels, load }));
  else console.log(serialRefSection(samples, labels, load, command));
  if (process.argv.includes("--write")) await writeSection("serial-ref", serialRefSection(samples, labels, load, command));
  process.exit(0);
}
