/**
 * GVRET on a gateway with two virtual buses (issue 19 item 2): the buses are GVRET bus numbers
 * 0 and 1, as SavvyCAN shows them. The test client (test/helpers/gvret-client.ts) opens like
 * SavvyCAN: the bus count (F1 0C) is 2, the bus parameters describe both; bus frames arrive with
 * their bus number; a frame sent with bus byte 1 goes to the second bus only; a bus number past
 * the last is refused and counted.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { frameText, waitFor } from "../helpers/gateway.ts";
import { GvretTestClient } from "../helpers/gvret-client.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startTwoBuses, type TwoBuses } from "../helpers/two-buses.ts";

let tb: TwoBuses | null = null;
const clients: GvretTestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await tb?.stop();
  tb = null;
});

function onBus(t: TwoBuses, bus: number): CanFrame[] {
  const frames: CanFrame[] = [];
  t.backends[bus]!.observe((f) => frames.push(f));
  return frames;
}

describe("GVRET with two buses", () => {
  test("bus count 2, both buses' parameters; frames carry their bus number both ways", async () => {
    tb = await startTwoBuses({ gvretListen: "127.0.0.1:0" }, [{ bitrate: 500000 }, { bitrate: 125000 }]);
    const t = tb;
    const c = await GvretTestClient.connect(t.gateway.port("gvret")!);
    clients.push(c);
    await c.openLikeSavvyCan();
    await waitFor(() => c.numBuses !== null && c.busParams !== null, "bus count and parameters");
    expect(c.numBuses).toBe(2);
    expect(c.busParams).toEqual({ enabled0: true, bitrate0: 500000, enabled1: true, bitrate1: 125000 });
    // a client of both buses
    await waitFor(() => t.gateway.buses.every((b) => [...b.hub.attached].some((x) => x.protocol === "gvret")), "attached to both buses");

    t.backends[0]!.inject(dataFrame(0x100, [0]));
    t.backends[1]!.inject(dataFrame(0x1abcde0f, [1, 1], true));
    t.backends[0]!.inject(dataFrame(0x102, [2]));
    await waitFor(() => c.received.length === 3, "three frames");
    expect(c.received.map((r) => [r.bus, frameText([r.frame])[0]])).toEqual([
      [0, "100#00"],
      [1, "1ABCDE0F#0101"],
      [0, "102#02"],
    ]);

    const on0 = onBus(t, 0);
    const on1 = onBus(t, 1);
    c.sendOn(1, dataFrame(0x321, [0xaa]));
    c.sendOn(0, dataFrame(0x123, [0xbb]));
    c.sendOn(1, dataFrame(0x322, [0xcc]));
    await waitFor(() => on1.length === 2 && on0.length === 1, "frames on their buses");
    expect(frameText(on1)).toEqual(["321#AA", "322#CC"]);
    expect(frameText(on0)).toEqual(["123#BB"]);
    await Bun.sleep(50);
    expect(on0.length + on1.length).toBe(3);

    // bus number 2 does not exist: refused, counted, the session goes on
    c.sendOn(2, dataFrame(0x555, [5]));
    await waitFor(() => t.stats[0]!.protocol("gvret").malformed === 1, "bus 2 refused");
    c.sendOn(1, dataFrame(0x323, [0xdd]));
    await waitFor(() => on1.length === 3, "the session still sends");
    expect(on0.length).toBe(1);
    expect(c.problems).toEqual([]);
  });

  test("a frame a GVRET client sends on bus 1 reaches bus 1's clients (another GVRET client sees bus 1), never bus 0's", async () => {
    tb = await startTwoBuses({ gvretListen: "127.0.0.1:0" });
    const t = tb;
    const g = await GvretTestClient.connect(t.gateway.port("gvret")!);
    clients.push(g);
    await g.openLikeSavvyCan();
    const other = await GvretTestClient.connect(t.gateway.port("gvret")!);
    clients.push(other);
    await other.openLikeSavvyCan();
    const cnl0 = await CannelloniTestClient.connect(t.gateway.buses[0]!.port("cannelloni")!);
    await cnl0.handshake();
    await waitFor(() => [...t.gateway.buses[1]!.hub.attached].filter((x) => x.protocol === "gvret").length === 2 && t.gateway.buses[0]!.hub.size === 3, "all attached");
    g.sendOn(1, dataFrame(0x201, [1]));
    g.sendOn(0, dataFrame(0x202, [2]));
    // the other GVRET client sees it as a bus-1 frame (the hub echoes client frames to the bus's other clients)
    await waitFor(() => other.received.length >= 2, "echo to the other client");
    expect(other.received.map((r) => [r.bus, frameText([r.frame])[0]])).toEqual([
      [1, "201#01"],
      [0, "202#02"],
    ]);
    expect(frameText(await cnl0.waitFrames(1))).toEqual(["202#02"]);
    await Bun.sleep(100);
    expect(frameText(cnl0.frames)).toEqual(["202#02"]);
    cnl0.close();
  });
});
