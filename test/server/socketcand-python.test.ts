/**
 * The socketcand raw-mode listener over real TCP on 127.0.0.1 with the virtual bus. First with the
 * REAL third-party client, python-can 4.1's `socketcand` interface from Debian's python3-can (run
 * by /usr/bin/python3): its own handshake, bus frames reaching it exactly (also in bursts that
 * cross its 1024-byte read boundaries), its frames reaching the bus and the cannelloni and
 * Waveshare clients, and its failure on an unknown bus name. Then with a raw TCP client for the
 * protocol details python-can does not exercise: greeting and replies byte for byte, no frames
 * before raw mode, `< echo >`, `< error … >` for unsupported commands without closing, and the
 * violations that do close (wrong bus, bytes outside `< … >`).
 */
import { describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { frameText, GatewayPerTest, waitFor } from "../helpers/gateway.ts";
import { PythonSocketcandClient, pyText, RawSocketcandClient } from "../helpers/socketcand-clients.ts";
import { WaveshareTestClient } from "../helpers/waveshare-client.ts";

const fx = new GatewayPerTest({ waveshareListen: "127.0.0.1:0", socketcandListen: "127.0.0.1:0" });

function scdPort(): number {
  return fx.gw.gateway.port("socketcand")!;
}

async function python(channel = "can0"): Promise<PythonSocketcandClient> {
  const c = await PythonSocketcandClient.start(scdPort(), channel);
  fx.defer(() => c.stop());
  return c;
}

async function raw(): Promise<RawSocketcandClient> {
  return fx.closeAfter(await RawSocketcandClient.connect(scdPort()));
}

describe("python-can 4.1 socketcand interface (the real client)", () => {
  test("bus frames reach python-can exactly; frames raw mode cannot express are not sent", async () => {
    await fx.start({ fd: true });
    const py = await python();
    expect(py.error).toBeNull();
    await fx.attached(1);
    const frames = [
      dataFrame(0x123, [0xde, 0xad]),
      dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true),
      dataFrame(0x7ff, []),
      dataFrame(0x1, [0x55], true),
    ];
    for (const f of frames) fx.gw.backend.inject(f);
    // No raw-mode form: python-can would see ordinary data frames that were never on the bus.
    fx.gw.backend.inject(remoteFrame(0x124, 2));
    fx.gw.backend.inject(fdFrame(0x125, new Uint8Array(12).fill(1)));
    const more: CanFrame[] = [];
    for (let i = 0; i < 100; i++) more.push(dataFrame(0x200 + i, [i, 0xa5, i ^ 0xff]));
    // A modest rate: 10 batches of 10 frames.
    for (let b = 0; b < 10; b++) {
      for (const f of more.slice(b * 10, b * 10 + 10)) fx.gw.backend.inject(f);
      await Bun.sleep(10);
    }
    const expected = [...frames, ...more].map(pyText);
    expect(expected.slice(0, 4)).toEqual(["123#DEAD", "1ABCDE0F#0102030405060708", "7FF#", "1#55"]);
    expect(await py.waitReceived(104)).toEqual(expected);
    await Bun.sleep(100);
    expect(py.received.length).toBe(104);
    expect(fx.gw.stats.protocol("socketcand").txFrames).toBe(104);
  });

  test("bursts that cross python-can's 1024-byte read boundaries arrive complete", async () => {
    // python-can 4.1 drops the character after the last complete element of each recv(1024);
    // the gateway precedes each element with a space so that the lost character is that space.
    await fx.start();
    const py = await python();
    await fx.attached(1);
    const burst: CanFrame[] = [];
    for (let i = 0; i < 300; i++) burst.push(dataFrame(0x100 + i, [1, 2, 3, 4, 5, 6, 7, i & 0xff]));
    // 3 bursts of 100 frames (about 4.7 kB each, so several read boundaries per burst).
    for (let b = 0; b < 3; b++) {
      for (const f of burst.slice(b * 100, b * 100 + 100)) fx.gw.backend.inject(f);
      await Bun.sleep(50);
    }
    expect(await py.waitReceived(300)).toEqual(burst.map(pyText));
    expect(py.stderr.filter((l) => l.includes("Invalid Frame"))).toEqual([]);
  });

  test("frames python-can sends reach the bus and the cannelloni and Waveshare clients", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const cnl = await CannelloniTestClient.connect(fx.gw.port, { helloFirst: true });
    fx.defer(() => {
      if (!cnl.closed) cnl.close();
    });
    await cnl.handshake({ helloFirst: true });
    const ws = await WaveshareTestClient.connect(fx.gw.gateway.port("waveshare")!);
    fx.defer(() => {
      if (!ws.closed) ws.close();
    });
    const py = await python();
    await fx.attached(3);
    // python-can writes the id as `{id:X}` without padding, so an extended id is recognised only
    // from 0x1000 (4 digits); 0x800..0xFFF is three digits, a standard id to socketcand, and
    // refused (a limitation of python-can 4.1, documented in docs/clients.md).
    const sent = [
      dataFrame(0x123, [0x11, 0x22, 0x33]),
      dataFrame(0x7ff, []),
      dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true),
      dataFrame(0x1000, [0xff], true),
    ];
    for (const f of sent) py.send(f);
    await py.waitSent(4);
    const expected = ["123#112233", "7FF#", "1ABCDE0F#0102030405060708", "00001000#FF"];
    await waitFor(() => onBus.length === 4, "frames on the bus");
    expect(frameText(onBus)).toEqual(expected);
    expect(frameText(await cnl.waitFrames(4))).toEqual(expected);
    expect(frameText(await ws.waitFrames(4))).toEqual(expected);
    expect(ws.problems).toEqual([]);
    // python-can does not get its own frames back: a later bus frame is the first it sees.
    fx.gw.backend.inject(dataFrame(0x42, [0x42]));
    expect(await py.waitReceived(1)).toEqual(["42#42"]);
    await Bun.sleep(100);
    expect(py.received).toEqual(["42#42"]);
    expect(fx.gw.stats.protocol("socketcand")).toMatchObject({ clients: 1, rxFrames: 4, txFrames: 1, malformed: 0 });
  });

  test("an unknown bus name fails python-can's handshake and is counted", async () => {
    await fx.start();
    const py = await python("can7");
    expect(py.error).toContain("< ok > message expected");
    expect(fx.gw.stats.handshakeFailures).toBe(1);
    expect(fx.gw.stats.protocol("socketcand").handshakeFailures).toBe(1);
    await waitFor(() => fx.gw.gateway.registry.sessions.size === 0, "the session to close");
  });

  test("the bus name follows -socketcand-bus", async () => {
    await fx.start({ socketcandBus: "vcan3" });
    const py = await python("vcan3");
    expect(py.error).toBeNull();
    await fx.attached(1);
    fx.gw.backend.inject(dataFrame(0x3, [3]));
    expect(await py.waitReceived(1)).toEqual(["3#03"]);
  });
});

describe("socketcand handshake and commands (raw TCP client)", () => {
  test("greeting, open, rawmode, then frames in socketcand's format, each preceded by a space", async () => {
    await fx.start();
    const c = await raw();
    await c.waitElements(1);
    expect(c.text).toBe("< hi >");
    c.write("< open can0 >");
    await c.waitElements(2);
    expect(c.text).toBe("< hi >< ok >");
    // In socketcand's BCM mode (bus open, not raw) no frames are streamed.
    await Bun.sleep(20);
    fx.gw.backend.inject(dataFrame(0x1, [1]));
    c.write("< rawmode >");
    await c.waitElements(3);
    expect(c.text).toBe("< hi >< ok >< ok >");
    await fx.attached(1);
    fx.gw.backend.inject(dataFrame(0x123, [0xde, 0xad]));
    fx.gw.backend.inject(dataFrame(0x1abcde0f, [0x0a, 0xbc], true));
    fx.gw.backend.inject(dataFrame(0x7ff, []));
    await c.waitElements(6);
    const stream = c.text.slice("< hi >< ok >< ok >".length);
    expect(stream).toMatch(/^ < frame 123 \d+\.\d{6} DEAD > < frame 1ABCDE0F \d+\.\d{6} 0ABC > < frame 7FF \d+\.\d{6}  >$/);
    expect(c.frames).toEqual(["123#DEAD", "1ABCDE0F#0ABC", "7FF#"]);
  });

  test("a wrong bus name gets < error … > and the connection is closed; other clients unaffected", async () => {
    await fx.start();
    const good = await raw();
    await good.handshake("can0");
    await fx.attached(1);
    const bad = await raw();
    await bad.waitElements(1);
    bad.write("< open vcan0 >");
    await bad.waitClosed();
    expect(bad.elements.length).toBe(2);
    expect(bad.elements[1]).toMatch(/^error .*vcan0/);
    expect(fx.gw.stats.handshakeFailures).toBe(1);
    expect(fx.gw.stats.protocol("socketcand").handshakeFailures).toBe(1);
    expect(fx.gw.events().some((e) => e.msg === "handshake_failed" && e.protocol === "socketcand")).toBe(true);
    fx.gw.backend.inject(dataFrame(0x5, [5]));
    expect(await good.waitFrames(1)).toEqual(["005#05"]);
    expect(good.closed).toBe(false);
  });

  test("unsupported commands get < error … > and the session goes on", async () => {
    await fx.start();
    const onBus = fx.busRecorder();
    const c = await raw();
    await c.waitElements(1);
    // Before the bus is open: BCM and control commands.
    const early = ["< add 1 0 123 2 11 22 >", "< controlmode >", "< send 123 1 aa >", "< rawmode >"];
    for (const cmd of early) c.write(cmd);
    await c.waitElements(1 + early.length);
    c.write("< open can0 >");
    await c.waitElements(2 + early.length);
    c.write("< rawmode >");
    await c.waitElements(3 + early.length);
    await fx.attached(1);
    const later = [
      "< subscribe 0 0 123 >",
      "< unsubscribe 123 >",
      "< update 1 0 123 1 aa >",
      "< delete 123 >",
      "< filter 0 0 123 1 ff >",
      "< isotpmode >",
      "< isotpconf 123 321 0 0 0 0 0 >",
      "< bcmmode >",
      "< statistics 1000 >",
      "< bittiming 500000 0 0 0 0 0 >",
      "< frobnicate >",
      "< send 123 9 1 2 3 4 5 6 7 8 9 >",
      "< send 123 2 aa >",
    ];
    for (const cmd of later) c.write(cmd);
    await c.waitElements(3 + early.length + later.length);
    const replies = c.elements;
    expect(replies.slice(0, 1 + early.length)).toEqual(["hi", ...early.map(() => expect.stringMatching(/^error /))]);
    expect(replies.slice(1 + early.length, 3 + early.length)).toEqual(["ok", "ok"]);
    const laterReplies = replies.slice(3 + early.length);
    expect(laterReplies.length).toBe(later.length);
    for (const r of laterReplies) expect(r).toMatch(/^error \S/);
    expect(c.closed).toBe(false);
    // Still in raw mode: a valid send reaches the bus, bus frames still arrive.
    c.write("< send 123 2 aa bb >");
    await waitFor(() => onBus.length === 1, "the frame on the bus");
    expect(frameText(onBus)).toEqual(["123#AABB"]);
    fx.gw.backend.inject(dataFrame(0x9, [9]));
    expect(await c.waitFrames(1)).toEqual(["009#09"]);
    // The two bad `< send >` lines are counted as malformed frames; the session stays open.
    expect(fx.gw.stats.malformedFrames).toBe(2);
    expect(fx.gw.stats.protocol("socketcand").malformed).toBe(2);
    expect(fx.gw.stats.handshakeFailures).toBe(0);
  });

  test("a client that opens the bus but never enters raw mode is closed after -handshake-timeout", async () => {
    await fx.start({ handshakeTimeoutMs: 150 });
    const c = await raw();
    await c.waitElements(1);
    c.write("< open can0 >");
    await c.waitElements(2);
    await c.waitClosed();
    expect(c.elements).toEqual(["hi", "ok"]);
    expect(fx.gw.stats.protocol("socketcand").handshakeFailures).toBe(1);
    expect(fx.gw.gateway.hub.size).toBe(0);
  });

  test("< echo > is answered with < echo >, before and after raw mode", async () => {
    await fx.start();
    const c = await raw();
    await c.waitElements(1);
    c.write("< echo >");
    await c.waitElements(2);
    expect(c.elements[1]).toBe("echo");
    c.write("< open can0 >");
    await c.waitElements(3);
    c.write("< rawmode >");
    await c.waitElements(4);
    c.write("<echo>");
    await c.waitElements(5);
    expect(c.elements).toEqual(["hi", "echo", "ok", "ok", "echo"]);
  });

  test("bytes outside < … > are skipped as socketcand does; the session goes on", async () => {
    await fx.start();
    const c = await raw();
    await c.handshake("can0");
    c.write("< send 1 1 1 >GET / HTTP/1.1\r\n< send 2 1 2 >");
    const deadline = Date.now() + 3000;
    while (fx.gw.stats.protocol("socketcand").rxFrames < 2 && Date.now() < deadline) await Bun.sleep(5);
    expect(fx.gw.stats.protocol("socketcand").rxFrames).toBe(2);
    expect(fx.gw.stats.protocol("socketcand").malformed).toBe(0);
    expect(c.closed).toBe(false);
  });
});
