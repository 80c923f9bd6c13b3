/**
 * `npm run bench` section "dbc": what DBC decoding costs on a saturated 1 Mbit/s bus. A gateway
 * process (scripts/bench/dbc-proc.ts) gets 7,600 frames/s of 8-byte extended frames cycling
 * through the messages of canmatrix's j1939.dbc (357 messages), with 10 cannelloni clients;
 * measured side by side in one run: no DBC; the -dbc signal store with a reader decoding every
 * signal 4 times a second; and an eager decoder that decodes every frame completely. Gateway CPU
 * and RssAnon, and the clients' p50/p99 latency (injection → receipt). Then, in this process,
 * the codec's decoding cost per frame, and python3-canmatrix's decode rate on the same frames as
 * a reference. `bun scripts/bench/dbc.ts [--quick] [--write]`.
 */
import { readFileSync } from "node:fs";
import { DbcCodec, dbcText, parseDbc } from "../../src/dbc/index.ts";
import { canmatrixDecode, J1939_DBC } from "../../test/dbc/canmatrix.ts";
import { GatewayChild } from "./gateway-child.ts";
import { clearReceived, connectStampedClients, percentile, sortedLatencies, waitDelivered } from "./measure.ts";
import { machineLoad, measuredLine, writeSection } from "./report.ts";

const RATE = 7_600;
const CLIENTS = 10;
const quick = process.argv.includes("--quick");
const COUNT = quick ? 7_600 : 38_000;

interface Row {
  name: string;
  delivered: number;
  expected: number;
  p50: number;
  p99: number;
  cpuPercent: number;
  anonMiB: number;
  fileMiB: number;
  note: string;
}

async function measure(name: string, mode: string): Promise<Row> {
  const child = new GatewayChild([process.execPath, "scripts/bench/dbc-proc.ts", "--dbc", J1939_DBC, "--mode", mode]);
  try {
    const port = Number((await child.next(30_000)).split(" ")[1]);
    const clients = await connectStampedClients(port, CLIENTS);
    await Bun.sleep(300);
    // Warm-up (not measured): JSC compiles the per-frame paths first.
    await child.ask(`run ${RATE} 3000`, 60_000);
    await Bun.sleep(300);
    clearReceived(clients);
    await child.ask(`run ${RATE} ${COUNT}`, 180_000);
    const want = COUNT * CLIENTS;
    await waitDelivered(clients, want, 30_000);
    await Bun.sleep(300);
    const st = await child.stats<{ anonBytes: number; fileBytes: number; cpuPercent: number; stored: number; storeDropped: number; reads: number; decoded: number; decodedSignals: number }>();
    for (const c of clients) c.close();
    const sorted = sortedLatencies(clients);
    const note = mode === "none" ? "—" : mode === "store" ? `stored ${st.stored}, dropped ${st.storeDropped}, ${st.reads} signal values read` : `stored ${st.stored}; decoded ${st.decoded} frames, ${st.decodedSignals} signals`;
    return { name, delivered: sorted.length, expected: want, p50: percentile(sorted, 50), p99: percentile(sorted, 99), cpuPercent: st.cpuPercent, anonMiB: st.anonBytes / 1048576, fileMiB: st.fileBytes / 1048576, note };
  } finally {
    await child.stop();
  }
}

/** The codec's cost per frame in this process, and canmatrix's rate on the same frames. */
async function decodeCost(): Promise<{ nsPerFrame: number; signalsPerFrame: number; frames: number; canmatrixPerSec: number; canmatrixFrames: number }> {
  const codec = new DbcCodec(parseDbc(dbcText(readFileSync(J1939_DBC)), J1939_DBC));
  const msgs = codec.messages.filter((m) => m.message.length === 8);
  let x = 12345;
  const rnd = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) & 0xff);
  const frames = Array.from({ length: 20_000 }, (_, i) => msgs[i % msgs.length]!.frame(Uint8Array.from({ length: 8 }, rnd)));
  let signals = 0;
  for (const f of frames) signals += codec.decode(f)!.signals.length; // warm-up
  const rounds = quick ? 5 : 25;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) for (const f of frames) codec.decode(f);
  const ns = ((performance.now() - t0) * 1e6) / (rounds * frames.length);
  const sample = frames.slice(0, quick ? 2_000 : 10_000);
  const cm = await canmatrixDecode(
    J1939_DBC,
    sample.map((f) => ({ id: f.canId & 0x1fffffff, extended: true, data: [...f.data] })),
  );
  return { nsPerFrame: ns, signalsPerFrame: signals / frames.length, frames: rounds * frames.length, canmatrixPerSec: sample.length / cm.seconds, canmatrixFrames: sample.length };
}

const load = machineLoad();
const CONFIGS = [
  ["10 clients, no -dbc", "none"],
  ["+ -dbc signal store (read 4×/s)", "store"],
  ["+ store + every frame decoded", "eager"],
] as const;
// Rounds interleave the configurations, so a busy moment of the shared machine hits all alike;
// each row reports the median round (by p99) and the mean CPU.
const ROUNDS = quick ? 1 : 3;
const byConfig: Row[][] = CONFIGS.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (const [i, [name, mode]] of CONFIGS.entries()) {
    Bun.gc(true);
    const r = await measure(name, mode);
    console.log(`${name.padEnd(34)} delivered=${r.delivered}/${r.expected} p50=${r.p50.toFixed(3)}ms p99=${r.p99.toFixed(3)}ms cpu=${r.cpuPercent.toFixed(1)}% anon=${r.anonMiB.toFixed(1)}MiB file=${r.fileMiB.toFixed(1)}MiB ${r.note}`);
    byConfig[i]!.push(r);
  }
}
const rows: Row[] = byConfig.map((rs) => {
  const sorted = [...rs].sort((a, b) => a.p99 - b.p99);
  const mid = sorted[Math.floor(sorted.length / 2)]!;
  return { ...mid, cpuPercent: rs.reduce((s, r) => s + r.cpuPercent, 0) / rs.length, note: `${mid.note}; p99 of the rounds: ${rs.map((r) => r.p99.toFixed(1)).join(" / ")} ms` };
});
const cost = await decodeCost();
console.log(`codec: ${cost.nsPerFrame.toFixed(0)} ns/frame (${cost.signalsPerFrame.toFixed(1)} signals/frame); canmatrix ${cost.canmatrixPerSec.toFixed(0)} frames/s`);

const section = [
  "## DBC decoding (1 Mbit/s saturated, j1939.dbc, 10 cannelloni clients)",
  "",
  `${measuredLine(load)} Command: \`bun scripts/bench/dbc.ts${quick ? " --quick" : ""}\`.`,
  `${RATE.toLocaleString("en-US")} frames/s of 8-byte extended frames (a saturated 1 Mbit/s bus) for ${COUNT / RATE} s, after 3,000 warm-up frames, ids cycling`,
  "through the 8-byte messages of canmatrix's j1939.dbc (357 messages) into the virtual bus of a gateway process; 10 cannelloni",
  "clients in the bench process. The store keeps the latest frame per message and decodes when read (here: every signal 4×/s);",
  "the eager row adds a hub client that decodes every frame completely, to show the per-frame cost the store avoids.",
  `${ROUNDS} interleaved round(s) per configuration: the median round by p99 is shown, CPU is the mean. On this shared 2-core machine`,
  "the p99 of the baseline itself moves by an order of magnitude between rounds (other engineers' tests): compare CPU, and the p99",
  "spread of the rounds, not one p99 against another.",
  "",
  "| configuration | delivered / expected | p50 ms | p99 ms | gateway CPU % | gateway RssAnon MiB | gateway RssFile MiB | DBC consumer |",
  "|---|---:|---:|---:|---:|---:|---:|---|",
  ...rows.map((r) => `| ${r.name} | ${r.delivered} / ${r.expected} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.cpuPercent.toFixed(1)} | ${r.anonMiB.toFixed(1)} | ${r.fileMiB.toFixed(1)} | ${r.note} |`),
  "",
  `Decoding cost in one process (no gateway): \`DbcCodec.decode\` of a j1939 frame (${cost.signalsPerFrame.toFixed(1)} signals on average, value objects`,
  `included) takes **${cost.nsPerFrame.toFixed(0)} ns** (${cost.frames.toLocaleString("en-US")} frames). Reference: python3-canmatrix (Debian, \`Frame.decode\`) decodes`,
  `the same frames at **${Math.round(cost.canmatrixPerSec).toLocaleString("en-US")} frames/s** (${cost.canmatrixFrames.toLocaleString("en-US")} frames, timed inside python), i.e. ${(1e9 / cost.nsPerFrame / cost.canmatrixPerSec).toFixed(0)}× slower; a saturated bus needs ${RATE.toLocaleString("en-US")}.`,
].join("\n");
console.log(section);
if (process.argv.includes("--write")) await writeSection("dbc", section);
process.exit(0);
