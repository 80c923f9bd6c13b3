/**
 * The slcan-over-TCP listener (-slcan-listen) over real TCP on 127.0.0.1 with the virtual bus.
 * First with the REAL third-party client, python-can 4.1's `slcan` interface from Debian's
 * python3-can (/usr/bin/python3, channel "socket://127.0.0.1:PORT" through pyserial): its 2 s
 * start-up pause survives a handshake timeout shorter than it (slcan's own minimum applies), its
 * own C/Sn/O sequence, frames both ways with cannelloni and Waveshare clients on the same bus, and
 * the logged note for a bit rate the gateway does not apply. Then with an independent raw client
 * (test/helpers/slcan-client.ts) for what python-can does not exercise: frames only while open,
 * listen-only refusals counted, value answers, the acceptance filter per client, timestamps, FD
 * with -fd only, and -allow / -tx-allow.
 */
import { describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, formatFrame, remoteFrame, CANFD_BRS } from "../../src/can/frame.ts";
import { frameText, GatewayPerTest, waitFor } from "../helpers/gateway.ts";
import { PythonSlcanClient, SlcanTestClient } from "../helpers/slcan-client.ts";

const fx = new GatewayPerTest({ slcanListen: "127.0.0.1:0", waveshareListen: "127.0.0.1:0" });

const slcanPort = (): number => fx.gw.gateway.port("slcan")!;

async function raw(): Promise<SlcanTestClient> {
  return fx.closeAfter(await SlcanTestClient.connect(slcanPort()));
}

describe("python-can 4.1 slcan interface over socket:// (the real client)", () => {
  test(
    "survives its 2 s start-up pause with -handshake-timeout 1s; frames both ways with cannelloni and Waveshare clients",
    async () => {
      await fx.start({ handshakeTimeoutMs: 1000 });
      const onBus = fx.busRecorder();
      const py = await PythonSlcanClient.start(slcanPort(), 500000);
      fx.defer(() => py.stop());
      expect(py.error).toBeNull();
      expect(py.openSeconds!).toBeGreaterThanOrEqual(2);
      const cnl = await fx.cannelloni();
      const ws = await fx.waveshare();
      await fx.attached(3);
      const ready = fx.gw.events().find((e) => e.msg === "client_ready" && e.protocol === "slcan");
      expect(ready).toBeDefined();
      expect(fx.gw.stats.handshakeFailures).toBe(0);
      // python-can asked for 500 kbit/s; the virtual bus runs at 1 Mbit/s: acknowledged, logged, not applied.
      const notice = fx.gw.events().find((e) => e.msg === "client_notice" && e.protocol === "slcan");
      expect(String(notice?.note)).toContain("500000 bit/s");

      // bus → python-can
      const fromBus = [dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]), dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true), remoteFrame(0x7ff, 3), dataFrame(0x000, [])];
      for (const f of fromBus) fx.gw.backend.inject(f);
      const got = await py.waitReceived(4);
      expect(got.map((m) => [m.id, m.extended, m.remote, m.dlc, Buffer.from(m.data).toString("hex")])).toEqual([
        [0x123, false, false, 4, "deadbeef"],
        [0x1abcde0f, true, false, 8, "0102030405060708"],
        [0x7ff, false, true, 3, ""],
        [0x000, false, false, 0, ""],
      ]);

      // python-can → bus, cannelloni and Waveshare clients
      const fromPy = [dataFrame(0x321, [0x11, 0x22]), dataFrame(0x18ff50e5, [0xaa], true), remoteFrame(0x456, 2)];
      for (const f of fromPy) py.send(f);
      await py.waitSent(3);
      await waitFor(() => onBus.length === 3, "python-can's frames on the bus");
      expect(frameText(onBus)).toEqual(["321#1122", "18FF50E5#AA", "456#R2"]);
      expect(frameText(await ws.waitFrames(7)).slice(4)).toEqual(["321#1122", "18FF50E5#AA", "456#R2"]);
      // cannelloni TCP carries RTR with len 0 (docs/protocols.md §2)
      expect(frameText(await cnl.waitFrames(7)).slice(4)).toEqual(["321#1122", "18FF50E5#AA", "456#R"]);

      // cannelloni and Waveshare clients → python-can
      cnl.send(dataFrame(0x10, [0x01]));
      await waitFor(() => py.received.length >= 5, "the cannelloni frame in python-can");
      ws.send(dataFrame(0x11, [0x02]));
      const after = await py.waitReceived(6);
      expect(after.slice(4).map((m) => [m.id, Buffer.from(m.data).toString("hex")])).toEqual([
        [0x10, "01"],
        [0x11, "02"],
      ]);
      expect(fx.gw.stats.protocol("slcan").rxFrames).toBe(3);
      expect(fx.gw.stats.protocol("slcan").txFrames).toBe(6);
    },
    30_000,
  );

  test("python-can's shutdown closes the channel (C) and the connection", async () => {
    await fx.start();
    const py = await PythonSlcanClient.start(slcanPort(), 1000000);
    await fx.attached(1);
    await py.stop();
    await waitFor(() => fx.gw.gateway.hub.size === 0, "the session gone");
    const gone = fx.gw.events().find((e) => e.msg === "client_disconnected" && e.protocol === "slcan");
    expect(gone?.reason).toBe("client_closed");
    // 1 Mbit/s is the virtual bus's rate: no note.
    expect(fx.gw.events().some((e) => e.msg === "client_notice")).toBe(false);
  }, 20_000);
});

describe("slcan listener with an independent raw client", () => {
  test("frames flow only while the channel is open; closed-channel frame lines are answered BEL and counted", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await raw();
    c.command("t1231AA");
    expect(await c.waitReplies(1)).toEqual(["\x07"]);
    fx.gw.backend.inject(dataFrame(0x1, [1]));
    await Bun.sleep(50);
    expect(c.frames).toHaveLength(0);
    await c.open();
    expect(c.replies.slice(1)).toEqual(["\r", "\r", "\r"]);
    await fx.attached(1);
    fx.gw.backend.inject(dataFrame(0x2, [2]));
    expect(frameText(await c.waitFrames(1))).toEqual(["002#02"]);
    c.command("t3332BEEF");
    await waitFor(() => onBus.length === 1, "the frame on the bus");
    expect(frameText(onBus)).toEqual(["333#BEEF"]);
    c.command("C");
    await c.waitReplies(6);
    fx.gw.backend.inject(dataFrame(0x3, [3]));
    await Bun.sleep(50);
    expect(frameText(c.frames)).toEqual(["002#02"]);
    c.command("O");
    await c.waitReplies(7);
    fx.gw.backend.inject(dataFrame(0x4, [4]));
    expect(frameText(await c.waitFrames(2))).toEqual(["002#02", "004#04"]);
    expect(fx.gw.stats.protocol("slcan").malformed).toBe(1);
    expect(c.problems).toEqual([]);
    expect(c.closed).toBe(false);
  });

  test("listen-only (L): receives the bus; its frames are refused with BEL and counted, never sent", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await raw();
    c.command("L");
    await c.waitReplies(1);
    await fx.attached(1);
    c.command("t1001FF", "T1ABCDEF000");
    expect(await c.waitReplies(3)).toEqual(["\r", "\x07", "\x07"]);
    fx.gw.backend.inject(dataFrame(0x5, [5]));
    expect(frameText(await c.waitFrames(1))).toEqual(["005#05"]);
    await Bun.sleep(30);
    expect(onBus).toHaveLength(0);
    expect(fx.gw.stats.protocol("slcan").malformed).toBe(2);
  });

  test("V, v, N, F answer with values; unknown commands with BEL; settings refused while open", async () => {
    await fx.start();
    const c = await raw();
    c.command("V", "v", "N", "F", "X", "S4");
    expect(await c.waitReplies(6)).toEqual(["V1013", "v1014", "NCSGW", "F00", "\x07", "\r"]);
    c.command("O", "S4", "Z1");
    expect((await c.waitReplies(9)).slice(6)).toEqual(["\r", "\x07", "\x07"]);
  });

  test("the M/m acceptance filter applies to this client only", async () => {
    await fx.start();
    const filtered = await raw();
    const all = await raw();
    // SJA1000 dual filter, both filters on standard id 0x123: ACR0 = id bits 10..3 (0x24), ACR1 high
    // bits = id bits 2..0 (0x60), AMR1 0x1F leaves RTR and the data nibble free; ACR2/ACR3 the same
    // for filter 2 (AMR3 0x1F: RTR free, low nibble belongs to filter 1).
    filtered.command("M24602460", "m001F001F", "O");
    await filtered.waitReplies(3);
    await all.open();
    await fx.attached(2);
    for (const id of [0x123, 0x124, 0x7ff]) fx.gw.backend.inject(dataFrame(id, [id & 0xff]));
    expect(frameText(await all.waitFrames(3))).toEqual(["123#23", "124#24", "7FF#FF"]);
    await Bun.sleep(50);
    expect(frameText(filtered.frames)).toEqual(["123#23"]);
  });

  test("Z1 appends a 4-digit millisecond timestamp below 60000", async () => {
    await fx.start();
    const c = await raw();
    c.command("Z1", "O");
    await c.waitReplies(2);
    await fx.attached(1);
    fx.gw.backend.inject(dataFrame(0x10, [0x10]));
    await c.waitFrames(1);
    expect(c.timestamps[0]).not.toBeNull();
    expect(c.timestamps[0]!).toBeLessThan(60000);
  });

  test("CAN FD (d/b) both ways with -fd; refused without it", async () => {
    await fx.start({ fd: true });
    const onBus = fx.busRecorder();
    const c = await raw();
    await c.open();
    await fx.attached(1);
    fx.gw.backend.inject(fdFrame(0x123, new Uint8Array(12).fill(0xab), CANFD_BRS));
    fx.gw.backend.inject(fdFrame(0x1234567, new Uint8Array(64).fill(0x5a), 0, true));
    const got = await c.waitFrames(2);
    expect(frameText(got)).toEqual([formatFrame(fdFrame(0x123, new Uint8Array(12).fill(0xab), CANFD_BRS)), formatFrame(fdFrame(0x1234567, new Uint8Array(64).fill(0x5a), 0, true))]);
    c.send(fdFrame(0x7a, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], CANFD_BRS));
    await waitFor(() => onBus.length === 1, "the FD frame on the bus");
    expect(onBus[0]!.fd).toBe(true);
    expect(onBus[0]!.fdFlags & CANFD_BRS).toBe(CANFD_BRS);
    await fx.gw.stop();

    await fx.start({ fd: false });
    const onBus2 = fx.busRecorder();
    const d = await raw();
    await d.open();
    await fx.attached(1);
    fx.gw.backend.inject(fdFrame(0x123, [1]));
    fx.gw.backend.inject(dataFrame(0x124, [2]));
    expect(frameText(await d.waitFrames(1))).toEqual(["124#02"]);
    d.command("d1231AA");
    expect((await d.waitReplies(4))[3]).toBe("\x07");
    await Bun.sleep(30);
    expect(onBus2).toHaveLength(0);
  });

  test("-allow refuses a client outside it (counted); -tx-allow makes one read-only (counted as read_only)", async () => {
    await fx.start({ allow: ["10.0.0.0/8"] });
    const c = await raw();
    await c.waitClosed();
    expect(fx.gw.stats.rejected.get("not_allowed")).toBe(1);
    await fx.gw.stop();

    await fx.start({ txAllow: ["10.0.0.0/8"] });
    const onBus = fx.busRecorder();
    const r = await raw();
    await r.open();
    await fx.attached(1);
    r.command("t1001FF");
    await r.waitReplies(4);
    await waitFor(() => (fx.gw.stats.txDropped.get("read_only") ?? 0) === 1, "the read-only drop");
    expect(onBus).toHaveLength(0);
    fx.gw.backend.inject(dataFrame(0x9, [9]));
    expect(frameText(await r.waitFrames(1))).toEqual(["009#09"]);
  });

  test("a client that never opens the channel is closed after slcan's 60 s minimum, not -handshake-timeout", async () => {
    await fx.start({ handshakeTimeoutMs: 50 });
    const c = await raw();
    await Bun.sleep(300);
    expect(c.closed).toBe(false);
    expect(fx.gw.stats.handshakeFailures).toBe(0);
  });
});
