/**
 * Receive throughput of the SocketCAN backend on a real kernel (run inside the VM):
 *   ../shared/vmcan/run-in-vm.sh 'bun test/socketcan/bench-rx.ts [framesPerGenerator] [generators] [iface]'
 * cangen floods the interface without gaps (polling on ENOBUFS, so it never drops on its side);
 * the backend counts what reaches its listener. Prints frames/s over the first-to-last frame
 * interval, frames lost, and the generator's own rate for comparison. Not a test: no assertions.
 * With BURST=1 the main thread is blocked (spawnSync) while one generator runs, so the worker
 * fills a ring big enough for every frame; the rate printed is then the main thread's drain rate
 * (decode + listener), independent of how fast cangen can write under emulation.
 */
import { readdirSync, readFileSync } from "node:fs";
import { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import { silentLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

const perGenerator = Number(process.argv[2] ?? 100_000);
const generators = Number(process.argv[3] ?? 1);
const iface = process.argv[4] ?? "vcan0";
const total = perGenerator * generators;
const burst = process.env.BURST === "1";
const stats = new Stats();
let ringSlots = 4096;
if (burst) while (ringSlots < total) ringSlots *= 2;
const backend = new SocketCanBackend({ iface, fd: false, stats, log: silentLogger, rxRingSlots: ringSlots });
let first = 0;
let last = 0;
let count = 0;
let outOfOrder = 0;
/** Next expected counter per generator (told apart by CAN id 0x100 + n). */
const expect = new Array<number>(generators).fill(0);
let warmedUp = false;
let done: () => void = () => {};
const finished = new Promise<void>((r) => (done = r));
await backend.start({
  frame(f) {
    if (f.canId === 0x7ff) {
      warmedUp = true; // the warm-up frame: the worker is receiving
      return;
    }
    // performance.now() per frame would dominate under TCG: stamp only the first and the last.
    if (count === 0) first = performance.now();
    // cangen -D i: data[0..] is a little-endian counter.
    const g = f.canId - 0x100;
    const seq = f.data[0]! | (f.data[1]! << 8);
    if (seq !== (expect[g]! & 0xffff)) outOfOrder++;
    expect[g] = seq + 1;
    if (++count === total) {
      last = performance.now();
      done();
    }
  },
  txReady() {},
  state() {},
});
// Wait until the worker demonstrably receives (its start-up takes a while under emulation).
while (!warmedUp) {
  Bun.spawnSync(["cansend", iface, "7FF#00"]);
  await Bun.sleep(50);
}
const cpuBefore = process.cpuUsage();
const genStart = performance.now();
const cangen = (n: number) => ["cangen", iface, "-g", "0", "-p", "10", "-I", (0x100 + n).toString(16), "-L", "8", "-D", "i", "-n", String(perGenerator)];
if (burst) {
  Bun.spawnSync(cangen(0), { stdout: "ignore" });
} else {
  const gens = Array.from({ length: generators }, (_, n) => Bun.spawn(cangen(n), { stdout: "ignore" }));
  await Promise.all(gens.map((g) => g.exited));
}
const genMs = performance.now() - genStart;
await Promise.race([finished, Bun.sleep(5000)]);
if (count !== total) last = performance.now();
const cpu = process.cpuUsage(cpuBefore);
// Per-thread CPU (clock ticks since the thread started, startup included): main thread vs "Worker".
const threads: Record<string, number> = {};
for (const t of readdirSync("/proc/self/task")) {
  const st = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  const name = st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"));
  threads[name] = (threads[name] ?? 0) + Number(f[11]) + Number(f[12]);
}
await backend.stop();
const ms = last - first;
const cpuMs = (cpu.user + cpu.system) / 1000;
console.log(
  JSON.stringify({
    mode: burst ? "burst (main-thread drain rate)" : "streaming",
    frames: total,
    received: count,
    lost: total - count,
    outOfOrder,
    rxFramesPerSec: Math.round((count / ms) * 1000),
    generatorFramesPerSec: Math.round((total / genMs) * 1000),
    // Whole process (worker + main thread): CPU time per frame and the rate one full core would sustain.
    cpuMicrosPerFrame: Number(((cpuMs * 1000) / count).toFixed(2)),
    framesPerCpuSecond: Math.round(count / (cpuMs / 1000)),
    threadCpuTicks: threads,
    readErrors: stats.errors.get("socketcan_read"),
  }),
);
