/**
 * The Ampio M-SERV topic tree (-mqtt-ampio) against a real Mosquitto, with mosquitto_sub /
 * mosquitto_pub as the independent client: aioampio's byte vectors and the demo log as the exact
 * topics and payloads docs/ampio.md specifies, retained state for a late subscriber, the inventory
 * and description answers in the shapes the real clients accept, commands on every command topic
 * as the exact CAN bytes aioampio sends for the same action, refusals counted and logged, and a
 * gateway restart that leaves no silent module looking alive. (The real client, Ampio's Node-RED
 * nodes, is not on the npm registry, so it cannot run here: docs/ampio.md.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CanFrame, dataFrame, formatFrame, parseFrame } from "../../src/can/frame.ts";
import { bridgeOf, type ConsumerGateway, Mosquitto, mqttPub, MqttSub, startConsumerGateway, waitFor } from "./harness.ts";

const M = 0x1d4c; // MAC "1D4C"
const f = (id: number, hex: string): CanFrame => dataFrame(id, Buffer.from(hex.replaceAll(" ", ""), "hex"), true);

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

async function gateway(extra: Parameters<typeof startConsumerGateway>[0] = {}): Promise<ConsumerGateway> {
  const gw = await startConsumerGateway({ mqttUrl: broker.url, mqttPrefix: "cs", mqttAmpio: true, mqttRaw: false, ...extra });
  cleanup.push(() => gw.stop());
  await waitFor(() => bridgeOf(gw).connected, 5000, "bridge connected");
  return gw;
}
async function sub(topic: string): Promise<MqttSub> {
  const s = await MqttSub.start(broker.port, topic);
  cleanup.push(() => s.stop());
  return s;
}
/** Clears every retained message under ampio/ (tests share one broker). */
async function clearTree(): Promise<void> {
  const s = await MqttSub.start(broker.port, "ampio/#");
  await Bun.sleep(200);
  await s.stop();
  for (const t of new Set(s.messages.filter((m) => m.retained).map((m) => m.topic))) await mqttPub(broker.port, t, null, ["-r"]);
}
function last(s: MqttSub, topic: string): string | undefined {
  return s.on(topic).at(-1)?.payload;
}

describe("state from the bus (aioampio's byte vectors)", () => {
  test("each vector lands on the documented topic with the documented payload, retained", async () => {
    await clearTree();
    const gw = await gateway();
    const live = await sub("ampio/from/#");
    const vectors = [
      "FE 06 D9 04 B5 04 00 00", // t/1 24.1
      "FE 0C 01 02 03 10 11 12", // au/1..6
      "FE 1B 00 00 01 40 05 5A", // i/1..48
      "FE 1E 00 00 01 40 05 5A", // o/1..48
      "FE 80 00 00 01 40 05 5A", // f/1..32
      "FE 49 07 08 09 0A", // rgbw/1
      "FE C9 E1 04 B0 04 33 05", // heating zone 1: rs/1, rm/1
      "FE 44 2C 00 D6 03 72 00", // au16/1..3
      "FE 19 F0 00 FF 00 FF 00", // armed/1..8
      "FE 4F 39 82", // diagnostics b/4F
      "10 EF 07", // SATEL response: not part of the tree
      "FE 2B 01 02 03", // an event
    ];
    for (const v of vectors) gw.backend.inject(f(M, v));
    await live.waitTopic("ampio/from/1D4C/state/armed/8");
    await live.waitTopic("ampio/from/1D4C/event");

    const late = await sub("ampio/from/1D4C/#"); // retained: the whole module at once
    await late.waitTopic("ampio/from/1D4C/state/armed/8");
    await Bun.sleep(200);
    const state = new Map(late.messages.map((m) => [m.topic, m]));
    for (const m of late.messages) expect(m.retained).toBe(true);
    const ones = (type: string, n: number, on: number[]): void => {
      for (let i = 1; i <= n; i++) expect([i, state.get(`ampio/from/1D4C/state/${type}/${i}`)?.payload]).toEqual([i, on.includes(i) ? "1" : "0"]);
    };
    expect(state.get("ampio/from/1D4C/state/t/1")?.payload).toBe("24.1");
    expect([1, 2, 3, 4, 5, 6].map((i) => state.get(`ampio/from/1D4C/state/au/${i}`)?.payload)).toEqual(["1", "2", "3", "16", "17", "18"]);
    // 00 00 01 40 05 5A: bit 0 of byte 2 (17), bit 6 of byte 3 (31), bits 0,2 of byte 4 (33, 35), bits 1,3,4,6 of byte 5 (42, 44, 45, 47)
    ones("i", 48, [17, 31, 33, 35, 42, 44, 45, 47]);
    ones("o", 48, [17, 31, 33, 35, 42, 44, 45, 47]);
    ones("f", 32, [17, 31]);
    expect(state.get("ampio/from/1D4C/state/rgbw/1")?.payload).toBe("7,8,9,10");
    expect(state.get("ampio/from/1D4C/state/rs/1")?.payload).toBe("17.6");
    expect(state.get("ampio/from/1D4C/state/rm/1")?.payload).toBe("0");
    expect([1, 2, 3].map((i) => state.get(`ampio/from/1D4C/state/au16/${i}`)?.payload)).toEqual(["44", "982", "114"]);
    ones("armed", 8, [5, 6, 7, 8]);
    expect(state.get("ampio/from/1D4C/availability")?.payload).toBe("online");
    // Not retained: diagnostics and events are messages, not state.
    expect(state.has("ampio/from/1D4C/b/4F")).toBe(false);
    expect(state.has("ampio/from/1D4C/event")).toBe(false);
    expect(JSON.parse(last(live, "ampio/from/1D4C/b/4F")!)).toEqual({ d: [254, 79, 0x39, 0x82], m: M });
    expect(last(live, "ampio/from/1D4C/event")).toBe("FE2B010203");
    // Nothing of the SATEL response, nothing under other spellings of the MAC.
    expect(late.messages.every((m) => m.topic.startsWith("ampio/from/1D4C/"))).toBe(true);
    const types = new Set(late.messages.map((m) => m.topic.split("/")[4]).filter((t) => t !== undefined));
    expect([...types].sort()).toEqual(["armed", "au", "au16", "f", "i", "o", "rgbw", "rm", "rs", "t"]);
  });

  test("the demo log: a late subscriber gets each module's current state", async () => {
    await clearTree();
    const gw = await gateway();
    const log = readFileSync(join(import.meta.dir, "../../demo/ampio-demo.log"), "utf8");
    for (const line of log.split("\n")) {
      const m = /^\(\S+\) \S+ (\S+)$/.exec(line.trim());
      if (m) gw.backend.inject(parseFrame(m[1]!));
    }
    await waitFor(() => gw.consumers.decoder!.counters().processed > 1300, 5000, "the log decoded");
    const late = await sub("ampio/from/#");
    await late.waitTopic("ampio/from/3C02/state/rgbw/1");
    await Bun.sleep(300);
    const get = (t: string): string | undefined => late.on(t).at(-1)?.payload;
    // The last frame of each module in demo/ampio-demo.log, decoded by hand:
    expect(get("ampio/from/1D4C/state/t/1")).toBe("21.4"); // 1D4C#FE06BE04: 0x04BE = 1214 → 21.4
    expect(get("ampio/from/3C02/state/rgbw/1")).toBe("179,104,44,0"); // 3C02#FE49B3682C00
    expect(get("ampio/from/B0A/state/au/1")).toBe("241"); // B0A#FE0CF1D300000000
    expect(get("ampio/from/B0A/state/au/2")).toBe("211");
    // B07#FE1ECF000000: CF = outputs 1-4, 7, 8 on
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => get(`ampio/from/B07/state/o/${i}`))).toEqual(["1", "1", "1", "1", "0", "0", "1", "1", "0"]);
    // 2A31#FE1BAE0000000000: AE = inputs 2, 3, 4, 6, 8
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((i) => get(`ampio/from/2A31/state/i/${i}`))).toEqual(["0", "1", "1", "1", "0", "1", "0", "1"]);
    // Commands in the log (0F000000#…) are not modules.
    expect(late.messages.some((m) => m.topic.startsWith("ampio/from/F000000/"))).toBe(false);
  });
});

describe("inventory and descriptions", () => {
  test("dev/list answers {devices:[…]} with only the keys real clients accept; description from the names file", async () => {
    await clearTree();
    const dir = mkdtempSync(join(tmpdir(), "can-server-names-"));
    const names = join(dir, "house.toml");
    writeFileSync(names, `[[module]]\nid = "1D4C"\nname = "Salon"\nroom = "Parter"\ntype = 4\n[module.channels]\n"bout.1" = "Sufit"\n"bin.2" = "Drzwi"\n`);
    const gw = await gateway({ ampioNames: names });
    gw.backend.inject(f(M, "FE 1E 05"));
    gw.backend.inject(f(M, "FE 1B 02 00"));
    gw.backend.inject(f(0x2a31, "FE 06 D9 04"));
    await waitFor(() => gw.consumers.decoder!.inventory.size === 2, 5000, "two modules");
    const answers = await sub("ampio/from/+/#");
    expect(await mqttPub(broker.port, "ampio/to/can/dev/list", "")).toBe(0);
    const list = JSON.parse((await answers.waitTopic("ampio/from/can/dev/list", 2000)).payload) as { devices: Record<string, unknown>[] };
    expect(Object.keys(list)).toEqual(["devices"]);
    expect(list.devices.length).toBe(2);
    const keys = ["user_mac", "mac", "typ", "pcb", "soft_ver", "protocol", "date_prod", "i", "o", "a", "au", "t", "f", "name"];
    for (const d of list.devices) expect(Object.keys(d).sort()).toEqual([...keys].sort());
    const salon = list.devices.find((d) => d.user_mac === "1D4C")!;
    expect(salon).toMatchObject({ mac: "1D4C", typ: 4, i: 16, o: 8 });
    expect(Buffer.from(salon.name as string, "base64").toString()).toBe("Salon");
    const other = list.devices.find((d) => d.user_mac === "2A31")!;
    expect(other).toMatchObject({ typ: 0, t: 1, name: "" });

    expect(await mqttPub(broker.port, "ampio/to/1D4C/description", "")).toBe(0);
    const desc = JSON.parse((await answers.waitTopic("ampio/from/1D4C/description", 2000)).payload) as { s: number; d: { t: number; n: number; d: string }[] };
    expect(desc.s).toBe(1);
    expect(desc.d.map((x) => ({ ...x, d: Buffer.from(x.d, "base64").toString() }))).toEqual([
      { t: 12, n: 0, d: "o:Sufit" },
      { t: 1, n: 1, d: "i:Drzwi" },
    ]);
    // A module without names answers an empty list (ampio-hacc waits for every module's answer).
    expect(await mqttPub(broker.port, "ampio/to/2A31/description", "")).toBe(0);
    expect(JSON.parse((await answers.waitTopic("ampio/from/2A31/description", 2000)).payload)).toEqual({ s: 1, d: [] });
    // The API carries the names too.
    const api = (await gw.consumers.decoder!.httpRoute()(new Request("http://x/api/ampio/modules")).json()) as { modules: { idHex: string; name?: string; room?: string; values: { name: string; label?: string }[] }[] };
    const m = api.modules.find((x) => x.idHex === "00001D4C")!;
    expect(m).toMatchObject({ name: "Salon", room: "Parter" });
    expect(m.values.find((v) => v.name === "bout.1")?.label).toBe("Sufit");
  });
});

describe("commands (-mqtt-tx): the exact CAN bytes aioampio sends", () => {
  test("o, f, rgbw and raw topics; refusals counted and logged", async () => {
    await clearTree();
    const dir = mkdtempSync(join(tmpdir(), "can-server-names-"));
    const names = join(dir, "house.toml");
    writeFileSync(names, `[[module]]\nid = "B07"\n[module.channels]\n"bout.4" = { name = "Roleta", kind = "cover" }\n\n[[module]]\nid = "3C02"\n`);
    const gw = await gateway({ mqttTx: true, ampioNames: names });
    gw.backend.inject(f(M, "FE 1E 00")); // 1D4C: binary outputs (relays)
    gw.backend.inject(f(0x0b0a, "FE 0C 00 00")); // B0A: analog outputs (dimmers)
    await waitFor(() => gw.consumers.decoder!.inventory.size === 2, 5000, "modules heard");
    const onBus: string[] = [];
    cleanup.push(gw.backend.observe((fr) => onBus.push(formatFrame(fr))));
    const send = async (topic: string, payload: string, n: number): Promise<string[]> => {
      const before = onBus.length;
      expect(await mqttPub(broker.port, topic, payload)).toBe(0);
      await waitFor(() => onBus.length >= before + n, 5000, `${n} frames for ${topic}`);
      await Bun.sleep(50);
      return onBus.slice(before);
    };
    expect(await send("ampio/to/1D4C/o/3/cmd", "1", 1)).toEqual(["0F000000#00001D4C15FF02"]);
    expect(await send("ampio/to/1d4c/o/3/cmd", "0", 1)).toEqual(["0F000000#00001D4C150002"]); // lower case MAC
    expect(await send("ampio/to/B0A/o/2/cmd", "1", 1)).toEqual(["0F000000#00000B0A15010100"]); // a dimmer: 1 is a level
    expect(await send("ampio/to/1D4C/o/1/cmd", "200", 1)).toEqual(["0F000000#00001D4C15C80000"]);
    expect(await send("ampio/to/B07/o/4/cmd", "2", 3)).toEqual(["0F000000#00000B071600022F", "0F000000#00000B07160131F9", "0F000000#00000B0716020203"]); // cover open
    expect(await send("ampio/to/1D4C/f/3/cmd", "1", 3)).toEqual(["0F000000#00001D4C1600022B", "0F000000#00001D4C16012FF9", "0F000000#00001D4C16020102"]);
    expect(await send("ampio/to/3C02/rgbw/1/cmd", "255,16,0", 3)).toEqual(["0F000000#00003C0215FF00", "0F000000#00003C02151001", "0F000000#00003C02150002"]);
    expect(await send("ampio/to/3C02/rgbw/1/cmd", "off", 4)).toEqual(["0F000000#00003C02150000", "0F000000#00003C02150001", "0F000000#00003C02150002", "0F000000#00003C02150003"]);
    expect(await send("ampio/to/1D4C/raw", "7AF9c801", 3)).toEqual(["0F000000#00001D4C1600023C", "0F000000#00001D4C16017AF9", "0F000000#00001D4C1602C801"]);
    const b = bridgeOf(gw);
    const sentBefore = b.txSent;

    // Refusals: malformed payloads, unknown modules, unconfirmed command types, retained commands.
    const refusals: [string, string, string[], string][] = [
      ["ampio/to/1D4C/o/3/cmd", "on", [], "malformed"],
      ["ampio/to/1D4C/o/0/cmd", "1", [], "malformed"],
      ["ampio/to/1D4C/raw", "7AF", [], "malformed"],
      ["ampio/to/1D4C/rgbw/1/cmd", "1,2", [], "malformed"],
      ["ampio/to/ABCDE/o/1/cmd", "1", [], "unknown_module"],
      ["ampio/to/1D4C/rs/1/cmd", "21.5", [], "undocumented"],
      ["ampio/to/1D4C/rm/1/cmd", "2", [], "undocumented"],
      ["ampio/to/1D4C/o/1/cmd", "1", ["-r"], "retained"],
    ];
    for (const [topic, payload, extra] of refusals) expect(await mqttPub(broker.port, topic, payload, extra)).toBe(0);
    await waitFor(() => b.txRefusals().get("retained") === 1, 5000, "the refusals");
    await Bun.sleep(100);
    expect(b.txRefusals().get("malformed")).toBe(4);
    expect(b.txRefusals().get("unknown_module")).toBe(1);
    expect(b.txRefusals().get("undocumented")).toBe(2);
    expect(b.txSent).toBe(sentBefore);
    const logged = gw.events().filter((e) => e.msg === "mqtt_tx_refused");
    expect(logged.map((e) => e.reason).sort()).toEqual(["malformed", "retained", "undocumented", "unknown_module"]);
    expect(logged.find((e) => e.reason === "unknown_module")?.topic).toBe("ampio/to/ABCDE/o/1/cmd");
    await mqttPub(broker.port, "ampio/to/1D4C/o/1/cmd", null, ["-r"]);
  });

  test("a broker outside -tx-allow: commands refused as read_only (counted), nothing on the bus", async () => {
    await clearTree();
    const gw = await gateway({ mqttTx: true, txAllow: ["10.0.0.0/8"] });
    gw.backend.inject(f(M, "FE 1E 00"));
    await waitFor(() => gw.consumers.decoder!.inventory.size === 1, 5000, "module heard");
    const onBus: CanFrame[] = [];
    cleanup.push(gw.backend.observe((fr) => onBus.push(fr)));
    expect(await mqttPub(broker.port, "ampio/to/1D4C/o/1/cmd", "1")).toBe(0);
    const b = bridgeOf(gw);
    await waitFor(() => (b.txRefusals().get("read_only") ?? 0) === 1, 5000, "read_only refusal");
    expect(onBus.length).toBe(0);
    expect(gw.events().some((e) => e.msg === "mqtt_tx_read_only")).toBe(true);
  });

  test("without -mqtt-tx, commands are refused (tx_off) but the inventory is answered", async () => {
    await clearTree();
    const gw = await gateway();
    gw.backend.inject(f(M, "FE 1E 00"));
    await waitFor(() => gw.consumers.decoder!.inventory.size === 1, 5000, "module heard");
    const answers = await sub("ampio/from/can/dev/list");
    expect(await mqttPub(broker.port, "ampio/to/1D4C/o/1/cmd", "1")).toBe(0);
    expect(await mqttPub(broker.port, "ampio/to/can/dev/list", "1")).toBe(0);
    await answers.waitTopic("ampio/from/can/dev/list", 2000);
    await waitFor(() => bridgeOf(gw).txRefusals().get("tx_off") === 1, 5000, "tx_off refusal");
  });
});

describe("restarts", () => {
  test("gateway restart: a module that stays silent is marked offline; broker restart: the tree is published again", async () => {
    await clearTree();
    const gw1 = await gateway();
    gw1.backend.inject(f(M, "FE 06 D9 04"));
    gw1.backend.inject(f(0x2a31, "FE 06 D9 04"));
    const s = await sub("ampio/from/+/availability");
    await s.waitTopic("ampio/from/2A31/availability", 5000, (m) => m.payload === "online");
    await gw1.stop();
    const gw2 = await gateway();
    gw2.backend.inject(f(M, "FE 06 DA 04")); // 1D4C speaks again; 2A31 does not
    await s.waitTopic("ampio/from/2A31/availability", 5000, (m) => m.payload === "offline");
    const late = await sub("ampio/from/#");
    await late.waitTopic("ampio/from/2A31/availability", 5000, (m) => m.payload === "offline" && m.retained);
    expect((await late.waitTopic("ampio/from/1D4C/availability")).payload).toBe("online");
    expect((await late.waitTopic("ampio/from/1D4C/state/t/1")).payload).toBe("24.2");

    // The broker restarts with an empty store (persistence off): the bridge publishes the tree again.
    await broker.kill();
    await broker.start();
    await waitFor(() => bridgeOf(gw2).counters().reconnects >= 1 && bridgeOf(gw2).connected, 10_000, "reconnected");
    const after = await sub("ampio/from/1D4C/#");
    expect((await after.waitTopic("ampio/from/1D4C/state/t/1", 5000)).payload).toBe("24.2");
    expect((await after.waitTopic("ampio/from/1D4C/availability")).payload).toBe("online");
  });
});
