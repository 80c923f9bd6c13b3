/**
 * Benchmark harness, gateway side: a real gateway on the virtual bus in its own process, driven
 * by `run RATE COUNT` and `stats` lines on stdin (gateway-harness.ts). Prints "port N" once
 * listening (with --waveshare also a Waveshare listener, "waveshare N" on the next line). Its
 * `stats` line adds hub drops and kicks, frames sent, and client, session and handshake counts.
 * Exits when stdin closes.
 *   bun scripts/bench/gateway-proc.ts HUB_BUFFER [--waveshare]
 */
import { startGateway } from "../../src/gateway.ts";
import { benchConfig, benchRig, driveFromStdin } from "./gateway-harness.ts";

const hubBuffer = Number(process.argv[2] ?? 512);
const { stats, log, backend } = benchRig();
const waveshare = process.argv.includes("--waveshare");
const config = benchConfig({ hubBuffer, waveshareListen: waveshare ? "127.0.0.1:0" : "" });
const gateway = await startGateway(config, { stats, log, backend });
process.stdout.write(`port ${gateway.port("cannelloni")}\n`);
if (waveshare) process.stdout.write(`waveshare ${gateway.port("waveshare")}\n`);

await driveFromStdin(backend, () => ({
  dropped: stats.hubDroppedFrames,
  kicked: stats.hubKickedClients,
  tx: stats.tcpTxFrames,
  clients: gateway.hub.size,
  sessions: gateway.registry.sessions.size,
  handshaking: gateway.registry.handshaking,
}));
await gateway.shutdown(200);
process.exit(0);
