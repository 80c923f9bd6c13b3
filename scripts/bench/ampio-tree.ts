/**
 * Cost of the Ampio decoding path per bus frame, in process, on the demo log's frames: decoder
 * alone (inventory + state cache), + the MQTT bridge's can-server tree, + the Ampio M-SERV tree
 * (-mqtt-ampio). The bridge is not connected (nothing listens), so this measures what the gateway
 * does per frame before any socket: decode, flatten, map to topics and queue changes. Bounded:
 * ROUNDS passes over the log per variant.
 *
 *   bun scripts/bench/ampio-tree.ts
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type CanFrame, parseFrame } from "../../src/can/frame.ts";
import { AmpioDecoder } from "../../src/consumers/ampio-decoder.ts";
import { MqttBridge } from "../../src/consumers/mqtt/bridge.ts";
import { Hub } from "../../src/hub/hub.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

const ROUNDS = 200;
const frames: CanFrame[] = [];
for (const line of readFileSync(join(import.meta.dir, "../../demo/ampio-demo.log"), "utf8").split("\n")) {
  const m = /^\(\S+\) \S+ (\S+)$/.exec(line.trim());
  if (m) frames.push(parseFrame(m[1]!));
}

function run(variant: "decoder" | "bridge" | "bridge+ampio"): number {
  const { log } = memoryLogger("error");
  const decoder = new AmpioDecoder({ id: 1, staleAfterMs: 300_000, stateMaxAgeMs: 3_600_000, log });
  let bridge: MqttBridge | null = null;
  if (variant !== "decoder") {
    const stats = new Stats();
    const hub = new Hub({ policy: "drop", echoClients: true, tx: { rate: 0, burst: 1, queueFrames: 256, maxAgeMs: 2000 }, stats, log });
    bridge = new MqttBridge({
      url: "mqtt://127.0.0.1:9", username: "", password: "", clientId: "b", prefix: "b", qos: 0, keepaliveMs: 0,
      raw: false, tx: false, haDiscovery: false, hub, decoder, log, id: 2, txId: 3,
      backoff: { initialMs: 3_600_000, maxMs: 3_600_000 }, ampioTree: variant === "bridge+ampio",
    });
    decoder.addListener(bridge);
  }
  let now = Date.now();
  const t0 = performance.now();
  for (let r = 0; r < ROUNDS; r++) for (const f of frames) decoder.process(f, now++);
  const us = ((performance.now() - t0) * 1000) / (ROUNDS * frames.length);
  void bridge?.stop(0);
  return us;
}

console.log(`${frames.length} frames × ${ROUNDS} rounds per variant`);
for (const v of ["decoder", "bridge", "bridge+ampio"] as const) {
  run(v); // warm-up
  // The machine is shared: the fastest of five runs is the least disturbed one; the median says how noisy.
  const samples = [run(v), run(v), run(v), run(v), run(v)].sort((a, b) => a - b);
  console.log(`${v.padEnd(14)} min ${samples[0]!.toFixed(2)} µs/frame, median ${samples[2]!.toFixed(2)} (5 runs)`);
}
process.exit(0);
