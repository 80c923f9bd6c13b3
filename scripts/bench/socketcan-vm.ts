/**
 * SocketCAN receive throughput inside the vmcan VM (real kernel, vcan0; run by
 * scripts/bench/socketcan-vm.sh): the compiled can-server binary with 10 cannelloni clients
 * against a minimal recvmmsg reader (scripts/bench/ref-recvmmsg.c), one after the other in the
 * same VM, alternating over ROUNDS rounds, the same flood each time: `cangen -g 0 -p 10` (no gaps;
 * it polls on ENOBUFS, so it never drops on its side), FRAMES classic 8-byte frames. Kernel drops:
 * the reference reads SO_RXQ_OVFL; can-server counts them in errors_total{where="socketcan_rx_overflow"}.
 * Prints one JSON line per measurement, then a JSON summary. Every wait is bounded.
 *
 * Before each measurement both receivers get the same warm-up (WARMUP frames at 1 ms gaps, not
 * counted), so can-server's hot path is compiled by the JIT — slow under TCG — as it is in a
 * gateway that has been running; GAP_MS (cangen -g) 0 is the flood, e.g. 0.12 asks for about a
 * saturated 1 Mbit/s bus (what the emulated guest achieves is reported as the offered rate).
 *
 *   bun scripts/bench/socketcan-vm.ts BINARY REF_RECVMMSG [FRAMES] [ROUNDS] [GAP_MS]
 */
import { CannelloniTestClient } from "../../test/helpers/cannelloni-client.ts";
import { launchCanServer } from "./launch.ts";

const [binary, refBin] = process.argv.slice(2);
const FRAMES = Number(process.argv[4] ?? 50_000);
const ROUNDS = Number(process.argv[5] ?? 2);
const GAP_MS = process.argv[6] ?? "0";
// SOCKETCAN_BENCH_WARMUP: frames sent (1 ms apart) before each measurement, not counted.
const WARMUP = Number(process.env.SOCKETCAN_BENCH_WARMUP ?? 3000);
const IFACE = "vcan0";
// SOCKETCAN_BENCH_CLIENTS: how many cannelloni clients the gateway serves (default 10).
const CLIENTS = Number(process.env.SOCKETCAN_BENCH_CLIENTS ?? 10);
if (!binary || !refBin) throw new Error("usage: socketcan-vm.ts BINARY REF_RECVMMSG [FRAMES] [ROUNDS]");

const cangen = (): string[] => ["cangen", IFACE, "-g", GAP_MS, "-p", "10", "-I", "100", "-L", "8", "-D", "i", "-n", String(FRAMES)];
// Another id than the measured frames', so a reader can tell them apart.
const warmupGen = (): string[] => ["cangen", IFACE, "-g", "1", "-p", "10", "-I", "200", "-L", "8", "-D", "i", "-n", String(WARMUP)];

/** Runs cangen, returning the frames per second it achieved (what was offered). */
async function offer(argv: string[]): Promise<number> {
  const t0 = performance.now();
  const gen = Bun.spawn(argv, { stdout: "ignore" });
  await gen.exited;
  const n = Number(argv[argv.indexOf("-n") + 1]);
  return Math.round((n / (performance.now() - t0)) * 1000);
}

interface Result {
  who: string;
  received: number;
  kernelDrops: number;
  framesPerSec: number;
  /** Frames per second cangen achieved. */
  offeredPerSec: number;
  perClientMin?: number;
  hubDropped?: number;
  cpuSeconds?: number;
}

async function reference(): Promise<Result> {
  const p = Bun.spawn([refBin!, IFACE, String(FRAMES)], { stdout: "pipe", stderr: "inherit" });
  const reader = p.stdout.getReader();
  let text = "";
  const dec = new TextDecoder();
  const deadline = Date.now() + 60_000;
  while (!text.includes("ready") && Date.now() < deadline) {
    const r = await reader.read();
    if (r.done) break;
    text += dec.decode(r.value);
  }
  // No warm-up: a C program has nothing to compile, and warm-up frames would count.
  const offeredPerSec = await offer(cangen());
  const timer = setTimeout(() => p.kill(), 30_000);
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    text += dec.decode(r.value);
  }
  clearTimeout(timer);
  const json = JSON.parse(text.slice(text.indexOf("{"))) as { received: number; kernelDrops: number; framesPerSec: number };
  return { who: "recvmmsg reference", ...json, offeredPerSec };
}

function metric(body: string, name: string, label = ""): number {
  let sum = 0;
  for (const line of body.split("\n")) if (line.startsWith(name) && line.includes(label) && !line.startsWith("#")) sum += Number(line.split(" ").pop());
  return sum;
}

async function canServer(): Promise<Result> {
  const gw = await launchCanServer(["-backend", "socketcan", "-can-if", IFACE, "-listen", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-log-level", "info"], { runner: [binary!], readyTimeoutMs: 120_000 });
  const httpLine = await (async () => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const l = gw.log.find((x) => x.includes('"metrics_listen"'));
      if (l) return JSON.parse(l) as { addr: string };
      if (Date.now() > deadline) throw new Error("no metrics_listen line");
      await Bun.sleep(20);
    }
  })();
  const httpPort = Number(String(httpLine.addr).split(":").pop());
  const clients: CannelloniTestClient[] = [];
  const counts = new Array<number>(CLIENTS).fill(0);
  let firstAt = 0;
  let lastAt = 0;
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const c = await CannelloniTestClient.connect(gw.ports.cannelloni!, { helloFirst: true });
      await c.handshake({ helloFirst: true }, 30_000);
      c.onReceive = (frames) => {
        if (frames.length === 0) return;
        if (i === 0) {
          const t = performance.now();
          if (firstAt === 0) firstAt = t;
          lastAt = t;
        }
        counts[i]! += frames.length;
        frames.length = 0;
      };
      clients.push(c);
    }
    // Warm-up: until every client sees a frame (the receive worker starts slowly under emulation).
    const deadline = Date.now() + 60_000;
    while (counts.some((n) => n === 0) && Date.now() < deadline) {
      Bun.spawnSync(["cansend", IFACE, "7FF#00"]);
      await Bun.sleep(100);
    }
    if (WARMUP > 0) {
      await offer(warmupGen());
      // Until the clients have seen the warm-up through (nothing new for 1 s, at most 60 s).
      let last = -1;
      const until = Date.now() + 60_000;
      while (Date.now() < until) {
        const total = counts.reduce((a, b) => a + b, 0);
        if (total === last) break;
        last = total;
        await Bun.sleep(1000);
      }
    }
    await Bun.sleep(300);
    counts.fill(0);
    firstAt = lastAt = 0;
    const before = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const cpu0 = Number((await Bun.file(`/proc/${gw.pid}/stat`).text()).split(") ")[1]!.split(" ").slice(11, 13).reduce((a, b) => a + Number(b), 0));
    const offeredPerSec = await offer(cangen());
    // Until every client has every frame, or nothing new for 3 s.
    let seen = -1;
    let quietSince = Date.now();
    while (Date.now() - quietSince < 3000) {
      const total = counts.reduce((a, b) => a + b, 0);
      if (total >= FRAMES * CLIENTS) break;
      if (total !== seen) {
        seen = total;
        quietSince = Date.now();
      }
      await Bun.sleep(100);
    }
    const cpu1 = Number((await Bun.file(`/proc/${gw.pid}/stat`).text()).split(") ")[1]!.split(" ").slice(11, 13).reduce((a, b) => a + Number(b), 0));
    const after = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const rx = metric(after, "serial_rx_frames_total") - metric(before, "serial_rx_frames_total");
    return {
      who: `can-server binary, ${CLIENTS} clients`,
      received: rx,
      kernelDrops: metric(after, "errors_total", 'where="socketcan_rx_overflow"') - metric(before, "errors_total", 'where="socketcan_rx_overflow"'),
      framesPerSec: lastAt > firstAt ? Math.round((counts[0]! / (lastAt - firstAt)) * 1000) : 0,
      offeredPerSec,
      perClientMin: Math.min(...counts),
      hubDropped: metric(after, "hub_dropped_frames_total") - metric(before, "hub_dropped_frames_total"),
      cpuSeconds: (cpu1 - cpu0) / 100,
    };
  } finally {
    for (const c of clients) c.close();
    await gw.stop();
  }
}


const results: Result[] = [];
for (let r = 0; r < ROUNDS; r++) {
  for (const run of r % 2 === 0 ? [reference, canServer] : [canServer, reference]) {
    const res = await run();
    results.push(res);
    console.log(JSON.stringify({ round: r + 1, frames: FRAMES, ...res }));
  }
}
console.log(JSON.stringify({ summary: true, frames: FRAMES, rounds: ROUNDS, gapMs: GAP_MS, warmup: WARMUP, results }));
process.exit(0);
