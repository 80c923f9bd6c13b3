/**
 * Benchmark harness for the bus views, gateway side: a gateway on the virtual bus with the
 * operations endpoint (dashboard, /capture.pcap) and, with --record DIR, the recorder; driven
 * like gateway-proc.ts by stdin lines (`run RATE COUNT`, `stats`). Prints "port N http M".
 *   bun scripts/bench/views-proc.ts [--record DIR]
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway } from "../../src/gateway.ts";
import { createLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { startOperations } from "../../src/ops/operations.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { startRecorder } from "../../src/consumers/recorder.ts";
import { stampSendTime } from "./measure.ts";

const recordAt = process.argv.indexOf("--record");
const recordDir = recordAt > 0 ? process.argv[recordAt + 1]! : "";
const stats = new Stats();
const log = createLogger("text", "warn");
const backend = new VirtualBackend({ stats, log, fd: false });
const config = { ...defaultConfig(), backend: "virtual" as const, listen: "127.0.0.1:0", metricsAddr: "127.0.0.1:0", hubBuffer: 100_000, record: recordDir };
const gateway = await startGateway(config, { stats, log, backend });
const counters = new ConsumerCounters();
const ops = await startOperations(config, { gateway, stats, log, build: buildInfo(), counters });
const rec = recordDir ? await startRecorder(config, { hub: gateway.hub, allocateId: () => gateway.registry.allocateId(), iface: "can0", counters, log }) : null;
process.stdout.write(`port ${gateway.port("cannelloni")} http ${ops.httpPort}\n`);

async function run(rate: number, count: number): Promise<void> {
  let sent = 0;
  const t0 = performance.now();
  const deadline = t0 + 120_000; // every load loop stops by itself
  while (sent < count && performance.now() < deadline) {
    const due = Math.min(count, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    while (sent < due) {
      const data = new Uint8Array(8);
      stampSendTime(data);
      backend.inject(dataFrame(0x100 + (sent++ % 0x600), data));
    }
    await Bun.sleep(1);
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
    process.stdout.write(JSON.stringify({ dropped: stats.hubDroppedFrames, consumers: counters.byKind, rssBytes: process.memoryUsage.rss(), cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100 }) + "\n");
  }
}
await rec?.stop();
await ops.stop();
await gateway.shutdown(200);
process.exit(0);
