/**
 * The MQTT bridge against a real Mosquitto broker, with mosquitto_sub / mosquitto_pub as the
 * independent client: documented topics and payloads, retained states, Home Assistant
 * discovery, commands to the bus (and to a cannelloni client), refusals counted, broker killed
 * and restarted mid-stream, a frozen broker that must not slow TCP clients, bad credentials.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { RAW_OUTBOX_FRAMES } from "../../src/consumers/mqtt/bridge.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { bridgeOf, type ConsumerGateway, Mosquitto, mqttPub, MqttSub, startConsumerGateway, waitFor } from "./harness.ts";

const MODULE = 0x00001d4c;
/** FE 06: temperature.1 = (0x04D7 − 1000) / 10 = 23.9 °C. */
const TEMPERATURE = dataFrame(MODULE, [0xfe, 0x06, 0xd7, 0x04], true);
/** FE 4F: diagnostics: supply 0x7B × 0.2 = 24.6 V, module 0x82 − 100 = 30 °C. */
const DIAGNOSTICS = dataFrame(MODULE, [0xfe, 0x4f, 0x7b, 0x82], true);

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

async function gatewayWith(prefix: string, extra: Parameters<typeof startConsumerGateway>[0] = {}, b: Mosquitto = broker): Promise<ConsumerGateway> {
  const gw = await startConsumerGateway({ mqttUrl: b.url, mqttPrefix: prefix, ...extra });
  cleanup.push(() => gw.stop());
  return gw;
}

async function sub(topic: string, port = broker.port): Promise<MqttSub> {
  const s = await MqttSub.start(port, topic);
  cleanup.push(() => s.stop());
  return s;
}

async function connected(gw: ConsumerGateway): Promise<void> {
  await waitFor(() => bridgeOf(gw).connected, 5000, "bridge connected");
}

describe("publishing", () => {
  test("raw frames, decoded states, module and gateway availability arrive on the documented topics", async () => {
    const s = await sub("t1/#");
    const gw = await gatewayWith("t1");
    await s.waitTopic("t1/availability", 5000, (m) => m.payload === "online");
    const before = Date.now();
    gw.backend.inject(TEMPERATURE);
    gw.backend.inject(dataFrame(0x123, [0xde, 0xad])); // standard id: raw only
    const raw = await s.waitTopic("t1/raw/00001D4C");
    const j = JSON.parse(raw.payload) as Record<string, unknown>;
    expect(j).toEqual({ ts: j.ts, id: MODULE, ext: true, len: 4, data: "FE06D704" });
    expect(typeof j.ts).toBe("number");
    expect(j.ts as number).toBeGreaterThanOrEqual(before);
    expect(raw.retained).toBe(false);
    const std = await s.waitTopic("t1/raw/123");
    expect(JSON.parse(std.payload)).toMatchObject({ id: 0x123, ext: false, len: 2, data: "DEAD" });
    expect((await s.waitTopic("t1/ampio/00001D4C/temperature/1")).payload).toBe("23.9");
    expect((await s.waitTopic("t1/ampio/00001D4C/availability")).payload).toBe("online");

    // Retained: a subscriber that comes later gets the current picture from the broker.
    const late = await sub("t1/ampio/#");
    const t = await late.waitTopic("t1/ampio/00001D4C/temperature/1");
    expect(t).toEqual({ topic: "t1/ampio/00001D4C/temperature/1", payload: "23.9", retained: true });
    expect((await late.waitTopic("t1/ampio/00001D4C/availability")).retained).toBe(true);
    expect(late.messages.some((m) => m.topic.includes("/raw/"))).toBe(false);
  });

  test("a value is published again only when it changes", async () => {
    const s = await sub("t2/ampio/+/temperature/1");
    const gw = await gatewayWith("t2");
    await connected(gw);
    gw.backend.inject(TEMPERATURE);
    await s.waitTopic("t2/ampio/00001D4C/temperature/1", 5000, (m) => m.payload === "23.9");
    for (let i = 0; i < 5; i++) {
      gw.backend.inject(TEMPERATURE);
      await Bun.sleep(10);
    }
    gw.backend.inject(dataFrame(MODULE, [0xfe, 0x06, 0xe1, 0x04], true)); // 24.9
    await s.waitTopic("t2/ampio/00001D4C/temperature/1", 5000, (m) => m.payload === "24.9");
    await Bun.sleep(100);
    expect(s.messages.map((m) => m.payload)).toEqual(["23.9", "24.9"]);
  });

  test("Home Assistant discovery for temperatures and diagnostics", async () => {
    const s = await sub("homeassistant/sensor/#");
    const gw = await gatewayWith("t3", { mqttHaDiscovery: true });
    await connected(gw);
    gw.backend.inject(DIAGNOSTICS);
    gw.backend.inject(dataFrame(MODULE, [0xfe, 0x0f, 0x01], true)); // binout: no discovery
    const v = await s.waitTopic("homeassistant/sensor/can_server_t3_00001d4c/diagnostics_voltage/config");
    expect(v.retained).toBe(false); // live delivery to a subscriber carries no retain flag
    const doc = JSON.parse(v.payload) as Record<string, unknown>;
    expect(doc).toMatchObject({
      state_topic: "t3/ampio/00001D4C/diagnostics/voltage",
      unit_of_measurement: "V",
      device_class: "voltage",
      unique_id: "can_server_t3_00001d4c_diagnostics_voltage",
      availability: [{ topic: "t3/availability" }, { topic: "t3/ampio/00001D4C/availability" }],
    });
    expect(doc.object_id).toBeUndefined(); // deprecated since Home Assistant 2025.10
    expect((doc.device as Record<string, unknown>).via_device).toBe("can_server_t3");
    const temp = await s.waitTopic("homeassistant/sensor/can_server_t3_00001d4c/diagnostics_temperature/config");
    expect(JSON.parse(temp.payload)).toMatchObject({ device_class: "temperature", unit_of_measurement: "°C" });
    await Bun.sleep(100);
    expect(s.messages.length).toBe(2);
    // The state topic the discovery names carries the value.
    const st = await sub("t3/ampio/00001D4C/diagnostics/#");
    expect((await st.waitTopic("t3/ampio/00001D4C/diagnostics/voltage")).payload).toBe("24.6");
    expect((await st.waitTopic("t3/ampio/00001D4C/diagnostics/temperature")).payload).toBe("30");
  });

  test("discovery announces the gateway device that via_device names; a heating zone's difference is a temperature_delta", async () => {
    const s = await sub("homeassistant/#");
    const gw = await gatewayWith("t5", { mqttHaDiscovery: true });
    await connected(gw);
    const g = await s.waitTopic("homeassistant/binary_sensor/can_server_t5/connectivity/config");
    const gdoc = JSON.parse(g.payload) as { device: { identifiers: string[] }; state_topic: string; device_class: string };
    expect(gdoc.device.identifiers).toEqual(["can_server_t5"]);
    expect(gdoc).toMatchObject({ state_topic: "t5/availability", device_class: "connectivity", payload_on: "online", payload_off: "offline" });
    // aioampio's heating-zone vector: current 22.5, target 17.6, difference (0x33 − 100) / 10 = −4.9.
    gw.backend.inject(dataFrame(MODULE, [0xfe, 0xc9, 0xe1, 0x04, 0xb0, 0x04, 0x33, 0x05], true));
    const diff = JSON.parse((await s.waitTopic("homeassistant/sensor/can_server_t5_00001d4c/heating_1_temperature_diff/config")).payload) as Record<string, unknown>;
    expect(diff).toMatchObject({ device_class: "temperature_delta", unit_of_measurement: "°C", state_topic: "t5/ampio/00001D4C/heating/1/temperature_diff" });
    const cur = JSON.parse((await s.waitTopic("homeassistant/sensor/can_server_t5_00001d4c/heating_1_current_temperature/config")).payload) as Record<string, unknown>;
    expect(cur.device_class).toBe("temperature");
    for (const m of s.messages) expect(JSON.parse(m.payload).object_id).toBeUndefined();
  });

  test("with a names file, discovery carries the module's name, room and the value's name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "can-server-names-"));
    const names = join(dir, "house.yaml");
    writeFileSync(names, "devices:\n  - can_id: 0x1d4c\n    name: Boiler room\n    area: Basement\n    sensors:\n      - id: s1\n        name: Supply voltage\n        states: [diagnostics.voltage]\n");
    const s = await sub("homeassistant/sensor/can_server_t8_00001d4c/#");
    const gw = await gatewayWith("t8", { mqttHaDiscovery: true, ampioNames: names });
    await connected(gw);
    gw.backend.inject(DIAGNOSTICS);
    const v = JSON.parse((await s.waitTopic("homeassistant/sensor/can_server_t8_00001d4c/diagnostics_voltage/config")).payload) as { name: string; device: Record<string, unknown> };
    expect(v.name).toBe("Supply voltage");
    expect(v.device).toMatchObject({ name: "Boiler room", suggested_area: "Basement", via_device: "can_server_t8" });
    const t = JSON.parse((await s.waitTopic("homeassistant/sensor/can_server_t8_00001d4c/diagnostics_temperature/config")).payload) as { name: string };
    expect(t.name).toBe("diagnostics temperature"); // not named in the file: its id
  });

  test("a client's frames never create modules, states or Home Assistant devices (only modules on the bus do)", async () => {
    const gw = await gatewayWith("t6", { mqttHaDiscovery: true });
    await connected(gw);
    const s = await sub("homeassistant/sensor/#");
    const st = await sub("t6/ampio/#");
    const client = await CannelloniTestClient.connect(gw.gateway.port("cannelloni")!, { helloFirst: true });
    cleanup.push(() => client.close());
    await client.handshake({ helloFirst: true });
    const onBus: CanFrame[] = [];
    cleanup.push(gw.backend.observe((f) => onBus.push(f)));
    // A forged diagnostics broadcast from a made-up module id, sent by a client with TX rights.
    client.send(dataFrame(0x1badcafe, [0xfe, 0x4f, 0x7b, 0x82], true));
    await waitFor(() => onBus.length === 1, 5000, "the client frame on the bus");
    gw.backend.inject(DIAGNOSTICS); // a real module
    await s.waitTopic("homeassistant/sensor/can_server_t6_00001d4c/diagnostics_voltage/config");
    await Bun.sleep(200);
    expect(s.messages.some((m) => m.topic.includes("1badcafe"))).toBe(false);
    expect(st.messages.some((m) => m.topic.includes("1BADCAFE"))).toBe(false);
    expect(gw.consumers.decoder!.inventory.has(0x1badcafe)).toBe(false);
  });

  test("after a gateway restart, a module that stays silent does not keep its retained online", async () => {
    const gw1 = await gatewayWith("t7");
    await connected(gw1);
    gw1.backend.inject(TEMPERATURE);
    gw1.backend.inject(dataFrame(0x00001d51, [0xfe, 0x06, 0xd7, 0x04], true));
    const s1 = await sub("t7/ampio/+/availability");
    await s1.waitTopic("t7/ampio/00001D4C/availability", 5000, (m) => m.payload === "online");
    await s1.waitTopic("t7/ampio/00001D51/availability", 5000, (m) => m.payload === "online");
    await gw1.stop(); // (a crash would leave the same retained "online")
    const gw2 = await gatewayWith("t7");
    gw2.backend.inject(TEMPERATURE); // 1D4C speaks again; 1D51 stays silent
    await connected(gw2);
    // (1D4C may be marked offline too if the retained message beats its frame through the decoder; its frame then wins.)
    await waitFor(() => bridgeOf(gw2).counters().staleAvailabilityCleared >= 1, 5000, "the silent module marked offline");
    const late = await sub("t7/ampio/+/availability");
    await late.waitTopic("t7/ampio/00001D51/availability", 5000, (m) => m.payload === "offline" && m.retained);
    await late.waitTopic("t7/ampio/00001D4C/availability", 5000, (m) => m.payload === "online");
    await Bun.sleep(100);
    expect(late.on("t7/ampio/00001D4C/availability").at(-1)?.payload).toBe("online");
    expect(gw2.events().some((e) => e.msg === "mqtt_stale_availability")).toBe(true);
  });

  test("a clean shutdown publishes offline (retained)", async () => {
    const gw = await gatewayWith("t4");
    await connected(gw);
    const s = await sub("t4/availability");
    await s.waitTopic("t4/availability", 5000, (m) => m.payload === "online");
    await gw.stop();
    await s.waitTopic("t4/availability", 5000, (m) => m.payload === "offline");
  });
});

describe("commands (-mqtt-tx)", () => {
  test("frames published on the command topic reach the bus and a cannelloni client; refusals are counted", async () => {
    const gw = await gatewayWith("c1", { mqttTx: true });
    await connected(gw);
    const onBus: CanFrame[] = [];
    cleanup.push(gw.backend.observe((f) => onBus.push(f)));
    const client = await CannelloniTestClient.connect(gw.gateway.port("cannelloni")!, { helloFirst: true });
    cleanup.push(() => client.close());
    await client.handshake({ helloFirst: true });
    const raw = await sub("c1/raw/#");
    await Bun.sleep(50);

    expect(await mqttPub(broker.port, "c1/tx", "0F000000#00001D4C0101")).toBe(0);
    expect(await mqttPub(broker.port, "c1/tx", '{"id":"1D4C","ext":true,"data":"FE0601"}')).toBe(0);
    const got = await client.waitFrames(2);
    expect(got.map((f) => [f.canId, Array.from(f.data)])).toEqual([
      [(0x0f000000 | 0x80000000) >>> 0, [0x00, 0x00, 0x1d, 0x4c, 0x01, 0x01]],
      [(MODULE | 0x80000000) >>> 0, [0xfe, 0x06, 0x01]],
    ]);
    expect(onBus.length).toBe(2);
    // Once on the bus, the bridge's own commands show on the raw topics too.
    expect(JSON.parse((await raw.waitTopic("c1/raw/0F000000")).payload)).toMatchObject({ data: "00001D4C0101" });

    const b = bridgeOf(gw);
    expect(await mqttPub(broker.port, "c1/tx", "not a frame")).toBe(0);
    expect(await mqttPub(broker.port, "c1/tx", '{"id":4096,"ext":false,"data":"00"}')).toBe(0);
    await waitFor(() => b.counters().txReceived === 4, 5000, "four command messages");
    expect(b.txRefusals().get("malformed")).toBe(2);
    expect(b.txSent).toBe(2);
    expect(onBus.length).toBe(2);
    expect(gw.events().filter((e) => e.msg === "mqtt_tx_refused").map((e) => e.reason)).toEqual(["malformed"]);

    // A retained command is refused whenever it arrives: live, while the bridge is connected (MQTT 5
    // "retain as published" keeps the flag), and from the broker's store after a (re)subscribe.
    expect(await mqttPub(broker.port, "c1/tx", "123#00", ["-r"])).toBe(0);
    await waitFor(() => b.counters().txReceived === 5, 5000, "the live retained command");
    expect(b.txRefusals().get("retained")).toBe(1);
    expect(b.txSent).toBe(2);
    expect(onBus.length).toBe(2);
    expect(gw.events().filter((e) => e.msg === "mqtt_tx_refused").map((e) => e.reason)).toEqual(["malformed", "retained"]);
    const gw2 = await gatewayWith("c1", { mqttTx: true });
    const onBus2: CanFrame[] = [];
    cleanup.push(gw2.backend.observe((f) => onBus2.push(f)));
    const b2 = bridgeOf(gw2);
    await waitFor(() => b2.counters().txReceived === 1, 5000, "the stored retained command");
    expect(b2.txRefusals().get("retained")).toBe(1);
    expect(b2.txSent).toBe(0);
    expect(onBus2.length).toBe(0);
    expect(gw2.events().some((e) => e.msg === "mqtt_tx_refused" && e.reason === "retained")).toBe(true);
    // A normal command after the refused ones still goes through.
    expect(await mqttPub(broker.port, "c1/tx", "124#01")).toBe(0);
    await waitFor(() => b.txSent === 3, 5000, "a normal command after the retained one");
    expect(await mqttPub(broker.port, "c1/tx", null, ["-r"])).toBe(0); // clear the stored one
  });

  test("the command topic shares the TCP clients' rate limit: a burst over it is shaped (queued), not dropped", async () => {
    const gw = await gatewayWith("c2", { mqttTx: true, clientTxRate: 20, clientTxBurst: 2 });
    await connected(gw);
    const onBus: { frame: CanFrame; at: number }[] = [];
    cleanup.push(gw.backend.observe((f) => onBus.push({ frame: f, at: performance.now() })));
    // One mosquitto_pub, five messages in a burst (-l: one per line of stdin).
    const p = Bun.spawn(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(broker.port), "-t", "c2/tx", "-l"], { stdin: "pipe" });
    p.stdin.write("100#01\n100#02\n100#03\n100#04\n100#05\n");
    await p.stdin.end();
    await p.exited;
    const b = bridgeOf(gw);
    await waitFor(() => b.counters().txReceived === 5, 5000, "five commands");
    await waitFor(() => onBus.length === 5, 3000, "all five on the bus");
    expect(onBus.map((x) => x.frame.data[0])).toEqual([1, 2, 3, 4, 5]);
    // Two at once (the burst), then 20/s: the last one waited for its token.
    expect(onBus[4]!.at - onBus[0]!.at).toBeGreaterThan(100);
    expect(b.txRefusals().get("rate_limited") ?? 0).toBe(0);
    expect(gw.stats.txDropped.get("rate_limited")).toBe(0);
  });

  test("without -mqtt-tx the command topic is not read", async () => {
    const gw = await gatewayWith("c3");
    await connected(gw);
    const onBus: CanFrame[] = [];
    cleanup.push(gw.backend.observe((f) => onBus.push(f)));
    expect(await mqttPub(broker.port, "c3/tx", "100#01")).toBe(0);
    await Bun.sleep(200);
    expect(onBus.length).toBe(0);
    expect(bridgeOf(gw).counters().txReceived).toBe(0);
  });
});

describe("broker failures", () => {
  test("broker killed and restarted mid-stream: the bridge reconnects, publishes again, drops counted", async () => {
    const own = new Mosquitto();
    cleanup.push(() => own.stop());
    await own.start();
    const gw = await gatewayWith("k1", {}, own);
    await connected(gw);
    const b = bridgeOf(gw);
    const s1 = await MqttSub.start(own.port, "k1/raw/#");
    let n = 0;
    const inject = (count: number): void => {
      for (let i = 0; i < count; i++, n++) gw.backend.inject(dataFrame(0x100000 + (n % 16), [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff], true));
    };
    inject(200);
    await waitFor(() => s1.messages.length >= 200, 5000, "200 frames before the kill");
    await s1.stop();

    await own.kill();
    await waitFor(() => !b.connected, 5000, "bridge notices the broker is gone");
    // More than the outbox holds while the broker is away: the oldest are dropped and counted.
    const during = RAW_OUTBOX_FRAMES + 2500;
    for (let k = 0; k < during; k += 2500) {
      inject(2500);
      await Bun.sleep(5);
    }
    expect(b.drops.get("outbox_full")).toBe(during - RAW_OUTBOX_FRAMES);
    expect(b.rawQueued).toBe(RAW_OUTBOX_FRAMES);

    await own.start();
    await waitFor(() => b.connected, 10_000, "bridge reconnects");
    expect(b.counters().reconnects).toBe(1);
    const s2 = await MqttSub.start(own.port, "k1/raw/#");
    cleanup.push(() => s2.stop());
    const last = n - 1;
    inject(50);
    await waitFor(() => s2.messages.some((m) => (JSON.parse(m.payload) as { data: string }).data === hex3(last + 50)), 10_000, "frames after the restart");
    expect(gw.events().some((e) => e.msg === "mqtt_reconnected")).toBe(true);
    expect(gw.events().some((e) => e.msg === "mqtt_disconnected")).toBe(true);
    // Gateway availability is back to online (the last will said offline while it was away).
    const av = await MqttSub.start(own.port, "k1/availability");
    cleanup.push(() => av.stop());
    expect((await av.waitTopic("k1/availability")).payload).toBe("online");
  }, 30_000);

  test("a frozen broker does not slow a TCP client; the bridge's outbox stays bounded", async () => {
    const own = new Mosquitto();
    cleanup.push(() => own.stop());
    await own.start();
    // The decoder is off here: its own queue would (rightly) drop in 5,000-frame bursts; this is about the bridge.
    const gw = await gatewayWith("f1", { hubBuffer: 200_000, ampioDecode: "false" }, own);
    await connected(gw);
    const client = await CannelloniTestClient.connect(gw.gateway.port("cannelloni")!, { helloFirst: true });
    cleanup.push(() => client.close());
    await client.handshake({ helloFirst: true });
    await Bun.sleep(50);
    own.pause();
    const b = bridgeOf(gw);
    // More than the kernel's socket buffers, the bridge's in-flight window and its outbox hold together.
    const total = 150_000;
    const t0 = performance.now();
    for (let i = 0; i < total; i += 5000) {
      for (let k = 0; k < 5000; k++) gw.backend.inject(dataFrame(0x200000 + ((i + k) % 64), [1, 2, 3, 4, 5, 6, 7, 8], true));
      await Bun.sleep(1);
    }
    await client.waitFrames(total, 10_000);
    const ms = performance.now() - t0;
    expect(client.frames.length).toBe(total);
    expect(ms).toBeLessThan(8000);
    // Nothing the broker cannot take is held beyond the bounds.
    expect(b.rawQueued).toBeLessThanOrEqual(RAW_OUTBOX_FRAMES);
    expect(b.drops.get("outbox_full")!).toBeGreaterThan(0);
    expect(gw.stats.hubDroppedFrames).toBe(0);
    // The queue-full drops are in a metric, not only in the object.
    const prom = await import("prom-client");
    const registry = new prom.Registry();
    b.registerMetrics(registry, prom);
    const text = await registry.metrics();
    expect(text).toContain(`mqtt_dropped_messages_total{reason="outbox_full"} ${b.drops.get("outbox_full")}`);
    expect(text).toMatch(/mqtt_outbox_messages\{kind="raw"\} \d+/);
    own.resume();
  }, 30_000);

  test("a broker that requires a password rejects a wrong one with a clear log line", async () => {
    const secured = new Mosquitto({ users: { gateway: "right-secret" } });
    cleanup.push(() => secured.stop());
    await secured.start();
    const bad = await gatewayWith("p1", { mqttUsername: "gateway", mqttPassword: "wrong-secret" }, secured);
    await waitFor(() => bad.events().some((e) => e.msg === "mqtt_auth_failed"), 5000, "mqtt_auth_failed");
    const line = bad.events().find((e) => e.msg === "mqtt_auth_failed")!;
    expect(String(line.error)).toMatch(/refused the credentials \(Connection refused: (Not authorized|Bad username or password)\)/);
    expect(line.username).toBe("gateway");
    expect(bad.lines.join("\n")).not.toContain("wrong-secret");
    await Bun.sleep(300); // retried with backoff, logged once
    expect(bridgeOf(bad).counters().authFailures).toBeGreaterThan(1);
    expect(bad.events().filter((e) => e.msg === "mqtt_auth_failed").length).toBe(1);
    expect(bridgeOf(bad).connected).toBe(false);

    const good = await gatewayWith("p2", { mqttUsername: "gateway", mqttPassword: "right-secret" }, secured);
    await connected(good);
    expect(good.lines.join("\n")).not.toContain("right-secret");
    // Credentials in the URL work too and are not logged either.
    const inUrl = await gatewayWith("p3", { mqttUrl: secured.url.replace("mqtt://", "mqtt://gateway:right-secret@") }, secured);
    await connected(inUrl);
    expect(inUrl.lines.join("\n")).not.toContain("right-secret");
    expect(inUrl.events().find((e) => e.msg === "mqtt_connected")!.broker).toBe(secured.url);
  }, 20_000);
});

function hex3(n: number): string {
  return [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join("");
}
