/**
 * Each bus's state on MQTT against a real Mosquitto broker (mosquitto_sub as the independent
 * reader): a retained <prefix>/<bus>/state with the link and the CAN controller's state, published
 * on each change and kept by the broker for a late subscriber. The virtual bus reports no
 * controller; to show a controller's states here its health() is given a report by the test (a
 * stand-in: no CAN controller exists on this machine; the SocketCAN side runs in the VM,
 * test/socketcan/bus-health.test.ts). The rest (gateway, bridge, broker) is real.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { BusHealth } from "../../src/backends/backend.ts";
import { Mosquitto, MqttSub, startConsumerGateway } from "./harness.ts";

let broker: Mosquitto;
const cleanup: (() => Promise<void> | void)[] = [];
beforeAll(async () => {
  broker = new Mosquitto();
  await broker.start();
});
afterAll(async () => {
  await broker.stop();
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

test("<prefix>/<bus>/state: link up, then the controller's warning and bus-off, retained for a late subscriber", async () => {
  const s = await MqttSub.start(broker.port, "bs/#");
  cleanup.push(() => s.stop());
  const gw = await startConsumerGateway({ mqttUrl: broker.url, mqttPrefix: "bs" });
  cleanup.push(() => gw.stop());
  const topic = `bs/${gw.gateway.buses[0]!.name}/state`;
  const first = await s.waitTopic(topic, 5000);
  // (A live subscriber sees the retain flag cleared, as MQTT 3.1.1 delivers; the late one below sees it.)
  expect(JSON.parse(first.payload)).toEqual({ link: "up", reason: "", state: null });

  let report: BusHealth = { state: "error-warning", txErrors: 97, rxErrors: 0, restarts: 0, busOff: 0 };
  Object.assign(gw.backend, { health: (): BusHealth => report });
  const warn = await s.waitTopic(topic, 5000, (m) => m.payload.includes("error-warning"));
  expect(JSON.parse(warn.payload)).toEqual({ link: "up", reason: "", state: "error-warning", tx_errors: 97, rx_errors: 0, restarts: 0, bus_off: 0 });

  report = { state: "bus-off", txErrors: 256, rxErrors: 0, restarts: 0, busOff: 1 };
  await s.waitTopic(topic, 5000, (m) => m.payload.includes("bus-off"));
  // Unchanged: not published again.
  await Bun.sleep(1500);
  expect(s.on(topic).filter((m) => m.payload.includes("bus-off")).length).toBe(1);

  // A subscriber that comes later gets the current state from the broker.
  const late = await MqttSub.start(broker.port, topic);
  cleanup.push(() => late.stop());
  const kept = await late.waitTopic(topic, 5000);
  expect(kept.retained).toBe(true);
  expect(JSON.parse(kept.payload)).toMatchObject({ link: "up", state: "bus-off", bus_off: 1 });
});
