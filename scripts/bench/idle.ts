/**
 * Idle cost and footprint of a running gateway: start-up time (spawn → `ready` log line, median
 * of 5), private memory (RssAnon) and mapped-file memory (RssFile) apart, and, with 0/10/100
 * connected idle cannelloni clients, CPU over a quiet window and what wakes the process (context
 * switches per thread, from /proc/PID/task/*; with --strace also the syscalls of `strace -f -c`).
 * Variants: can-server from this checkout (`bun src/main.ts`), the compiled binary with --binary
 * PATH, and other checkouts with --also LABEL=DIR (e.g. the commit before a change), all in one
 * run. Virtual bus without demo traffic, loopback only; every wait is bounded.
 *
 *   bun scripts/bench/idle.ts [--window 10] [--binary dist/can-server-linux-x64/can-server]
 *                             [--also before=/tmp/before] [--strace] [--write]
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { CannelloniTestClient } from "../../test/helpers/cannelloni-client.ts";
import { launchCanServer, MAIN, type Launched } from "./launch.ts";
import { CLK_TCK, median, procCpuTicks, procMemory } from "./proc.ts";
import { f2, machineLoad, measuredLine, writeSection } from "./report.ts";
import { arg } from "./args.ts";

const WINDOW_S = Number(arg("--window", "10"));
const CLIENTS = arg("--clients", "0,10,100").split(",").map(Number);
const STARTS = 5;

interface Variant {
  label: string;
  runner: string[];
}

function variants(): Variant[] {
  const list: Variant[] = [{ label: "bun src/main.ts", runner: [process.execPath, MAIN] }];
  for (let i = 0; i < process.argv.length; i++) {
    if (process.argv[i] === "--also") {
      const [label, dir] = process.argv[i + 1]!.split("=");
      list.push({ label: label!, runner: [process.execPath, path.join(dir!, "src/main.ts")] });
    }
    if (process.argv[i] === "--binary") list.push({ label: "compiled binary", runner: [process.argv[i + 1]!] });
  }
  return list;
}

/** Context switches per thread name (summed over threads of the same name). */
function wakeupsByThread(pid: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, "utf8").trim();
      const s = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      const n = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0) + Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0);
      m.set(comm, (m.get(comm) ?? 0) + n);
    } catch {
      // thread ended
    }
  }
  return m;
}

export interface IdleRow {
  label: string;
  clients: number;
  cpuPercent: number;
  wakeupsPerSec: number;
  byThread: string;
  anonKiB: number;
  fileKiB: number;
  strace: string;
}

async function straceSummary(pid: number, seconds: number): Promise<string> {
  if (!Bun.which("strace")) return "";
  const p = Bun.spawn(["timeout", "-s", "INT", String(seconds), "strace", "-f", "-c", "-p", String(pid)], { stdout: "pipe", stderr: "pipe" });
  const text = await new Response(p.stderr).text();
  await p.exited;
  const rows = text.split("\n").filter((l) => /^\s*\d+\.\d+\s/.test(l));
  return rows
    .map((l) => l.trim().split(/\s+/))
    .map((f) => `${f[f.length - 1]} ${f[3]}`)
    .slice(0, 4)
    .join(", ");
}

async function idleRow(v: Variant, n: number): Promise<IdleRow> {
  const gw = await launchCanServer(["-backend", "virtual", "-listen", "127.0.0.1:0", "-max-handshakes", "0"], { runner: v.runner });
  const clients: CannelloniTestClient[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const c = await CannelloniTestClient.connect(gw.ports.cannelloni!, { helloFirst: true });
      await c.handshake({ helloFirst: true });
      clients.push(c);
    }
    await Bun.sleep(1000);
    const w0 = wakeupsByThread(gw.pid);
    const c0 = procCpuTicks(gw.pid);
    await Bun.sleep(WINDOW_S * 1000);
    const c1 = procCpuTicks(gw.pid);
    const w1 = wakeupsByThread(gw.pid);
    const mem = procMemory(gw.pid);
    const per: [string, number][] = [];
    let total = 0;
    for (const [name, after] of w1) {
      const d = (after - (w0.get(name) ?? 0)) / WINDOW_S;
      total += d;
      if (d >= 0.1) per.push([name, d]);
    }
    per.sort((a, b) => b[1] - a[1]);
    const strace = process.argv.includes("--strace") ? await straceSummary(gw.pid, 5) : "";
    return {
      label: v.label,
      clients: n,
      cpuPercent: ((c1 - c0) / CLK_TCK / WINDOW_S) * 100,
      wakeupsPerSec: total,
      byThread: per.map(([k, d]) => `${k} ${d.toFixed(1)}`).join(", "),
      anonKiB: mem.anonKiB,
      fileKiB: mem.fileKiB,
      strace,
    };
  } finally {
    for (const c of clients) c.close();
    await gw.stop();
  }
}

async function startup(v: Variant): Promise<{ readyMs: number; anonKiB: number; fileKiB: number }> {
  const times: number[] = [];
  const anon: number[] = [];
  const file: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const t0 = performance.now();
    const gw: Launched = await launchCanServer(["-backend", "virtual", "-listen", "127.0.0.1:0"], { runner: v.runner });
    times.push(performance.now() - t0);
    await Bun.sleep(500);
    const m = procMemory(gw.pid);
    anon.push(m.anonKiB);
    file.push(m.fileKiB);
    await gw.stop();
  }
  return { readyMs: median(times), anonKiB: median(anon), fileKiB: median(file) };
}

if (import.meta.main) {
  const load = machineLoad();
  const vs = variants();
  const start: string[] = [];
  for (const v of vs) {
    const s = await startup(v);
    console.error(`${v.label}: ready in ${s.readyMs.toFixed(0)} ms, RssAnon ${(s.anonKiB / 1024).toFixed(1)} MiB, RssFile ${(s.fileKiB / 1024).toFixed(1)} MiB`);
    start.push(`| ${v.label} | ${s.readyMs.toFixed(0)} | ${(s.anonKiB / 1024).toFixed(1)} | ${(s.fileKiB / 1024).toFixed(1)} |`);
  }
  const rows: IdleRow[] = [];
  for (const n of CLIENTS) {
    for (const v of vs) {
      const r = await idleRow(v, n);
      rows.push(r);
      console.error(`${v.label} clients=${n}: cpu ${f2(r.cpuPercent)}% wakeups/s ${r.wakeupsPerSec.toFixed(1)} [${r.byThread}] anon ${(r.anonKiB / 1024).toFixed(1)} MiB ${r.strace}`);
    }
  }
  const section = [
    "## Idle cost and start-up footprint",
    "",
    `${measuredLine(load)} Command: \`bun scripts/bench/idle.ts ${process.argv.slice(2).filter((a) => a !== "--write").join(" ")}\`.`,
    `Virtual bus, no traffic. Start-up = spawn → \`ready\` log line, median of ${STARTS}; memory 0.5 s after ready. Idle = ${WINDOW_S} s window`,
    "starting 1 s after the clients connected; wake-ups = context switches of all the process's threads per second",
    "(/proc/PID/task/*/status), listed per thread name; `bun` is the event-loop thread.",
    "",
    "| variant | spawn → ready ms | RssAnon MiB | RssFile MiB |",
    "|---|---:|---:|---:|",
    ...start,
    "",
    `| variant | idle clients | CPU % | wake-ups/s | by thread (/s) | RssAnon MiB | RssFile MiB |${process.argv.includes("--strace") ? " strace -f -c (calls in 5 s) |" : ""}`,
    `|---|---:|---:|---:|---|---:|---:|${process.argv.includes("--strace") ? "---|" : ""}`,
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.clients} | ${f2(r.cpuPercent)} | ${r.wakeupsPerSec.toFixed(1)} | ${r.byThread} | ${(r.anonKiB / 1024).toFixed(1)} | ${(r.fileKiB / 1024).toFixed(1)} |${process.argv.includes("--strace") ? ` ${r.strace} |` : ""}`,
    ),
  ].join("\n");
  console.log(section);
  if (process.argv.includes("--write")) await writeSection("idle", section);
  process.exit(0);
}
