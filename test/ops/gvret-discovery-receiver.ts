/**
 * Runs inside the client namespace of test/ops/gvret-discovery.test.ts and does what SavvyCAN
 * does: listen on UDP 17222, take the sender of the first discovery datagram, connect to it on
 * TCP port 23, validate (test/helpers/gvret-client.ts) and wait for one bus frame (the gateway
 * runs -virtual-demo). Prints one JSON line: { payload, sender, connected, frames, error? }.
 * Usage: gvret-discovery-receiver.ts TIMEOUT_MS
 */
import dgram from "node:dgram";
import { GvretTestClient } from "../helpers/gvret-client.ts";

const timeoutMs = Number(process.argv[2] ?? 10000);
const result: { payload: string | null; sender: string | null; connected: boolean; frames: number; error?: string } = { payload: null, sender: null, connected: false, frames: 0 };
const timer = setTimeout(() => {
  result.error = "timed out";
  console.log(JSON.stringify(result));
  process.exit(1);
}, timeoutMs);

const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
const first = new Promise<{ msg: Buffer; address: string }>((resolve) => socket.on("message", (msg, rinfo) => resolve({ msg, address: rinfo.address })));
socket.bind(17222, "0.0.0.0");
const { msg, address } = await first;
socket.close();
result.payload = msg.toString("hex");
result.sender = address;
try {
  const c = await GvretTestClient.connect(23, address);
  await c.openLikeSavvyCan();
  result.connected = true;
  await c.waitFrames(1, timeoutMs);
  result.frames = c.frames.length;
  c.close();
} catch (e) {
  result.error = e instanceof Error ? e.message : String(e);
}
clearTimeout(timer);
console.log(JSON.stringify(result));
process.exit(result.error ? 1 : 0);
