/**
 * Serial backend benchmark: a socat pty pair plays the Ampio adapter, a writer process feeds it
 * adapter→host frames (dlc 8, extended ids = sequence numbers, data = the write time as a float64
 * little-endian epoch-ms stamp). Two measurements, scenarios the Ampio bus maximum (~382
 * frames/s, 50 kbit/s extended 8-byte frames, spec §8) and flat out:
 * - backend: this process runs the real SerialBackend; latency = bytes written on the pty →
 *   frame delivered to the backend listener; CPU, RssAnon and RssFile are this process's.
 * - fan-out: a gateway process (this script in `--gateway` mode) runs SerialBackend + hub +
 *   cannelloni listener; 1/10/100 cannelloni clients in this process; latency = bytes written on
 *   the pty → frame received by the client; CPU, RssAnon and RssFile are the gateway process's.
 * Every loop is bounded in count and time.
 *
 *   bun scripts/bench-serial.ts            # full counts
 *   bun scripts/bench-serial.ts --quick    # smoke run
 *   bun scripts/bench-serial.ts --json     # rows as JSON
 *
 * `runSerialBench`, `runSerialFanout` and the table formatters are exported for scripts/bench.ts
 * to fold into `npm run bench` and BENCHMARKS.md.
 */
import fs from "node:fs";
import { SerialBackend } from "../src/backends/serial/serial-backend.ts";
import { defaultConfig } from "../src/cli/parse.ts";
import { startGateway } from "../src/gateway.ts";
import { createLogger, silentLogger } from "../src/ops/log.ts";
import { Stats } from "../src/ops/stats.ts";
import { encodeAmpioRx } from "../src/protocols/ampio-serial/codec.ts";
import { CannelloniTestClient } from "../test/helpers/cannelloni-client.ts";
import { createPtyPair, openPeer, waitFor, writeAll } from "../test/helpers/pty.ts";
import { LineReader } from "./bench/line-reader.ts";
import { procMemory } from "./bench/proc.ts";
import { connectStampedClients, nowMs, percentile, sentAt, stampSendTime } from "./bench/measure.ts";

export interface SerialBenchRow {
  scenario: string;
  rate: number; // frames/s offered, 0 = flat out
  expected: number;
  delivered: number;
  inOrder: boolean;
  framesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  malformed: number;
  /** RssAnon (private memory), MiB. */
  anonMiB: number;
  /** RssFile (mapped binary and libraries), MiB. */
  fileMiB: number;
  cpuPercent: number;
}

interface Scenario {
  name: string;
  rate: number;
  count: number;
}


/** Writer process: frame i has id i and its write time in the data; paced or flat out. */
async function writer(device: string, rate: number, count: number): Promise<void> {
  const fd = openPeer(device);
  const data = new Uint8Array(8);
  const start = nowMs();
  const batch = rate === 0 ? 64 : 1; // flat out: 64 frames (1 KiB) per write
  const buf = new Uint8Array(16 * batch);
  for (let i = 0; i < count; ) {
    if (rate > 0) {
      const due = start + (i * 1000) / rate;
      const wait = due - nowMs();
      if (wait > 0) await Bun.sleep(wait);
    }
    const n = Math.min(batch, count - i);
    const t = nowMs();
    for (let k = 0; k < n; k++) {
      stampSendTime(data, t);
      buf.set(encodeAmpioRx(i + k, data), 16 * k);
    }
    await writeAll(fd, buf.subarray(0, 16 * n), 30_000);
    i += n;
  }
  fs.closeSync(fd);
}

async function measure(sc: Scenario): Promise<SerialBenchRow> {
  const pair = await createPtyPair("bench-serial");
  const stats = new Stats();
  const latencies = new Float64Array(sc.count);
  let delivered = 0;
  let inOrder = true;
  let first = 0;
  let last = 0;
  const backend = new SerialBackend({ path: pair.deviceA, baud: 115200, stats, log: silentLogger });
  try {
    await backend.start({
      frame: (f) => {
        const t = nowMs();
        if (delivered === 0) first = t;
        last = t;
        if ((f.canId & 0x1fffffff) !== delivered) inOrder = false;
        const sent = sentAt(f.data);
        if (delivered < latencies.length) latencies[delivered] = t - sent;
        delivered++;
      },
      state: () => {},
      txReady: () => {},
    });
    if (!backend.up) throw new Error(`serial backend did not open ${pair.deviceA}: ${backend.downReason}`);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const proc = Bun.spawn([process.execPath, import.meta.path, "--writer", pair.deviceB, String(sc.rate), String(sc.count)], {
      stdout: "inherit",
      stderr: "inherit",
    });
    const budgetMs = (sc.rate > 0 ? (sc.count / sc.rate) * 1000 : 0) + 30_000;
    await waitFor(() => delivered >= sc.count, budgetMs, `${sc.count} frames (have ${delivered})`).catch(() => undefined);
    await proc.exited;
    await Bun.sleep(50);
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const mem = procMemory(process.pid);
    const sorted = latencies.slice(0, Math.min(delivered, sc.count)).sort();
    return {
      scenario: sc.name,
      rate: sc.rate,
      expected: sc.count,
      delivered,
      inOrder,
      framesPerSec: delivered > 1 ? Math.round(((delivered - 1) * 1000) / (last - first)) : 0,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
      malformed: stats.malformedFrames,
      anonMiB: mem.anonKiB / 1024,
      fileMiB: mem.fileKiB / 1024,
      cpuPercent: Math.round(((cpu.user + cpu.system) / 1000 / wallMs) * 100),
    };
  } finally {
    await backend.stop();
    await pair.close();
  }
}

export async function runSerialBench(options: { quick?: boolean } = {}): Promise<SerialBenchRow[]> {
  const quick = options.quick ?? false;
  const scenarios: Scenario[] = [
    { name: "382 f/s (Ampio 50 kbit/s max)", rate: 382, count: quick ? 400 : 2_000 },
    { name: "flat out", rate: 0, count: quick ? 20_000 : 100_000 },
  ];
  const rows: SerialBenchRow[] = [];
  for (const sc of scenarios) rows.push(await measure(sc));
  return rows;
}

export function serialBenchTable(rows: readonly SerialBenchRow[]): string {
  const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : "-");
  const out = [
    "| scenario | delivered / expected | in order | delivered frames/s | p50 ms | p99 ms | max ms | malformed | RssAnon MiB | RssFile MiB | CPU % |",
    "|---|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    out.push(
      `| ${r.scenario} | ${r.delivered} / ${r.expected} | ${r.inOrder ? "yes" : "NO"} | ${r.framesPerSec.toLocaleString("en-US")} | ${f3(r.p50Ms)} | ${f3(r.p99Ms)} | ${f3(r.maxMs)} | ${r.malformed} | ${r.anonMiB.toFixed(1)} | ${r.fileMiB.toFixed(1)} | ${r.cpuPercent} |`,
    );
  }
  return out.join("\n");
}

export interface SerialFanoutRow {
  scenario: string;
  clients: number;
  expected: number;
  delivered: number;
  inOrder: boolean;
  framesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  dropped: number;
  /** The gateway process's RssAnon (private memory), MiB. */
  gatewayAnonMiB: number;
  /** The gateway process's RssFile (mapped binary and libraries), MiB. */
  gatewayFileMiB: number;
  gatewayCpuPercent: number;
}

/** Gateway process: SerialBackend on `device` behind a cannelloni listener; "stats" on stdin → JSON line. */
async function gatewayProcess(device: string, hubBuffer: number): Promise<void> {
  const stats = new Stats();
  const log = createLogger("text", "warn");
  const backend = new SerialBackend({ path: device, baud: 115200, stats, log });
  const config = { ...defaultConfig(), backend: "serial" as const, serial: device, listen: "127.0.0.1:0", hubBuffer };
  const gateway = await startGateway(config, { stats, log, backend });
  process.stdout.write(`port ${gateway.port("cannelloni")}\n`);
  let cpu0 = process.cpuUsage();
  let wall0 = performance.now();
  for await (const line of console) {
    const cmd = line.trim();
    if (cmd === "mark") {
      cpu0 = process.cpuUsage();
      wall0 = performance.now();
      process.stdout.write("ok\n");
    } else if (cmd === "stats") {
      const cpu = process.cpuUsage(cpu0);
      const wall = performance.now() - wall0;
      const mem = procMemory(process.pid);
      process.stdout.write(
        JSON.stringify({
          up: backend.up,
          rx: stats.serialRxFrames,
          dropped: stats.hubDroppedFrames,
          anonBytes: mem.anonKiB * 1024,
          fileBytes: mem.fileKiB * 1024,
          cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100,
        }) + "\n",
      );
    }
  }
  await gateway.shutdown(200);
  process.exit(0);
}


async function measureFanout(sc: Scenario, nClients: number): Promise<SerialFanoutRow> {
  const pair = await createPtyPair("bench-fanout");
  const proc = Bun.spawn([process.execPath, import.meta.path, "--gateway", pair.deviceA, "100000"], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const lines = new LineReader(proc.stdout.getReader());
  let clients: CannelloniTestClient[] = [];
  try {
    const port = Number((await lines.next()).split(" ")[1]);
    clients = await connectStampedClients(port, nClients);
    proc.stdin.write("mark\n");
    proc.stdin.flush();
    await lines.next();
    const writerProc = Bun.spawn([process.execPath, import.meta.path, "--writer", pair.deviceB, String(sc.rate), String(sc.count)], {
      stdout: "inherit",
      stderr: "inherit",
    });
    const want = sc.count * nClients;
    const budgetMs = (sc.rate > 0 ? (sc.count / sc.rate) * 1000 : 0) + 60_000;
    const total = (): number => clients.reduce((n, c) => n + c.frames.length, 0);
    await waitFor(() => total() >= want, budgetMs, `${want} frames`).catch(() => undefined);
    await writerProc.exited;
    proc.stdin.write("stats\n");
    proc.stdin.flush();
    const st = JSON.parse(await lines.next()) as { dropped: number; anonBytes: number; fileBytes: number; cpuPercent: number };
    const latencies: number[] = [];
    let inOrder = true;
    let first = Infinity;
    let last = 0;
    for (const c of clients) {
      c.frames.forEach((f, i) => {
        if ((f.canId & 0x1fffffff) !== i) inOrder = false;
        latencies.push(c.receipts[i]! - sentAt(f.data));
      });
      if (c.receipts.length) {
        first = Math.min(first, c.receipts[0]!);
        last = Math.max(last, c.receipts[c.receipts.length - 1]!);
      }
    }
    const sorted = Float64Array.from(latencies).sort();
    const delivered = total();
    return {
      scenario: sc.name,
      clients: nClients,
      expected: want,
      delivered,
      inOrder,
      framesPerSec: last > first ? Math.round(((delivered - nClients) * 1000) / (last - first)) : 0,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
      dropped: st.dropped,
      gatewayAnonMiB: st.anonBytes / (1 << 20),
      gatewayFileMiB: st.fileBytes / (1 << 20),
      gatewayCpuPercent: Math.round(st.cpuPercent),
    };
  } finally {
    for (const c of clients) c.close();
    proc.stdin.end();
    const exited = await Promise.race([proc.exited, Bun.sleep(3000).then(() => null)]);
    if (exited === null) proc.kill();
    await pair.close();
  }
}

export async function runSerialFanout(options: { quick?: boolean; clients?: readonly number[] } = {}): Promise<SerialFanoutRow[]> {
  const quick = options.quick ?? false;
  const scenarios: Scenario[] = [
    { name: "382 f/s (Ampio 50 kbit/s max)", rate: 382, count: quick ? 400 : 1_500 },
    { name: "flat out", rate: 0, count: quick ? 10_000 : 50_000 },
  ];
  const rows: SerialFanoutRow[] = [];
  for (const sc of scenarios) for (const n of options.clients ?? [1, 10, 100]) rows.push(await measureFanout(sc, n));
  return rows;
}

export function serialFanoutTable(rows: readonly SerialFanoutRow[]): string {
  const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : "-");
  const out = [
    "| scenario | clients | delivered / expected | in order | delivered frames/s | p50 ms | p99 ms | max ms | dropped | gateway RssAnon MiB | gateway RssFile MiB | gateway CPU % |",
    "|---|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    out.push(
      `| ${r.scenario} | ${r.clients} | ${r.delivered} / ${r.expected} | ${r.inOrder ? "yes" : "NO"} | ${r.framesPerSec.toLocaleString("en-US")} | ${f3(r.p50Ms)} | ${f3(r.p99Ms)} | ${f3(r.maxMs)} | ${r.dropped} | ${r.gatewayAnonMiB.toFixed(1)} | ${r.gatewayFileMiB.toFixed(1)} | ${r.gatewayCpuPercent} |`,
    );
  }
  return out.join("\n");
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  if (args[0] === "--writer") {
    await writer(args[1]!, Number(args[2]), Number(args[3]));
  } else if (args[0] === "--gateway") {
    await gatewayProcess(args[1]!, Number(args[2] ?? 100_000));
  } else {
    const quick = args.includes("--quick");
    const backendRows = await runSerialBench({ quick });
    const fanoutRows = await runSerialFanout({ quick });
    if (args.includes("--json")) console.log(JSON.stringify({ backend: backendRows, fanout: fanoutRows }, null, 2));
    else console.log(`### pty → SerialBackend\n\n${serialBenchTable(backendRows)}\n\n### pty → gateway → cannelloni clients\n\n${serialFanoutTable(fanoutRows)}`);
    process.exit(0);
  }
}
