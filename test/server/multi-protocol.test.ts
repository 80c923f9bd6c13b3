/**
 * Several client protocols on one bus, over real TCP on 127.0.0.1 with the virtual bus: the
 * Waveshare 13-byte listener end to end (both directions, byte-exact elements, resumable decoding
 * across any TCP split, violations closing only the offender, the Home Assistant client's needs:
 * no own echo, no idle disconnect, only frames it can parse), frames crossing between Waveshare,
 * cannelloni and socketcand clients, drop/kick applied per client whatever its protocol (with
 * clients that really stop reading), and the per-protocol counters.
 */
import { describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, formatFrame, remoteFrame, CAN_ERR_FLAG } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { flood, frameText, GatewayPerTest, waitFor } from "../helpers/gateway.ts";
import { RawSocketcandClient, startSlowSocketcandClient } from "../helpers/socketcand-clients.ts";
import { startSlowWaveshareClient, WaveshareTestClient, wsBytes } from "../helpers/waveshare-client.ts";

/** A gateway with all three listeners on ephemeral loopback ports. */
const fx = new GatewayPerTest({ waveshareListen: "127.0.0.1:0", socketcandListen: "127.0.0.1:0" });

async function socketcand(): Promise<RawSocketcandClient> {
  const c = fx.closeAfter(await RawSocketcandClient.connect(fx.gw.gateway.port("socketcand")!));
  await c.handshake("can0");
  return c;
}
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("Waveshare 13-byte listener", () => {
  test("bus frames reach the client as exact 13-byte elements", async () => {
    await fx.start();
    const c = await fx.waveshare();
    await fx.attached(1);
    fx.gw.backend.inject(dataFrame(0x123, [0xde, 0xad]));
    fx.gw.backend.inject(dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true));
    fx.gw.backend.inject(remoteFrame(0x7ff, 4));
    fx.gw.backend.inject(dataFrame(0x000, []));
    fx.gw.backend.inject(dataFrame(0x5, [0xff], true));
    expect(frameText(await c.waitFrames(5))).toEqual(["123#DEAD", "1ABCDE0F#0102030405060708", "7FF#R4", "000#", "00000005#FF"]);
    expect(c.raw.map(hex)).toEqual([
      "02" + "00000123" + "dead000000000000", // info: standard, DLC 2; id BE; data zero-padded
      "88" + "1abcde0f" + "0102030405060708", // 0x80 extended | DLC 8
      "44" + "000007ff" + "0000000000000000", // 0x40 RTR | DLC 4, no data
      "00" + "00000000" + "0000000000000000",
      "81" + "00000005" + "ff00000000000000",
    ]);
    expect(c.problems).toEqual([]);
    expect(fx.gw.stats.protocol("waveshare").txFrames).toBe(5);
  });

  test("client frames reach the bus and a cannelloni client; the sender gets no echo of its own", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const ws = await fx.waveshare();
    const cnl = await fx.cannelloni();
    await fx.attached(2);
    const sent = [dataFrame(0x100, [0xaa]), dataFrame(0x1fffffff, [1, 2, 3, 4, 5, 6, 7, 8], true), remoteFrame(0x7ff, 3), dataFrame(0x321, [])];
    ws.send(...sent);
    const expected = ["100#AA", "1FFFFFFF#0102030405060708", "7FF#R3", "321#"];
    await waitFor(() => onBus.length === 4, "frames on the bus");
    expect(frameText(onBus)).toEqual(expected);
    // cannelloni sends an RTR with len 0 (as python-can-cannelloni does): its DLC is not carried.
    expect(frameText(await cnl.waitFrames(4))).toEqual(["100#AA", "1FFFFFFF#0102030405060708", "7FF#R", "321#"]);
    // The HA client hides copies of its own frames for only 0.1 s: an echo arriving later would
    // look like a new bus frame. A marker injected after the sends proves nothing came before it.
    fx.gw.backend.inject(dataFrame(0x42, [0x42]));
    expect(frameText(await ws.waitFrames(1))).toEqual(["042#42"]);
    expect(ws.frames.length).toBe(1);
    expect(fx.gw.stats.protocol("waveshare").rxFrames).toBe(4);
  });

  test("decoding resumes across any TCP split: one byte per write", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const ws = await fx.waveshare();
    await fx.attached(1);
    const element = wsBytes(0x83, 0x12345, [0xca, 0xfe, 0x01]); // extended, DLC 3
    for (let i = 0; i < 12; i++) {
      ws.write(element.subarray(i, i + 1));
      await Bun.sleep(3);
    }
    await Bun.sleep(30);
    expect(onBus.length).toBe(0); // 12 of 13 bytes: nothing yet
    ws.write(element.subarray(12));
    await waitFor(() => onBus.length === 1, "the frame after its 13th byte");
    expect(frameText(onBus)).toEqual(["00012345#CAFE01"]);

    // Splits that straddle element boundaries: 5 | 13 | 8 bytes over two elements.
    const two = new Uint8Array(26);
    two.set(wsBytes(0x01, 0x7ff, [0x11]));
    two.set(wsBytes(0xc8, 0x1abcdef, []), 13); // extended | RTR | DLC 8
    for (const [from, to] of [[0, 5], [5, 18], [18, 26]] as const) {
      ws.write(two.subarray(from, to));
      await Bun.sleep(10);
    }
    await waitFor(() => onBus.length === 3, "two more frames");
    expect(frameText(onBus)).toEqual(["00012345#CAFE01", "7FF#11", "01ABCDEF#R8"]);
    expect(ws.closed).toBe(false);
  });

  for (const [name, badElement] of [
    ["DLC 9", wsBytes(0x09, 0x123, [1, 2, 3, 4, 5, 6, 7, 8])],
    ["a standard id above 0x7FF", wsBytes(0x01, 0x800, [1])],
    ["a reserved info bit", wsBytes(0x11, 0x123, [1])],
  ] as const) {
    test(`${name} is counted and skipped: that client stays connected, the others unaffected`, async () => {
      await fx.start();
      const onBus = fx.busRecorder();
      const good = await fx.waveshare();
      const cnl = await fx.cannelloni();
      const bad = await fx.waveshare();
      await fx.attached(3);
      // A good frame, the bad element, another good frame in one write: both good ones reach the bus.
      const three = new Uint8Array(39);
      three.set(wsBytes(0x01, 0x10, [0x77]));
      three.set(badElement, 13);
      three.set(wsBytes(0x01, 0x11, [0x78]), 26);
      bad.write(three);
      const deadline = Date.now() + 3000;
      while (onBus.length < 2 && Date.now() < deadline) await Bun.sleep(5);
      expect(frameText(onBus)).toEqual(["010#77", "011#78"]);
      expect(fx.gw.stats.malformedFrames).toBe(1);
      expect(fx.gw.stats.protocol("waveshare").malformed).toBe(1);
      expect(fx.gw.stats.protocol("cannelloni").malformed).toBe(0);
      expect(fx.gw.events().filter((e) => e.msg === "protocol_violation")).toHaveLength(0);
      fx.gw.backend.inject(dataFrame(0x20, [0x20]));
      expect(frameText(await good.waitFrames(3))).toEqual(["010#77", "011#78", "020#20"]);
      expect(frameText(await cnl.waitFrames(3))).toEqual(["010#77", "011#78", "020#20"]);
      expect(frameText(await bad.waitFrames(1))).toEqual(["020#20"]);
      expect(bad.closed).toBe(false);
      expect(good.closed).toBe(false);
      expect(cnl.closed).toBe(false);
    });
  }

  test("an idle client is never disconnected (the HA client does not reconnect)", async () => {
    // Waveshare has no handshake: the handshake timeout must not apply to it.
    await fx.start({ handshakeTimeoutMs: 100 });
    const ws = await fx.waveshare();
    await fx.attached(1);
    await Bun.sleep(400);
    expect(ws.closed).toBe(false);
    fx.gw.backend.inject(dataFrame(0x7, [7]));
    expect(frameText(await ws.waitFrames(1))).toEqual(["007#07"]);
    expect(fx.gw.stats.handshakeFailures).toBe(0);
  });

  test("only frames the format can carry are sent: no CAN FD or error frames, stream stays aligned", async () => {
    await fx.start({ fd: true, backend: "virtual" });
    const ws = await fx.waveshare();
    const cnl = await fx.cannelloni();
    await fx.attached(2);
    fx.gw.backend.inject(fdFrame(0x10, new Uint8Array(12).fill(0xab), 1));
    fx.gw.backend.inject({ canId: (CAN_ERR_FLAG | 0x4) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 });
    fx.gw.backend.inject(dataFrame(0x11, [1]));
    for (let i = 0; i < 500; i++) fx.gw.backend.inject(dataFrame(i & 0x7ff, [i & 0xff, i >> 8, 3]));
    // cannelloni carries all of them, proving the FD and error frames were on the bus.
    await cnl.waitFrames(503);
    expect(formatFrame(cnl.frames[0]!)).toBe("010##1ABABABABABABABABABABABAB");
    const got = await ws.waitFrames(501);
    expect(formatFrame(got[0]!)).toBe("011#01");
    await Bun.sleep(50);
    expect(ws.frames.length).toBe(501);
    expect(ws.pendingBytes).toBe(0);
    expect(ws.problems).toEqual([]);
  });
});

describe("frames cross protocols", () => {
  test("a Waveshare frame reaches cannelloni and socketcand clients and the bus", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const ws = await fx.waveshare();
    const cnl = await fx.cannelloni();
    const scd = await socketcand();
    await fx.attached(3);
    ws.send(dataFrame(0x123, [0xde, 0xad]), dataFrame(0x1abcde0f, [1, 2, 3], true), dataFrame(0x7ff, []));
    const expected = ["123#DEAD", "1ABCDE0F#010203", "7FF#"];
    expect(frameText(await cnl.waitFrames(3))).toEqual(expected);
    expect(await scd.waitFrames(3)).toEqual(expected);
    await waitFor(() => onBus.length === 3, "frames on the bus");
    expect(frameText(onBus)).toEqual(expected);
  });

  test("a cannelloni frame reaches Waveshare and socketcand clients", async () => {
    await fx.start();
    const ws = await fx.waveshare();
    const cnl = await fx.cannelloni();
    const scd = await socketcand();
    await fx.attached(3);
    cnl.send(dataFrame(0x456, [1, 2, 3, 4, 5, 6, 7, 8]), dataFrame(0x10000, [0x99], true));
    const expected = ["456#0102030405060708", "00010000#99"];
    expect(frameText(await ws.waitFrames(2))).toEqual(expected);
    expect(await scd.waitFrames(2)).toEqual(expected);
    expect(ws.problems).toEqual([]);
  });

  test("a socketcand frame reaches Waveshare and cannelloni clients and the bus", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const ws = await fx.waveshare();
    const cnl = await fx.cannelloni();
    const scd = await socketcand();
    await fx.attached(3);
    scd.write("< send 321 2 be ef >< send 00000001 0  >< send 1abcde0f 1 5 >");
    const expected = ["321#BEEF", "00000001#", "1ABCDE0F#05"];
    expect(frameText(await ws.waitFrames(3))).toEqual(expected);
    expect(frameText(await cnl.waitFrames(3))).toEqual(expected);
    await waitFor(() => onBus.length === 3, "frames on the bus");
    expect(frameText(onBus)).toEqual(expected);
  });

  test("per-protocol counters: clients, frames in and out, malformed", async () => {
    await fx.start();
    const s = fx.gw.stats;
    const ws = await fx.waveshare();
    const cnl = await fx.cannelloni();
    const scd = await socketcand();
    await fx.attached(3);
    expect([s.protocol("waveshare").clients, s.protocol("cannelloni").clients, s.protocol("socketcand").clients]).toEqual([1, 1, 1]);

    fx.gw.backend.inject(dataFrame(0x1, [1])); // 1 out to each
    ws.send(dataFrame(0x2, [2])); // 1 in (waveshare), 1 out to cannelloni and socketcand
    await cnl.waitFrames(2);
    await scd.waitFrames(2);
    scd.write("< send 3 1 3 >< send 4 1 4 >"); // 2 in (socketcand), 2 out to cannelloni and waveshare
    await ws.waitFrames(3);
    await cnl.waitFrames(4);
    expect(s.protocol("waveshare")).toMatchObject({ clients: 1, accepted: 1, rxFrames: 1, txFrames: 3, malformed: 0 });
    expect(s.protocol("socketcand")).toMatchObject({ clients: 1, accepted: 1, rxFrames: 2, txFrames: 2, malformed: 0 });
    expect(s.protocol("cannelloni")).toMatchObject({ clients: 1, accepted: 1, rxFrames: 0, txFrames: 4, malformed: 0 });
    expect(s.tcpRxFrames).toBe(3);
    expect(s.tcpTxFrames).toBe(9);

    ws.write(wsBytes(0x0f, 0x1)); // DLC 15: counted and skipped
    scd.write("< send 5 1 >"); // a send with a missing byte: counted, answered with < error >
    const deadline = Date.now() + 3000;
    while (s.malformedFrames < 2 && Date.now() < deadline) await Bun.sleep(5);
    expect(s.protocol("waveshare")).toMatchObject({ clients: 1, malformed: 1 });
    expect(s.protocol("socketcand")).toMatchObject({ clients: 1, malformed: 1 });
    expect(s.protocol("cannelloni")).toMatchObject({ clients: 1, malformed: 0 });
    expect(s.malformedFrames).toBe(2);
    expect(fx.gw.gateway.hub.countByProtocol()).toEqual(new Map([["waveshare", 1], ["cannelloni", 1], ["socketcand", 1]]));
  });
});

describe("slow-client policies apply per client, whatever its protocol", () => {
  /**
   * A gateway with `hubPolicy` and 64-frame client queues, two fast clients (cannelloni,
   * Waveshare) and two that never read (Waveshare, socketcand), all attached to the hub.
   */
  async function fastAndSlowClients(hubPolicy: Config["hubPolicy"]): Promise<{ fastCnl: CannelloniTestClient; fastWs: WaveshareTestClient }> {
    await fx.start({ hubPolicy, hubBuffer: 64 });
    const fastCnl = await fx.cannelloni();
    const fastWs = await fx.waveshare();
    const slowWs = await startSlowWaveshareClient(fx.gw.gateway.port("waveshare")!);
    fx.defer(slowWs.kill);
    const slowScd = await startSlowSocketcandClient(fx.gw.gateway.port("socketcand")!);
    fx.defer(slowScd.kill);
    await fx.attached(4);
    return { fastCnl, fastWs };
  }

  test("drop: non-reading Waveshare and socketcand clients lose frames but stay; fast clients get all", async () => {
    const { fastCnl, fastWs } = await fastAndSlowClients("drop");
    const dropping = (): string[] => fx.gw.events().filter((e) => e.msg === "client_dropping").map((e) => String(e.protocol));
    const sent = await flood(fx.gw.backend, 400_000, () => dropping().length === 2 && fx.gw.stats.hubDroppedFrames > 2000);
    expect(dropping().sort()).toEqual(["socketcand", "waveshare"]);
    expect(fx.gw.stats.hubKickedClients).toBe(0);
    await fastCnl.waitFrames(sent, 15_000);
    await fastWs.waitFrames(sent, 15_000);
    expect(fastCnl.frames.length).toBe(sent);
    expect(fastWs.frames.length).toBe(sent);
    expect(fastWs.problems).toEqual([]);
    expect(fx.gw.gateway.hub.size).toBe(4); // the slow clients are still connected
  }, 30_000);

  test("kick: non-reading Waveshare and socketcand clients are disconnected; fast clients get all", async () => {
    const { fastCnl, fastWs } = await fastAndSlowClients("kick");
    const sent = await flood(fx.gw.backend, 400_000, () => fx.gw.stats.hubKickedClients >= 2);
    expect(fx.gw.stats.hubKickedClients).toBe(2);
    expect(fx.gw.stats.hubDroppedFrames).toBe(0);
    const kicked = fx.gw.events().filter((e) => e.msg === "client_kicked").map((e) => String(e.protocol));
    expect(kicked.sort()).toEqual(["socketcand", "waveshare"]);
    await fastCnl.waitFrames(sent, 15_000);
    await fastWs.waitFrames(sent, 15_000);
    expect(fastWs.frames.length).toBe(sent);
    expect(fx.gw.gateway.hub.size).toBe(2);
    await waitFor(() => fx.gw.stats.protocol("waveshare").clients === 1 && fx.gw.stats.protocol("socketcand").clients === 0, "per-protocol client gauges");
  }, 30_000);
});
