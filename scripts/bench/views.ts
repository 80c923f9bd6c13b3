/**
 * `npm run bench` section "views": what the dashboard, a capture stream and the recorder cost.
 * A saturated 1 Mbit/s bus (9,000 frames/s of 8-byte standard frames) with 10 cannelloni
 * clients, measured side by side in one run: nothing else; a dashboard (a WebSocket client
 * reading the tail, status and per-id messages, as the page does); a /capture.pcap reader; the
 * recorder writing to a temporary directory; all three. Gateway CPU and RSS, and the cannelloni
 * clients' p50/p99 latency (injection → receipt). Standalone: `bun scripts/bench/views.ts [--quick]`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LineReader } from "./line-reader.ts";
import { connectStampedClients, percentile, sentAt } from "./measure.ts";

const RATE = 9_000;
const CLIENTS = 10;

interface ViewRow {
  name: string;
  delivered: number;
  expected: number;
  p50: number;
  p99: number;
  cpuPercent: number;
  rssMiB: number;
  viewFrames: string;
}

async function measure(name: string, count: number, opts: { dashboard: boolean; capture: boolean; record: boolean }): Promise<ViewRow> {
  const dir = opts.record ? mkdtempSync(join(tmpdir(), "bench-record-")) : "";
  const proc = Bun.spawn(["bun", "scripts/bench/views-proc.ts", ...(opts.record ? ["--record", dir] : [])], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const lines = new LineReader(proc.stdout.getReader());
  let ws: WebSocket | null = null;
  let abort: AbortController | null = null;
  try {
    const [, port, , http] = (await lines.next()).split(" ");
    const clients = await connectStampedClients(Number(port), CLIENTS);
    let wsMessages = 0;
    if (opts.dashboard) {
      ws = new WebSocket(`ws://127.0.0.1:${http}/ws`);
      ws.onmessage = () => wsMessages++;
      await new Promise<void>((r) => (ws!.onopen = () => r()));
    }
    let pcapBytes = 0;
    if (opts.capture) {
      abort = new AbortController();
      const res = await fetch(`http://127.0.0.1:${http}/capture.pcap`, { signal: abort.signal });
      const reader = res.body!.getReader();
      void (async () => {
        for (;;) {
          const r = await reader.read().catch(() => ({ done: true, value: undefined }));
          if (r.done) return;
          pcapBytes += r.value?.length ?? 0;
        }
      })();
    }
    await Bun.sleep(300);
    proc.stdin.write(`run ${RATE} ${count}\n`);
    proc.stdin.flush();
    await lines.next(180_000);
    const want = count * CLIENTS;
    const deadline = Date.now() + 30_000;
    while (clients.reduce((s, c) => s + c.frames.length, 0) < want && Date.now() < deadline) await Bun.sleep(2);
    await Bun.sleep(300); // let the views flush
    proc.stdin.write("stats\n");
    proc.stdin.flush();
    const st = JSON.parse(await lines.next()) as { rssBytes: number; cpuPercent: number; consumers: Record<string, { frames: number; dropped: number }> };
    for (const c of clients) c.close();
    const lat: number[] = [];
    for (const c of clients) c.frames.forEach((f, i) => lat.push(c.receipts[i]! - sentAt(f.data)));
    const sorted = Float64Array.from(lat).sort();
    const parts: string[] = [];
    if (opts.dashboard) parts.push(`web ${st.consumers.web!.frames} shown (${wsMessages} msgs)`);
    if (opts.capture) parts.push(`pcap ${st.consumers.pcap!.frames} (${(pcapBytes / 1e6).toFixed(1)} MB), dropped ${st.consumers.pcap!.dropped}`);
    if (opts.record) parts.push(`recorded ${st.consumers.recorder!.frames}, dropped ${st.consumers.recorder!.dropped}`);
    return { name, delivered: lat.length, expected: want, p50: percentile(sorted, 50), p99: percentile(sorted, 99), cpuPercent: st.cpuPercent, rssMiB: st.rssBytes / 1048576, viewFrames: parts.join("; ") || "—" };
  } finally {
    ws?.close();
    abort?.abort();
    proc.stdin.end();
    const exited = await Promise.race([proc.exited, Bun.sleep(3000).then(() => null)]);
    if (exited === null) proc.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchViews(o: { quick: boolean; machine: string; today: string }): Promise<string> {
  const count = o.quick ? 9_000 : 45_000;
  const rows: ViewRow[] = [];
  for (const [name, opts] of [
    ["10 clients only", { dashboard: false, capture: false, record: false }],
    ["+ dashboard (1 browser)", { dashboard: true, capture: false, record: false }],
    ["+ capture stream", { dashboard: false, capture: true, record: false }],
    ["+ recorder", { dashboard: false, capture: false, record: true }],
    ["+ all three", { dashboard: true, capture: true, record: true }],
  ] as const) {
    const r = await measure(name, count, opts);
    console.log(`${name.padEnd(26)} delivered=${r.delivered}/${r.expected} p50=${r.p50.toFixed(3)}ms p99=${r.p99.toFixed(3)}ms cpu=${r.cpuPercent.toFixed(0)}% rss=${r.rssMiB.toFixed(1)}MiB ${r.viewFrames}`);
    rows.push(r);
  }
  return [
    "## Bus views: dashboard, capture, recorder (1 Mbit/s saturated, 10 cannelloni clients)",
    "",
    `Measured ${o.today} on ${o.machine}. Command: \`npm run bench${o.quick ? " -- --quick" : ""}\` (or \`bun scripts/bench/views.ts\`).`,
    `${RATE.toLocaleString("en-US")} frames/s of 8-byte standard frames for ${count / RATE} s into the virtual bus of a gateway process with the`,
    "operations endpoint on; 10 cannelloni clients, the WebSocket reader and the pcap reader share the bench process. The dashboard",
    "samples its tail at 2,000 frames/s per browser (the per-id table counts every frame). CPU and RSS are the gateway process's.",
    "",
    "| configuration | delivered / expected | p50 ms | p99 ms | gateway CPU % | gateway RSS MiB | views |",
    "|---|---:|---:|---:|---:|---:|---|",
    ...rows.map((r) => `| ${r.name} | ${r.delivered} / ${r.expected} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.cpuPercent.toFixed(0)} | ${r.rssMiB.toFixed(1)} | ${r.viewFrames} |`),
  ].join("\n");
}

if (import.meta.main) {
  const { arch, cpus, platform, totalmem } = await import("node:os");
  const machine = `${platform()}/${arch()}, ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Bun ${Bun.version}`;
  console.log(await benchViews({ quick: process.argv.includes("--quick"), machine, today: new Date().toISOString().slice(0, 10) }));
  process.exit(0);
}
