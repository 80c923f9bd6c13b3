/**
 * The Ampio decoder consumer on a real gateway: batched decoding off the hot path, drops
 * counted when its queue is full, re-attach after a kick, GET /api/ampio/modules, module
 * online/stale, and state on connect for Waveshare clients (current picture, nothing stale,
 * never commands or events, nothing for other protocols). The default of -ampio-decode.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { ampioDecodeEnabled, DECODER_BATCH } from "../../src/consumers/ampio-decoder.ts";
import type { AmpioDecoder } from "../../src/consumers/ampio-decoder.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { WaveshareTestClient } from "../helpers/waveshare-client.ts";
import { type ConsumerGateway, startConsumerGateway, waitFor } from "./harness.ts";

const A = 0x00001d4c;
const B = 0x00002a31;
const TEMP_A = dataFrame(A, [0xfe, 0x06, 0xd7, 0x04], true); // 23.9 °C
const DIAG_A = dataFrame(A, [0xfe, 0x4f, 0x7b, 0x82], true); // 24.6 V, 30 °C
const BINOUT_B = dataFrame(B, [0xfe, 0x0f, 0x05], true); // binout.1 and .3 on
const COMMAND = dataFrame(0x0f000000, [0x00, 0x00, 0x1d, 0x4c, 0x01, 0x01], true);
const EVENT_B = dataFrame(B, [0xfe, 0x2b, 0x01, 0x02], true);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A clock the test moves. */
function clock(start = 1_800_000_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

async function gw(overrides: Parameters<typeof startConsumerGateway>[0], now?: () => number): Promise<ConsumerGateway> {
  const g = await startConsumerGateway({ ampioDecode: "true", waveshareListen: "127.0.0.1:0", ...overrides }, { now });
  cleanup.push(() => g.stop());
  return g;
}

function decoderOf(g: ConsumerGateway): AmpioDecoder {
  if (g.consumers.decoder === null) throw new Error("decoder off");
  return g.consumers.decoder;
}

async function processed(g: ConsumerGateway, n: number): Promise<void> {
  await waitFor(() => decoderOf(g).counters().processed >= n, 5000, `${n} frames decoded`);
}

const key = (f: CanFrame): string => `${f.canId.toString(16)}:${Array.from(f.data).join(",")}`;

describe("-ampio-decode default", () => {
  test("auto: on with the serial backend, with -mqtt-url or -ampio-state-replay; else off; explicit values win", () => {
    const c = defaultConfig();
    expect(c.ampioDecode).toBe("auto");
    expect(ampioDecodeEnabled({ ...c, backend: "serial" })).toBe(true);
    expect(ampioDecodeEnabled({ ...c, backend: "socketcan" })).toBe(false);
    expect(ampioDecodeEnabled({ ...c, backend: "virtual" })).toBe(false);
    expect(ampioDecodeEnabled({ ...c, backend: "virtual", mqttUrl: "mqtt://127.0.0.1:1" })).toBe(true);
    expect(ampioDecodeEnabled({ ...c, backend: "socketcan", ampioStateReplay: true })).toBe(true);
    expect(ampioDecodeEnabled({ ...c, backend: "serial", ampioDecode: "false" })).toBe(false);
    expect(ampioDecodeEnabled({ ...c, backend: "socketcan", ampioDecode: "true" })).toBe(true);
  });
});

describe("decoding off the hot path", () => {
  test("frames are decoded in batches after the hub returns, into the inventory", async () => {
    const g = await gw({});
    const d = decoderOf(g);
    for (let i = 0; i < 3 * DECODER_BATCH; i++) g.backend.inject(TEMP_A);
    g.backend.inject(COMMAND);
    // Nothing was decoded inside inject(): the hub only queued.
    expect(d.counters().processed).toBe(0);
    expect(d.queued).toBe(3 * DECODER_BATCH + 1);
    await Bun.sleep(0); // one turn: at most one batch
    expect(d.counters().processed).toBeLessThanOrEqual(DECODER_BATCH);
    await processed(g, 3 * DECODER_BATCH + 1);
    const m = d.inventory.module(A, Date.now())!;
    expect(m.frames).toBe(3 * DECODER_BATCH);
    expect(m.values).toEqual([{ name: "temperature.1", value: 23.9, unit: "°C", at: m.values[0]!.at }]);
    expect(d.inventory.counters().commands).toBe(1);
  });

  test("a full queue drops (counted by the hub and the decoder), a TCP client loses nothing", async () => {
    const g = await gw({});
    const d = decoderOf(g);
    const client = await CannelloniTestClient.connect(g.gateway.port("cannelloni")!, { helloFirst: true });
    cleanup.push(() => client.close());
    await client.handshake({ helloFirst: true });
    await Bun.sleep(30);
    const n = 6000; // > DECODER_QUEUE_FRAMES (4096) in one turn
    for (let i = 0; i < n; i++) g.backend.inject(TEMP_A);
    await processed(g, 4096);
    await client.waitFrames(n);
    expect(d.counters().dropped).toBe(n - 4096);
    expect(g.stats.hubDroppedFrames).toBe(n - 4096);
    expect(g.events().filter((e) => e.msg === "client_dropping" && e.protocol === "ampio").length).toBe(1);
  });

  test("with -hub-policy kick the decoder is not lost: it clears its backlog (counted) and re-attaches", async () => {
    const g = await gw({ hubPolicy: "kick" });
    const d = decoderOf(g);
    for (let i = 0; i < 4097; i++) g.backend.inject(TEMP_A);
    expect(d.counters().kicked).toBe(1);
    await waitFor(() => g.gateway.hub.attached.has(d), 2000, "re-attached");
    g.backend.inject(DIAG_A);
    await waitFor(() => d.inventory.module(A, Date.now())?.values.some((v) => v.name === "diagnostics.voltage") === true, 2000, "decoding again");
    expect(d.counters().dropped).toBe(4097); // the refused frame and the 4,096 cleared
  });

  test("GET /api/ampio/modules returns the inventory as JSON", async () => {
    const g = await gw({});
    const d = decoderOf(g);
    g.backend.inject(DIAG_A);
    g.backend.inject(BINOUT_B);
    await processed(g, 2);
    const res = await d.httpRoute()(new Request("http://127.0.0.1/api/ampio/modules"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as { modules: { idHex: string; values: { name: string; value: unknown }[] }[]; decoder: { processed: number } };
    expect(body.modules.map((m) => m.idHex)).toEqual(["00001D4C", "00002A31"]);
    expect(body.modules[0]!.values.map((v) => [v.name, v.value])).toEqual([
      ["diagnostics.voltage", 24.6],
      ["diagnostics.temperature", 30],
    ]);
    expect(body.modules[1]!.values.slice(0, 3).map((v) => v.value)).toEqual([true, false, true]);
    expect(body.decoder.processed).toBe(2);
    expect((await d.httpRoute()(new Request("http://127.0.0.1/api/ampio/modules", { method: "POST" }))).status).toBe(405);
  });

  test("modules go online with their first frame and offline when stale", async () => {
    const c = clock();
    const g = await gw({ ampioStaleAfterMs: 60_000 }, c.now);
    const d = decoderOf(g);
    const seen: [number, boolean][] = [];
    d.addListener({ decoded() {}, moduleState: (id, online) => seen.push([id, online]) });
    g.backend.inject(TEMP_A);
    g.backend.inject(BINOUT_B);
    await processed(g, 2);
    c.advance(30_000);
    g.backend.inject(TEMP_A);
    await processed(g, 3);
    c.advance(40_000); // B silent 70 s, A 40 s
    d.sweep();
    expect(seen).toEqual([
      [A, true],
      [B, true],
      [B, false],
    ]);
    g.backend.inject(BINOUT_B);
    await processed(g, 4);
    expect(seen[3]).toEqual([B, true]);
  });
});

describe("state on connect (-ampio-state-replay)", () => {
  test("a Waveshare client that connects after the broadcasts receives the current picture, no commands or events", async () => {
    const g = await gw({ ampioStateReplay: true });
    g.backend.inject(TEMP_A);
    g.backend.inject(COMMAND);
    g.backend.inject(dataFrame(A, [0xfe, 0x06, 0xe1, 0x04], true)); // newer temperature of A: replaces the first
    g.backend.inject(EVENT_B);
    g.backend.inject(BINOUT_B);
    g.backend.inject(dataFrame(0x123, [1, 2])); // standard id: not Ampio
    await processed(g, 5);
    const ws = await WaveshareTestClient.connect(g.gateway.port("waveshare")!);
    cleanup.push(() => ws.close());
    const got = await ws.waitFrames(2);
    await Bun.sleep(100);
    expect(ws.frames.length).toBe(2);
    expect(ws.problems).toEqual([]);
    expect(got.map(key)).toEqual([dataFrame(A, [0xfe, 0x06, 0xe1, 0x04], true), BINOUT_B].map(key));
    // Live traffic follows the replay.
    g.backend.inject(DIAG_A);
    expect((await ws.waitFrames(3))[2]!.data[1]).toBe(0x4f);
  });

  test("a client connecting after the age limit receives no stale entries", async () => {
    const c = clock();
    const g = await gw({ ampioStateReplay: true, ampioStateMaxAgeMs: 60 * 60_000 }, c.now);
    g.backend.inject(TEMP_A);
    await processed(g, 1);
    c.advance(50 * 60_000);
    g.backend.inject(BINOUT_B);
    await processed(g, 2);
    c.advance(20 * 60_000); // A is 70 min old, B 20 min
    const ws = await WaveshareTestClient.connect(g.gateway.port("waveshare")!);
    cleanup.push(() => ws.close());
    await ws.waitFrames(1);
    await Bun.sleep(100);
    expect(ws.frames.map(key)).toEqual([key(BINOUT_B)]);
    c.advance(60 * 60_000); // now B is stale too
    const late = await WaveshareTestClient.connect(g.gateway.port("waveshare")!);
    cleanup.push(() => late.close());
    await Bun.sleep(200);
    expect(late.frames.length).toBe(0);
    // Positive control: the same client does get live frames.
    g.backend.inject(TEMP_A);
    await late.waitFrames(1);
  });

  test("cannelloni clients get no replay; without the flag Waveshare clients get none either", async () => {
    const g = await gw({ ampioStateReplay: true });
    g.backend.inject(TEMP_A);
    await processed(g, 1);
    const cn = await CannelloniTestClient.connect(g.gateway.port("cannelloni")!, { helloFirst: true });
    cleanup.push(() => cn.close());
    await cn.handshake({ helloFirst: true });
    const off = await gw({ ampioStateReplay: false });
    off.backend.inject(TEMP_A);
    await processed(off, 1);
    const ws = await WaveshareTestClient.connect(off.gateway.port("waveshare")!);
    cleanup.push(() => ws.close());
    await Bun.sleep(200);
    expect(cn.frames.length).toBe(0);
    expect(ws.frames.length).toBe(0);
    expect(off.consumers.initialFrames).toBeUndefined();
  });
});
