/**
 * The bridge's Home Assistant discovery set stays bounded whatever modules come and go: 600
 * modules on the bus (the inventory keeps 256) each announcing 51 discoverable values would be
 * 30,600 discovery documents; the set keeps at most DISCOVERED_MAX, forgetting modules the
 * inventory evicted. No broker is needed (the bridge queues while it is not connected).
 */
import { afterEach, expect, test } from "bun:test";
import { dataFrame } from "../../src/can/frame.ts";
import { DISCOVERED_MAX, MqttBridge } from "../../src/consumers/mqtt/bridge.ts";
import { freePort, startConsumerGateway } from "./harness.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

test("600 modules × 51 discoverable values: the discovery set stays within DISCOVERED_MAX, nothing dropped", async () => {
  const gw = await startConsumerGateway({ ampioDecode: "true" });
  cleanup.push(() => gw.stop());
  const decoder = gw.consumers.decoder!;
  const { log } = await import("../../src/ops/log.ts").then((m) => m.memoryLogger("error"));
  const bridge = new MqttBridge({
    url: `mqtt://127.0.0.1:${freePort()}`, // nothing listens: the bridge only queues
    username: "",
    password: "",
    clientId: "bounds",
    prefix: "b",
    qos: 0,
    keepaliveMs: 0,
    raw: false,
    tx: false,
    haDiscovery: true,
    hub: gw.gateway.hub,
    decoder,
    log,
    id: 900_001,
    txId: 900_002,
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  bridge.start();
  cleanup.push(() => bridge.stop(100));
  let now = Date.now();
  for (let m = 0; m < 600; m++) {
    const id = 0x10000 + m;
    decoder.process(dataFrame(id, [0xfe, 0x06, 0xd9, 0x04], true), now);
    decoder.process(dataFrame(id, [0xfe, 0x4f, 0x39, 0x82], true), now);
    for (let z = 0; z < 16; z++) decoder.process(dataFrame(id, [0xfe, 0xc9 + z, 0xe1, 0x04, 0xb0, 0x04, 0x33, 0x05], true), now);
    now += 1;
    expect(bridge.discoveredCount).toBeLessThanOrEqual(DISCOVERED_MAX);
  }
  expect(decoder.inventory.size).toBe(256);
  expect(bridge.discoveredCount).toBeGreaterThan(256 * 51 - 1); // every module still in the inventory is announced
  expect(bridge.drops.get("discovery_full")).toBe(0);
});
