/**
 * Benchmark harness for the bus views, gateway side: a gateway on the virtual bus with the
 * operations endpoint (dashboard, /capture.pcap) and, with --record DIR, the recorder; driven
 * like gateway-proc.ts by stdin lines (`run RATE COUNT`, `stats`: gateway-harness.ts), its
 * `stats` line adds the consumers' counters. Prints "port N http M".
 *   bun scripts/bench/views-proc.ts [--record DIR]
 */
import { startGateway } from "../../src/gateway.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { startOperations } from "../../src/ops/operations.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { startRecorder } from "../../src/consumers/recorder.ts";
import { benchConfig, benchRig, driveFromStdin } from "./gateway-harness.ts";

const recordAt = process.argv.indexOf("--record");
const recordDir = recordAt > 0 ? process.argv[recordAt + 1]! : "";
const { stats, log, backend } = benchRig();
const config = benchConfig({ metricsAddr: "127.0.0.1:0", hubBuffer: 100_000, record: recordDir });
const gateway = await startGateway(config, { stats, log, backend });
const counters = new ConsumerCounters();
const ops = await startOperations(config, { gateway, stats, log, build: buildInfo(), counters });
const rec = recordDir ? await startRecorder(config, { buses: gateway.buses, allocateId: () => gateway.registry.allocateId(), counters, log }) : null;
process.stdout.write(`port ${gateway.port("cannelloni")} http ${ops.httpPort}\n`);

await driveFromStdin(backend, () => ({ dropped: stats.hubDroppedFrames, consumers: counters.byKind }));
await rec?.stop();
await ops.stop();
await gateway.shutdown(200);
process.exit(0);
