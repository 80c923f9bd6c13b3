/**
 * The GVRET listener (-gvret-listen) over real TCP on 127.0.0.1 with the virtual bus, driven by an
 * independent client written from SavvyCAN's connection sequence (test/helpers/gvret-client.ts):
 * the opening write and validation, keepalives every 250 ms for several seconds without a
 * disconnect, frames both ways (with a cannelloni client on the same bus), a host frame split
 * across TCP segments, resynchronisation on garbage, FD as command 20 with -fd only, and that a
 * GVRET client that never switches to binary mode gets no frames.
 */
import { describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import { frameText, GatewayPerTest, waitFor } from "../helpers/gateway.ts";
import { GvretTestClient, gvretHostFrame } from "../helpers/gvret-client.ts";

const fx = new GatewayPerTest({ gvretListen: "127.0.0.1:0" });

async function gvret(): Promise<GvretTestClient> {
  return fx.closeAfter(await GvretTestClient.connect(fx.gw.gateway.port("gvret")!));
}

describe("GVRET listener with SavvyCAN's connection sequence", () => {
  test("validation passes on the opening write: one bus, enabled, at the bus bit rate; device info answered", async () => {
    await fx.start({ bitrate: 500000 });
    const c = await gvret();
    await c.openLikeSavvyCan();
    await waitFor(() => c.answers.includes(0x0d), "the extended-bus answer SavvyCAN asks for");
    expect(c.busParams).toEqual({ enabled0: true, bitrate0: 500000, enabled1: false, bitrate1: 0 });
    expect(c.numBuses).toBe(1);
    expect(c.deviceBuild).toBe(618);
    expect(c.answers).toEqual([0x0c, 0x06, 0x07, 0x01, 0x09, 0x0d]);
    expect(c.problems).toEqual([]);
  });

  test("keepalive every 250 ms for 3 s: every one answered, never disconnected", async () => {
    await fx.start();
    const c = await gvret();
    await c.openLikeSavvyCan();
    c.startKeepalive(250);
    await Bun.sleep(3000);
    c.stopKeepalive();
    await waitFor(() => c.keepalivesAnswered === c.keepalivesSent, "the last keepalive answer");
    expect(c.keepalivesSent).toBeGreaterThanOrEqual(11);
    expect(c.gaveUp).toBe(false);
    expect(c.closed).toBe(false);
    expect(fx.gw.events().some((e) => e.msg === "client_disconnected")).toBe(false);
  }, 10_000);

  test("bus frames reach the client exactly (an RTR frame, which GVRET cannot express, is not sent); its frames reach the bus and a cannelloni client", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await gvret();
    await c.openLikeSavvyCan();
    const cnl = await fx.cannelloni();
    await waitFor(() => fx.gw.gateway.hub.size === 2, "both attached");
    fx.gw.backend.inject(dataFrame(0x123, [0xaa, 0xbb]));
    fx.gw.backend.inject(remoteFrame(0x124, 2));
    fx.gw.backend.inject(dataFrame(0x1abcdef0, [1, 2, 3, 4, 5, 6, 7, 8], true));
    fx.gw.backend.inject(dataFrame(0x7ff, []));
    expect(frameText(await c.waitFrames(3))).toEqual(["123#AABB", "1ABCDEF0#0102030405060708", "7FF#"]);
    expect(c.received.every((r) => r.bus === 0)).toBe(true);
    // Device timestamps are microseconds since the connection opened: small, non-decreasing.
    const ts = c.received.map((r) => r.timestampUs);
    expect([...ts].sort((a, b) => a - b)).toEqual(ts);
    expect(ts[0]!).toBeLessThan(60_000_000);

    c.send(dataFrame(0x321, [0x01, 0x02, 0x03]), dataFrame(0x18ff00aa, [0xff], true));
    await waitFor(() => onBus.length === 2, "GVRET frames on the bus");
    expect(frameText(onBus)).toEqual(["321#010203", "18FF00AA#FF"]);
    expect(frameText(await cnl.waitFrames(6)).slice(4)).toEqual(["321#010203", "18FF00AA#FF"]);
    cnl.send(dataFrame(0x55, [0x55]));
    expect(frameText(await c.waitFrames(4))[3]).toBe("055#55");
    expect(fx.gw.stats.protocol("gvret").rxFrames).toBe(2);
    expect(c.problems).toEqual([]);
  });

  test("a host frame split across TCP segments, one byte at a time, still arrives once", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await gvret();
    await c.openLikeSavvyCan();
    const bytes = gvretHostFrame(dataFrame(0x1a2b3c4d, [9, 8, 7, 6, 5], true));
    for (let i = 0; i < bytes.length - 1; i++) {
      c.write(bytes.subarray(i, i + 1));
      await Bun.sleep(3);
    }
    await Bun.sleep(30);
    expect(onBus).toHaveLength(0);
    c.write(bytes.subarray(bytes.length - 1));
    await waitFor(() => onBus.length === 1, "the frame after its last byte");
    expect(frameText(onBus)).toEqual(["1A2B3C4D#0908070605"]);
  });

  test("garbage and unknown commands between frames are skipped; the stream resynchronises", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await gvret();
    await c.openLikeSavvyCan();
    const a = gvretHostFrame(dataFrame(0x10, [1]));
    const b = gvretHostFrame(dataFrame(0x11, [2]));
    const junk = Uint8Array.of(0x00, 0x41, 0x42, 0xf1, 0x7e, 0x0d, 0x0a);
    const all = new Uint8Array(a.length + junk.length + b.length);
    all.set(a);
    all.set(junk, a.length);
    all.set(b, a.length + junk.length);
    c.write(all);
    c.write(Uint8Array.of(0xf1, 0x09));
    await waitFor(() => onBus.length === 2, "both frames");
    expect(frameText(onBus)).toEqual(["010#01", "011#02"]);
    await waitFor(() => c.keepalivesAnswered === 2, "the keepalive answer after the garbage");
    expect(c.closed).toBe(false);
  });

  test("a frame for bus 1 is rejected and counted; the connection stays", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await gvret();
    await c.openLikeSavvyCan();
    c.write(gvretHostFrame(dataFrame(0x10, [1]), 1));
    c.send(dataFrame(0x11, [2]));
    await waitFor(() => onBus.length === 1, "the bus-0 frame");
    expect(frameText(onBus)).toEqual(["011#02"]);
    expect(fx.gw.stats.protocol("gvret").malformed).toBe(1);
  });

  test("no bus frames before binary mode (E7)", async () => {
    await fx.start();
    const c = await gvret();
    await Bun.sleep(50);
    fx.gw.backend.inject(dataFrame(0x1, [1]));
    await Bun.sleep(50);
    expect(c.frames).toHaveLength(0);
    await c.openLikeSavvyCan();
    await waitFor(() => fx.gw.gateway.hub.size === 1, "attached");
    fx.gw.backend.inject(dataFrame(0x2, [2]));
    expect(frameText(await c.waitFrames(1))).toEqual(["002#02"]);
  });

  test("CAN FD as command 20 both ways with -fd; without -fd none is sent", async () => {
    await fx.start({ fd: true });
    const onBus = fx.busRecorder();
    const c = await gvret();
    await c.openLikeSavvyCan();
    await waitFor(() => fx.gw.gateway.hub.size === 1, "attached");
    const big = fdFrame(0x123, new Uint8Array(64).map((_, i) => i));
    fx.gw.backend.inject(big);
    const [rx] = await c.waitFrames(1);
    expect(rx!.fd).toBe(true);
    expect(Array.from(rx!.data)).toEqual(Array.from(big.data));
    c.send(fdFrame(0x124, new Uint8Array(12).fill(7)));
    await waitFor(() => onBus.length === 1, "the FD frame on the bus");
    expect(onBus[0]!.fd).toBe(true);
    expect(onBus[0]!.data.length).toBe(12);
    await fx.gw.stop();

    await fx.start({ fd: false });
    const d = await gvret();
    await d.openLikeSavvyCan();
    await waitFor(() => fx.gw.gateway.hub.size === 1, "attached");
    fx.gw.backend.inject(fdFrame(0x123, [1, 2]));
    fx.gw.backend.inject(dataFrame(0x125, [3]));
    expect(frameText(await d.waitFrames(1))).toEqual(["125#03"]);
  });
});
