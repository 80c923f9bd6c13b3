/**
 * Scale: 1000 concurrent clients (half cannelloni, half Waveshare) spread over several client
 * processes (scripts/bench/scale-client.ts), one gateway process on the virtual bus
 * (scripts/bench/gateway-proc.ts, default -hub-buffer 512 and drop policy, default
 * -max-handshakes 64: each client process keeps at most 64/P handshakes open), loopback only.
 * Measures private memory per idle client (RssAnon with 1000 idle clients minus RssAnon with
 * none), then a rate ladder from the Ampio bus maximum (382 frames/s) up to a saturated 1 Mbit/s
 * bus (7,634 frames/s with worst-case stuffing, as in the fan-out table): per step, deliveries,
 * loss (frames a client never got; hub drops), p50/p99 from injection to receipt over all
 * clients (merged histograms), the gateway's CPU and deliveries/s per gateway core. The ceiling
 * is where the gateway's core is saturated. Every step is bounded in count and time.
 *
 *   bun scripts/bench/scale.ts [--clients 1000] [--procs 4] [--seconds 3] [--rates 382,1000,2000,4000,7634] [--write]
 */
import type { Subprocess } from "bun";
import path from "node:path";
import { Histogram } from "./histogram.ts";
import { LineReader } from "./line-reader.ts";
import { CLK_TCK, procCpuTicks, procMemory } from "./proc.ts";
import { f3, int, machineLoad, measuredLine, writeSection } from "./report.ts";
import { arg } from "./args.ts";

const N = Number(arg("--clients", "1000"));
const PROCS = Number(arg("--procs", "4"));
const SECONDS = Number(arg("--seconds", "3"));
const RATES = arg("--rates", "382,1000,2000,4000,7634").split(",").map(Number);
const HUB_BUFFER = Number(arg("--hub-buffer", "512"));
const DIR = import.meta.dir;

interface Proc {
  proc: Subprocess<"pipe", "pipe", "inherit">;
  lines: LineReader;
}

function spawn(cmd: string[]): Proc {
  const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  return { proc, lines: new LineReader(proc.stdout.getReader()) };
}

async function ask(p: Proc, cmd: string, timeoutMs = 30_000): Promise<string> {
  p.proc.stdin.write(cmd + "\n");
  p.proc.stdin.flush();
  return p.lines.next(timeoutMs);
}

interface ClientStats {
  received: number;
  min: number;
  max: number;
  problems: number;
  closed: number;
  hist: number[];
}

export interface ScaleRow {
  rate: number;
  expected: number;
  delivered: number;
  lost: number;
  hubDropped: number;
  minPerClient: number;
  p50: number;
  p99: number;
  gatewayCpu: number;
  clientCpu: number;
  deliveriesPerSec: number;
  perCore: number;
}

export async function runScale(): Promise<{ rows: ScaleRow[]; idle: { anon0: number; anonN: number; file0: number; fileN: number; connectMs: number }; load: string }> {
  const load = machineLoad();
  const gw = spawn([process.execPath, path.join(DIR, "gateway-proc.ts"), String(HUB_BUFFER), "--waveshare"]);
  const clients: Proc[] = [];
  try {
    const canPort = Number((await gw.lines.next()).split(" ")[1]);
    const wsPort = Number((await gw.lines.next()).split(" ")[1]);
    await Bun.sleep(1000);
    const m0 = procMemory(gw.proc.pid);
    const t0 = performance.now();
    const per = Math.ceil(N / PROCS);
    const concurrency = Math.max(1, Math.floor(24 / PROCS));
    for (let i = 0; i < PROCS; i++) {
      const n = Math.min(per, N - i * per);
      const nCan = Math.ceil(n / 2);
      clients.push(spawn([process.execPath, path.join(DIR, "scale-client.ts"), String(canPort), String(wsPort), String(nCan), String(n - nCan), String(concurrency)]));
    }
    for (const c of clients) await c.lines.next(120_000);
    const connectMs = performance.now() - t0;
    await Bun.sleep(2000);
    const st0 = JSON.parse(await ask(gw, "stats")) as { clients: number };
    if (st0.clients !== N) console.error(`scale: ${st0.clients} of ${N} clients attached`);
    const mN = procMemory(gw.proc.pid);
    console.error(`scale: ${N} clients in ${(connectMs / 1000).toFixed(1)} s; gateway RssAnon ${(m0.anonKiB / 1024).toFixed(1)} → ${(mN.anonKiB / 1024).toFixed(1)} MiB = ${((mN.anonKiB - m0.anonKiB) / N).toFixed(1)} KiB per idle client`);

    const rows: ScaleRow[] = [];
    let prevDropped = 0;
    for (const rate of RATES) {
      const count = Math.round(rate * SECONDS);
      for (const c of clients) await ask(c, "mark");
      const g0 = procCpuTicks(gw.proc.pid);
      const c0 = clients.reduce((s, c) => s + procCpuTicks(c.proc.pid), 0);
      const t = performance.now();
      await ask(gw, `run ${rate} ${count}`, SECONDS * 1000 + 60_000);
      // Drain: until every client has every frame, or 10 s without completing.
      const want = count * N;
      let stats: ClientStats[] = [];
      const deadline = Date.now() + 10_000;
      for (;;) {
        stats = await Promise.all(clients.map(async (c) => JSON.parse(await ask(c, "stats")) as ClientStats));
        if (stats.reduce((s, x) => s + x.received, 0) >= want || Date.now() > deadline) break;
        await Bun.sleep(100);
      }
      const wall = (performance.now() - t) / 1000;
      const gCpu = ((procCpuTicks(gw.proc.pid) - g0) / CLK_TCK / wall) * 100;
      const cCpu = ((clients.reduce((s, c) => s + procCpuTicks(c.proc.pid), 0) - c0) / CLK_TCK / wall) * 100;
      const gst = JSON.parse(await ask(gw, "stats")) as { dropped: number };
      const h = new Histogram();
      for (const s of stats) h.merge(s.hist);
      const delivered = stats.reduce((s, x) => s + x.received, 0);
      const deliveriesPerSec = delivered / wall;
      const row: ScaleRow = {
        rate,
        expected: want,
        delivered,
        lost: want - delivered,
        hubDropped: gst.dropped - prevDropped,
        minPerClient: Math.min(...stats.map((s) => s.min)),
        p50: h.percentile(50),
        p99: h.percentile(99),
        gatewayCpu: gCpu,
        clientCpu: cCpu,
        deliveriesPerSec,
        perCore: deliveriesPerSec / Math.max(0.01, gCpu / 100),
      };
      prevDropped = gst.dropped;
      rows.push(row);
      const problems = stats.reduce((s, x) => s + x.problems + x.closed, 0);
      console.error(
        `scale: ${rate} f/s × ${N}: ${delivered}/${want} lost ${row.lost} (hub dropped ${row.hubDropped}) p50 ${f3(row.p50)} p99 ${f3(row.p99)} ms, ` +
          `gateway ${gCpu.toFixed(0)}% clients ${cCpu.toFixed(0)}%, ${int(deliveriesPerSec)} deliveries/s = ${int(row.perCore)} per gateway core${problems ? `, ${problems} problems/closed` : ""}`,
      );
    }
    return { rows, idle: { anon0: m0.anonKiB, anonN: mN.anonKiB, file0: m0.fileKiB, fileN: mN.fileKiB, connectMs }, load };
  } finally {
    for (const c of clients) c.proc.stdin.end();
    gw.proc.stdin.end();
    await Promise.race([Promise.all([gw.proc.exited, ...clients.map((c) => c.proc.exited)]), Bun.sleep(5000)]);
    for (const p of [gw, ...clients]) if (p.proc.exitCode === null) p.proc.kill();
  }
}

export function scaleSection(r: Awaited<ReturnType<typeof runScale>>, command: string): string {
  const { rows, idle, load } = r;
  return [
    `## Scale: ${N} clients (cannelloni + Waveshare) over ${PROCS} client processes`,
    "",
    `${measuredLine(load)} Command: \`${command}\`.`,
    `Gateway: its own process on the virtual bus (frames injected in-process, stamped at injection), default -hub-buffer ${HUB_BUFFER},`,
    `drop policy, default -max-handshakes 64 (each client process opens at most ${Math.floor(24 / PROCS)} connections at a time and reconnects when refused). Half the clients`,
    `speak cannelloni, half Waveshare (test/helpers clients). ${SECONDS} s per rate; latency = injection → receipt, merged over all`,
    "clients (log histogram, ±4 %). The client processes share the same 2 cores with the gateway: past the ceiling they, not",
    "the gateway, are often what limits delivery, which is why the per-core figure divides by the gateway's own CPU.",
    "",
    `Idle: ${N} clients connected in ${(idle.connectMs / 1000).toFixed(1)} s; gateway RssAnon ${(idle.anon0 / 1024).toFixed(1)} MiB with none → ${(idle.anonN / 1024).toFixed(1)} MiB with ${N} idle clients = **${((idle.anonN - idle.anon0) / N).toFixed(1)} KiB private memory per idle client** (RssFile ${(idle.file0 / 1024).toFixed(1)} → ${(idle.fileN / 1024).toFixed(1)} MiB).`,
    "",
    "| bus rate f/s | deliveries expected | delivered | lost | hub dropped | p50 ms | p99 ms | gateway CPU % | clients CPU % | deliveries/s | deliveries/s per gateway core |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (x) =>
        `| ${int(x.rate)} | ${int(x.expected)} | ${int(x.delivered)} | ${int(x.lost)} | ${int(x.hubDropped)} | ${f3(x.p50)} | ${f3(x.p99)} | ${x.gatewayCpu.toFixed(0)} | ${x.clientCpu.toFixed(0)} | ${int(x.deliveriesPerSec)} | ${int(x.perCore)} |`,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const r = await runScale();
  const command = `bun scripts/bench/scale.ts ${process.argv.slice(2).filter((a) => a !== "--write").join(" ")}`.trim();
  const section = scaleSection(r, command);
  console.log(section);
  if (process.argv.includes("--write")) await writeSection("scale", section);
  process.exit(0);
}
