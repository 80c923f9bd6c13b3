/**
 * Benchmark harness for the client protocols, gateway side: a real gateway on the virtual bus in
 * its own process with every protocol listener on loopback (cannelloni TCP, slcan, GVRET,
 * canlogserver, and cannelloni UDP with one configured peer), driven by line commands on stdin:
 *   run RATE COUNT   inject COUNT stamped frames at RATE frames/s (0 = flat out)
 *   stats            print a JSON line with counters, RSS and CPU time
 * Prints one JSON line with the bound ports once listening. Exits when stdin closes.
 * Usage: protocols-gateway.ts UDP_PEER_PORT HUB_BUFFER
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway } from "../../src/gateway.ts";
import { createLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { stampSendTime } from "./measure.ts";

const peerPort = Number(process.argv[2]);
const hubBuffer = Number(process.argv[3] ?? 100_000);
const stats = new Stats();
const log = createLogger("text", "warn");
const backend = new VirtualBackend({ stats, log, fd: false });
const any = "127.0.0.1:0";
const config = {
  ...defaultConfig(),
  backend: "virtual" as const,
  hubBuffer,
  listen: any,
  slcanListen: any,
  gvretListen: any,
  canlogserverListen: any,
  cannelloniUdpListen: any,
  cannelloniUdpPeer: [`127.0.0.1:${peerPort}`],
};
const gateway = await startGateway(config, { stats, log, backend });
const ports = Object.fromEntries((["cannelloni", "slcan", "gvret", "canlogserver", "cannelloni-udp"] as const).map((p) => [p, gateway.port(p)]));
process.stdout.write(JSON.stringify(ports) + "\n");

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
      JSON.stringify({ dropped: stats.hubDroppedFrames, rssBytes: process.memoryUsage.rss(), cpuPercent: ((cpu.user + cpu.system) / 1000 / wall) * 100 }) + "\n",
    );
  }
}
await gateway.shutdown(200);
process.exit(0);
