/**
 * Benchmark harness for the client protocols, gateway side: a real gateway on the virtual bus in
 * its own process with every protocol listener on loopback (cannelloni TCP, slcan, GVRET,
 * canlogserver, and cannelloni UDP with one configured peer), driven by `run RATE COUNT` and
 * `stats` lines on stdin (gateway-harness.ts). Prints one JSON line with the bound ports once
 * listening. Exits when stdin closes.
 * Usage: protocols-gateway.ts UDP_PEER_PORT HUB_BUFFER
 */
import { startGateway } from "../../src/gateway.ts";
import { benchConfig, benchRig, driveFromStdin } from "./gateway-harness.ts";

const peerPort = Number(process.argv[2]);
const hubBuffer = Number(process.argv[3] ?? 100_000);
const { stats, log, backend } = benchRig();
const any = "127.0.0.1:0";
const config = benchConfig({
  hubBuffer,
  listen: any,
  slcanListen: any,
  gvretListen: any,
  canlogserverListen: any,
  cannelloniUdpListen: any,
  cannelloniUdpPeer: [`127.0.0.1:${peerPort}`],
});
const gateway = await startGateway(config, { stats, log, backend });
const ports = Object.fromEntries((["cannelloni", "slcan", "gvret", "canlogserver", "cannelloni-udp"] as const).map((p) => [p, gateway.port(p)]));
process.stdout.write(JSON.stringify(ports) + "\n");

await driveFromStdin(backend, () => ({ dropped: stats.hubDroppedFrames }));
await gateway.shutdown(200);
process.exit(0);
