/**
 * Benchmark harness, gateway side: a real gateway on the virtual bus in its own process (so its
 * CPU and RSS are its own), driven by line commands on stdin:
 *   run RATE COUNT   inject COUNT frames at RATE frames/s (0 = flat out), each carrying its
 *                    injection time in its 8 data bytes (stampSendTime)
 *   stats            print a JSON line with counters, RSS and CPU time
 * Prints "port N" once listening (with --waveshare also a Waveshare listener, "waveshare N" on
 * the next line). Exits when stdin closes.
 *   bun scripts/bench/gateway-proc.ts HUB_BUFFER [--waveshare]
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway } from "../../src/gateway.ts";
import { createLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { stampSendTime } from "./measure.ts";

const hubBuffer = Number(process.argv[2] ?? 512);
const stats = new Stats();
const log = createLogger("text", "warn");
const backend = new VirtualBackend({ stats, log, fd: false });
const waveshare = process.argv.includes("--waveshare");
const config = { ...defaultConfig(), backend: "virtual" as const, listen: "127.0.0.1:0", hubBuffer, waveshareListen: waveshare ? "127.0.0.1:0" : "" };
const gateway = await startGateway(config, { stats, log, backend });
process.stdout.write(`port ${gateway.port("cannelloni")}\n`);
if (waveshare) process.stdout.write(`waveshare ${gateway.port("waveshare")}\n`);

function frameAt(seq: number): ReturnType<typeof dataFrame> {
  const data = new Uint8Array(8);
  stampSendTime(data);
  return dataFrame(0x100 + (seq % 0x600), data);
}

async function run(rate: number, count: number): Promise<void> {
  let sent = 0;
  const t0 = performance.now();
  const deadline = t0 + 120_000; // every load loop stops by itself
  while (sent < count && performance.now() < deadline) {
    if (rate === 0) {
      for (let i = 0; i < 64 && sent < count; i++) backend.inject(frameAt(sent++));
      await new Promise<void>((r) => setImmediate(r));
    } else {
      const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
      while (sent < due) backend.inject(frameAt(sent++));
      await Bun.sleep(1);
    }
  }
}

let cpu0 = process.cpuUsage();
let wall0 = performance.now();
for await (const line of console) {
  const [cmd, a, b] = line.trim().split(/\s+/);
  if (cmd === "run") {
    cpu0 = process.cpuUsage();
    wall0 = performance.now();
    await run(Number(a), Number(b));
    process.stdout.write("done\n");
  } else if (cmd === "stats") {
    const cpu = process.cpuUsage(cpu0);
    const wall = performance.now() - wall0;
    process.stdout.write(
      JSON.stringify({
        dropped: stats.hubDroppedFrames,
        kicked: stats.hubKickedClients,
        tx: stats.tcpTxFrames,
        clients: gateway.hub.size,
        sessions: gateway.registry.sessions.size,
        handshaking: gateway.registry.handshaking,
        rssBytes: process.memoryUsage.rss(),
        cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100,
      }) + "\n",
    );
  }
}
await gateway.shutdown(200);
process.exit(0);
