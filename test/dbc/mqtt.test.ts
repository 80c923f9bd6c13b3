/**
 * DBC signals over MQTT against a real Mosquitto (mosquitto_sub/mosquitto_pub as the independent
 * client): retained plain values per signal, published on change and at most once per interval,
 * Home Assistant discovery with units and device classes, and a command topic whose JSON is
 * encoded into a frame that reaches the bus exactly (-mqtt-tx).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type CanFrame, dataFrame } from "../../src/can/frame.ts";
import { haDeviceClass, signalPayload, topicLevel } from "../../src/consumers/mqtt/signals.ts";
import { type ConsumerGateway, Mosquitto, mqttPub, MqttSub, startConsumerGateway, waitFor } from "../consumers/harness.ts";

const FIXTURE = join(import.meta.dir, "..", "fixtures", "dbc", "coverage.dbc");
const broker = new Mosquitto();
const cleanup: (() => unknown)[] = [];
beforeAll(async () => broker.start());
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
  await broker.stop();
});

async function gateway(prefix: string, extra: Record<string, unknown> = {}): Promise<ConsumerGateway> {
  const gw = await startConsumerGateway({ mqttUrl: broker.url, mqttPrefix: prefix, dbc: FIXTURE, mqttRaw: false, ...extra });
  cleanup.push(() => gw.stop());
  await waitFor(() => gw.consumers.bridge()?.connected === true, 5000, "bridge connected");
  return gw;
}

test("pure helpers: topic levels, payloads, Home Assistant classes", () => {
  expect(topicLevel("Engine Requested Speed/Speed Limit")).toBe("Engine_Requested_Speed_Speed_Limit");
  expect(signalPayload({ value: 972.9000000000001, valueName: undefined })).toBe("972.9");
  expect(signalPayload({ value: 3, valueName: "D" })).toBe("D");
  expect(haDeviceClass("degC")).toEqual({ deviceClass: "temperature", unit: "°C" });
  expect(haDeviceClass("rpm")).toEqual({ unit: "rpm" });
  expect(haDeviceClass("")).toEqual({});
});

test("retained values per signal, on change, rate-limited; discovery", async () => {
  const gw = await gateway("d1", { mqttHaDiscovery: true, dbcMqttIntervalMs: 400 });
  const sub = await MqttSub.start(broker.port, "d1/can0/signals/#");
  cleanup.push(() => sub.stop());
  const disc = await MqttSub.start(broker.port, "homeassistant/sensor/can_server_d1_can0_dbc/#");
  cleanup.push(() => disc.stop());
  await Bun.sleep(100);
  gw.backend.inject(dataFrame(0x106, [0b0110, 130]));
  expect((await sub.waitTopic("d1/can0/signals/Gearbox/Gear")).payload).toBe("N");
  expect((await sub.waitTopic("d1/can0/signals/Gearbox/OilTemp")).payload).toBe("90");
  expect((await sub.waitTopic("d1/can0/signals/Gearbox/DoorState")).payload).toBe("open");

  // Ten changes within the interval: the first went out, the rest are held, the latest follows.
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) {
    gw.backend.inject(dataFrame(0x106, [0b0110, 131 + i]));
    await Bun.sleep(10);
  }
  const last = await sub.waitTopic("d1/can0/signals/Gearbox/OilTemp", 3000, (m) => m.payload === "100");
  expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
  const temps = sub.on("d1/can0/signals/Gearbox/OilTemp").map((m) => m.payload);
  expect(temps.length).toBeLessThanOrEqual(3);
  expect(temps.at(-1)).toBe("100");
  void last;
  // Unchanged values are not published again.
  expect(sub.on("d1/can0/signals/Gearbox/Gear").length).toBe(1);

  // A new subscriber gets the retained value.
  const late = await MqttSub.start(broker.port, "d1/can0/signals/Gearbox/OilTemp");
  cleanup.push(() => late.stop());
  const kept = await late.waitTopic("d1/can0/signals/Gearbox/OilTemp");
  expect(kept).toMatchObject({ payload: "100", retained: true });

  const oil = JSON.parse((await disc.waitTopic("homeassistant/sensor/can_server_d1_can0_dbc/gearbox_oiltemp/config")).payload) as Record<string, unknown>;
  expect(oil).toMatchObject({ state_topic: "d1/can0/signals/Gearbox/OilTemp", unit_of_measurement: "°C", device_class: "temperature", state_class: "measurement", availability_topic: "d1/availability" });
  expect(oil.device).toMatchObject({ identifiers: ["can_server_d1_can0_dbc"], via_device: "can_server_d1" });
  const gear = JSON.parse((await disc.waitTopic("homeassistant/sensor/can_server_d1_can0_dbc/gearbox_gear/config")).payload) as Record<string, unknown>;
  expect(gear).toMatchObject({ device_class: "enum", options: ["P", "R", "N", "D"] });
  expect(gear.unit_of_measurement).toBeUndefined();
}, 20_000);

test("a command topic encodes a message and sends it through a TX lane, only with -mqtt-tx", async () => {
  const gw = await gateway("d2", { mqttTx: true });
  const onBus: CanFrame[] = [];
  cleanup.push(gw.backend.observe((f) => onBus.push(f)));
  await Bun.sleep(200); // the subscription
  expect(await mqttPub(broker.port, "d2/can0/signals/Gearbox/set", '{"Gear":"R","DoorState":2,"OilTemp":20.4}')).toBe(0);
  await waitFor(() => onBus.length === 1, 5000, "the encoded frame on the bus");
  expect(onBus[0]!.canId).toBe(0x106);
  expect([...onBus[0]!.data]).toEqual([0b1001, 60]);
  expect(await mqttPub(broker.port, "d2/can0/signals/ExtendedMux/set", '{"Service":1,"Sub":8,"S1Value":4660}')).toBe(0);
  await waitFor(() => onBus.length === 2, 5000, "the multiplexed frame");
  expect(onBus[1]!.canId >>> 0).toBe((0x201 | 0x80000000) >>> 0);
  expect([...onBus[1]!.data]).toEqual([1, 8, 0x34, 0x12, 0, 0, 0, 0]);

  // Refusals: bad JSON, an unknown message, a value out of range, a retained command.
  expect(await mqttPub(broker.port, "d2/can0/signals/Gearbox/set", "gear=R")).toBe(0);
  expect(await mqttPub(broker.port, "d2/can0/signals/Nope/set", "{}")).toBe(0);
  expect(await mqttPub(broker.port, "d2/can0/signals/Gearbox/set", '{"OilTemp":999}')).toBe(0);
  expect(await mqttPub(broker.port, "d2/can0/signals/Gearbox/set", '{"Gear":"P"}', ["-r"])).toBe(0);
  await waitFor(() => gw.events().filter((e) => e.msg === "mqtt_signal_command_refused").length === 4, 5000, "four refusals");
  const reasons = gw.events().filter((e) => e.msg === "mqtt_signal_command_refused").map((e) => e.reason);
  expect(reasons).toEqual(["malformed", "unknown_message", "encode", "retained"]);
  expect(String(gw.events().find((e) => e.reason === "encode")!.detail)).toBe("Gearbox.OilTemp: 999 is outside the signal's range [-40, 215]");
  expect(onBus.length).toBe(2);
  expect(await mqttPub(broker.port, "d2/can0/signals/Gearbox/set", null, ["-r"])).toBe(0);

  // Without -mqtt-tx nothing is subscribed and nothing reaches the bus.
  const ro = await gateway("d3");
  const roBus: CanFrame[] = [];
  cleanup.push(ro.backend.observe((f) => roBus.push(f)));
  await Bun.sleep(200);
  expect(await mqttPub(broker.port, "d3/can0/signals/Gearbox/set", '{"Gear":"R"}')).toBe(0);
  await Bun.sleep(300);
  expect(roBus.length).toBe(0);
}, 20_000);

test("-signals-ampio: Ampio values in the signal model (API, MQTT signal topics, gauge keys) beside the Ampio topics, unchanged", async () => {
  const MODULE = 0x00001d4c;
  const gw = await startConsumerGateway({ mqttUrl: broker.url, mqttPrefix: "d4", signalsAmpio: true, mqttRaw: false, dbcMqttIntervalMs: 0 });
  cleanup.push(() => gw.stop());
  await waitFor(() => gw.consumers.bridge()?.connected === true, 5000, "bridge connected");
  const sub = await MqttSub.start(broker.port, "d4/#");
  cleanup.push(() => sub.stop());
  await Bun.sleep(100);
  // FE 06: temperature.1 = (0x04D7 − 1000) / 10 = 23.9 °C.
  gw.backend.inject(dataFrame(MODULE, [0xfe, 0x06, 0xd7, 0x04], true));
  expect((await sub.waitTopic("d4/can0/signals/Ampio_00001D4C/temperature.1")).payload).toBe("23.9");
  // What the Ampio feature publishes is still there, as before.
  expect((await sub.waitTopic("d4/ampio/00001D4C/temperature/1")).payload).toBe("23.9");
  const api = gw.consumers.routes["/api/signals"]!;
  const res = (await api(new Request("http://x/api/signals?match=ampio"), undefined as never))!;
  const body = (await res.json()) as { dbc: string | null; signals: { message: string; signal: string; value: number; unit: string }[] };
  expect(body.dbc).toBeNull();
  expect(body.signals).toEqual([expect.objectContaining({ message: "Ampio_00001D4C", signal: "temperature.1", value: 23.9, unit: "°C" })]);
  expect((await gw.consumers.routes["/api/dbc"]!(new Request("http://x/api/dbc"), undefined as never))!.status).toBe(404);
  gw.backend.inject(dataFrame(MODULE, [0xfe, 0x06, 0xe1, 0x04], true)); // 24.9
  await sub.waitTopic("d4/can0/signals/Ampio_00001D4C/temperature.1", 3000, (m) => m.payload === "24.9");
}, 20_000);
