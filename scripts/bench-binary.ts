/**
 * Measures the compiled release binaries (run scripts/build.sh first): file and package sizes,
 * start-up time (`can-server -version`, and spawn → "ready" log line on the virtual bus), idle RssAnon/RssFile
 * and idle CPU of a running gateway. Prints a Markdown section; with --write it replaces the
 * `bench:binary` section of BENCHMARKS.md. arm64 figures come from qemu-aarch64-static on this
 * machine: emulated, so only the size is a property of the binary; its times and memory say how the
 * emulator copes, not how a Raspberry Pi does.
 * Usage: bun scripts/bench-binary.ts [--write] [--runs N]
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { machineLine, today, writeSection } from "./bench/report.ts";

const write = process.argv.includes("--write");
const runsArg = process.argv.indexOf("--runs");
const RUNS = runsArg >= 0 ? Number(process.argv[runsArg + 1]) : 20;
const IDLE_MS = 10_000;
const QEMU = ["qemu-aarch64-static", "-cpu", "cortex-a53"];
const CLK_TCK = 100;

interface Target {
  arch: string;
  binary: string;
  runner: string[];
}
const targets: Target[] = [
  { arch: "x64", binary: "dist/can-server-linux-x64/can-server", runner: [] },
  { arch: "arm64 (qemu)", binary: "dist/can-server-linux-arm64/can-server", runner: QEMU },
].filter((t) => existsSync(t.binary));
if (targets.length === 0) {
  console.error("bench-binary: no binaries in dist/ (run scripts/build.sh)");
  process.exit(1);
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function timeVersion(t: Target): { median: number; min: number } {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = Bun.spawnSync([...t.runner, t.binary, "-version"], { stdout: "pipe", stderr: "pipe" });
    times.push(performance.now() - t0);
    if (r.exitCode !== 0) throw new Error(`${t.binary} -version failed: ${r.stderr.toString()}`);
  }
  return { median: median(times), min: Math.min(...times) };
}

async function idleRun(t: Target, extra: string[]): Promise<{ readyMs: number; anonKb: number; fileKb: number; cpuPct: number }> {
  const t0 = performance.now();
  const proc = Bun.spawn([...t.runner, t.binary, "-backend", "virtual", "-listen", "127.0.0.1:0", "-log-format", "json", ...extra], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  let readyMs = NaN;
  const dec = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 60_000;
  const reader = proc.stderr.getReader();
  while (Number.isNaN(readyMs) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
    if (text.includes('"msg":"ready"')) readyMs = performance.now() - t0;
  }
  void (async () => {
    for (;;) if ((await reader.read()).done) break;
  })();
  await Bun.sleep(1000);
  const ticks = async () => {
    const f = (await Bun.file(`/proc/${proc.pid}/stat`).text()).split(") ")[1]!.split(" ");
    return Number(f[11]) + Number(f[12]); // utime + stime (fields 14 and 15)
  };
  const c0 = await ticks();
  await Bun.sleep(IDLE_MS);
  const c1 = await ticks();
  const status = await Bun.file(`/proc/${proc.pid}/status`).text();
  // Private memory and mapped-file pages apart: VmRSS adds the binary's own pages to what it allocates.
  const anonKb = Number(/RssAnon:\s+(\d+) kB/.exec(status)![1]);
  const fileKb = Number(/RssFile:\s+(\d+) kB/.exec(status)![1]);
  proc.kill("SIGTERM");
  await proc.exited;
  return { readyMs, anonKb, fileKb, cpuPct: ((c1 - c0) / CLK_TCK / (IDLE_MS / 1000)) * 100 };
}

const dist = readdirSync("dist");
const artifact = (re: RegExp) => dist.filter((f) => re.test(f)).map((f) => `${f} ${mib(statSync(`dist/${f}`).size)} MiB`);
const rows: string[] = [];
for (const t of targets) {
  const v = timeVersion(t);
  const plain = await idleRun(t, []);
  const ops = await idleRun(t, ["-metrics-addr", "127.0.0.1:0"]);
  rows.push(
    `| ${t.arch} | ${mib(statSync(t.binary).size)} | ${v.median.toFixed(0)} (min ${v.min.toFixed(0)}) | ${plain.readyMs.toFixed(0)} | ${(plain.anonKb / 1024).toFixed(1)} | ${(plain.fileKb / 1024).toFixed(1)} | ${(ops.anonKb / 1024).toFixed(1)} | ${(ops.fileKb / 1024).toFixed(1)} | ${plain.cpuPct.toFixed(2)} | ${ops.cpuPct.toFixed(2)} |`,
  );
}
const version = Bun.spawnSync([targets[0]!.binary, "-version"]).stdout.toString().trim();
const section = `## Compiled binary: size, start-up, idle footprint

Measured ${today()} on ${machineLine()}; ${version}.
Command: \`bash scripts/build.sh && bun scripts/bench-binary.ts --write\`. Start-up = median of ${RUNS} runs of \`can-server -version\`
(process spawn to exit) and spawn → \`ready\` log line with \`-backend virtual\`; idle = after 1 s, RssAnon (private) and RssFile (mapped
binary and libraries) read from /proc/PID/status, CPU over ${IDLE_MS / 1000} s with no clients. "+ops" adds \`-metrics-addr\` (the HTTP endpoint; the metrics
registry is loaded only then). arm64 rows run under \`qemu-aarch64-static -cpu cortex-a53\` here: the size is the binary's, the times and memory
are the emulator's (RssAnon includes its translation cache), not a Raspberry Pi's.

| target | binary MiB | \`-version\` ms | spawn → ready ms | idle RssAnon MiB | idle RssFile MiB | idle RssAnon +ops MiB | idle RssFile +ops MiB | idle CPU % | idle CPU % +ops |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.join("\n")}

Artifacts: ${[...artifact(/\.tar\.gz$/), ...artifact(/\.deb$/)].join(", ")}. The binary is the Bun ${Bun.version} runtime (x64: baseline build,
no AVX2 needed) with the application embedded as minified ESM bytecode; it is not stripped (that would remove the application).`;

console.log(section);
if (write) {
  await writeSection("binary", section);
  console.error("bench-binary: wrote the bench:binary section of BENCHMARKS.md");
}
