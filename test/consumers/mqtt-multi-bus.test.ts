/**
 * MQTT raw frames with two buses (issue 19 item 2), against a real Mosquitto broker
 * (mosquitto_sub): each bus's frames on `<prefix>/<bus>/raw/<ID>` (the bus name a level before
 * `raw`, as the DBC signals' `<prefix>/<bus>/signals/…`), never on the other bus's topics; with
 * one bus the topic stays `<prefix>/raw/<ID>` (mqtt.test.ts). Commands (mosquitto_pub) on
 * `<prefix>/<bus>/tx` reach that bus only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { dataFrame } from "../../src/can/frame.ts";
import { createConsumers, type Consumers } from "../../src/consumers/consumers.ts";
import { startTwoBuses, type TwoBuses } from "../helpers/two-buses.ts";
import { Mosquitto, mqttPub, MqttSub, waitFor } from "./harness.ts";
import { frameText } from "../helpers/gateway.ts";

let broker: Mosquitto;
let tb: TwoBuses | null = null;
let consumers: Consumers | null = null;
const subs: MqttSub[] = [];

beforeAll(async () => {
  broker = new Mosquitto();
  await broker.start();
});
afterAll(async () => {
  await broker.stop();
});
afterEach(async () => {
  for (const s of subs.splice(0)) await s.stop();
  await consumers?.stop();
  consumers = null;
  await tb?.stop();
  tb = null;
});

describe("MQTT raw frames with two buses", () => {
  test("<prefix>/<bus>/raw/<ID>: each bus's frames under its name, nothing on the single-bus topic", async () => {
    tb = await startTwoBuses({ mqttUrl: broker.url, mqttPrefix: "mb", mqttRaw: true });
    const t = tb;
    const sub = await MqttSub.start(broker.port, "mb/#");
    subs.push(sub);
    consumers = createConsumers(t.config, t.log, { mqttBackoff: { initialMs: 50, maxMs: 400 } });
    await consumers.start(t.gateway);
    await sub.waitTopic("mb/availability", 5000, (m) => m.payload === "online");
    await waitFor(() => t.gateway.buses.every((b) => [...b.hub.attached].some((c) => c.protocol === "mqtt")), 3000, "bridge on both buses");
    t.backends[0]!.inject(dataFrame(0x123, [0xde, 0xad]));
    t.backends[1]!.inject(dataFrame(0x1d4c, [1, 2], true));
    t.backends[1]!.inject(dataFrame(0x123, [0x11]));
    const a = await sub.waitTopic("mb/can0/raw/123");
    const b = await sub.waitTopic("mb/can1/raw/00001D4C");
    const c = await sub.waitTopic("mb/can1/raw/123");
    expect(JSON.parse(a.payload)).toMatchObject({ id: 0x123, data: "DEAD" });
    expect(JSON.parse(b.payload)).toMatchObject({ id: 0x1d4c, ext: true, data: "0102" });
    expect(JSON.parse(c.payload)).toMatchObject({ id: 0x123, data: "11" });
    await Bun.sleep(200);
    const raw = sub.messages.filter((m) => m.topic.includes("/raw/")).map((m) => m.topic);
    expect(raw).toEqual(["mb/can0/raw/123", "mb/can1/raw/00001D4C", "mb/can1/raw/123"]);
  });

  test("-mqtt-tx: <prefix>/<bus>/tx sends on that bus only; <prefix>/tx on the first bus", async () => {
    tb = await startTwoBuses({ mqttUrl: broker.url, mqttPrefix: "mt", mqttRaw: false, mqttTx: true });
    const t = tb;
    const on: string[][] = [[], []];
    t.backends.forEach((b, i) => b.observe((f) => on[i]!.push(frameText([f])[0]!)));
    const sub = await MqttSub.start(broker.port, "mt/availability");
    subs.push(sub);
    consumers = createConsumers(t.config, t.log, { mqttBackoff: { initialMs: 50, maxMs: 400 } });
    await consumers.start(t.gateway);
    await sub.waitTopic("mt/availability", 5000, (m) => m.payload === "online");
    await Bun.sleep(200); // subscribed to the command topics
    expect(await mqttPub(broker.port, "mt/can1/tx", "321#AA")).toBe(0);
    expect(await mqttPub(broker.port, "mt/can0/tx", "100#01")).toBe(0);
    expect(await mqttPub(broker.port, "mt/tx", "101#02")).toBe(0);
    await waitFor(() => on[0]!.length === 2 && on[1]!.length === 1, 3000, "frames on their buses");
    await Bun.sleep(100);
    expect(on).toEqual([["100#01", "101#02"], ["321#AA"]]);
  });
});
