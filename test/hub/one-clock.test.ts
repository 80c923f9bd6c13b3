/**
 * One clock (issue 18 item 5): a frame's time is taken once, when it reaches the hub, and every
 * output shows that time. The gateway runs on a ManualClock (a test double for the wall clock:
 * stepping the system clock of this machine is not possible here); everything else is real —
 * listeners on loopback, real TCP clients, the pcap HTTP stream, the recorder's files.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock, SystemClock } from "../../src/can/clock.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { startRecorder } from "../../src/consumers/recorder.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startViewGateway, type ViewGateway } from "../capture/helpers.ts";
import { CanlogserverTestClient } from "../helpers/canlogserver-client.ts";
import { GvretTestClient } from "../helpers/gvret-client.ts";
import { SlcanTestClient } from "../helpers/slcan-client.ts";
import { RawSocketcandClient } from "../helpers/socketcand-clients.ts";
import { waitFor } from "../helpers/gateway.ts";
import { bridgeOf, Mosquitto, MqttSub, startConsumerGateway } from "../consumers/harness.ts";

describe("SystemClock", () => {
  function sources(wallMs: number, monoMs: number) {
    const s = { wall: wallMs, mono: monoMs };
    return { s, src: { wallMs: () => s.wall, monoMs: () => s.mono } };
  }

  test("sub-millisecond resolution between Date.now() ticks", () => {
    const { s, src } = sources(1_000_000, 50);
    const c = new SystemClock(src);
    expect(c.nowUs()).toBe(1_000_000_000);
    s.mono += 0.25;
    expect(c.nowUs()).toBe(1_000_000_250);
    s.mono += 0.5;
    expect(c.nowUs()).toBe(1_000_000_750);
    s.mono += 0.5;
    s.wall += 1;
    expect(c.nowUs()).toBe(1_000_001_250);
  });

  test("follows a step of the wall clock, forwards and backwards (NTP on a Pi without RTC)", () => {
    const { s, src } = sources(0, 10); // booted at the epoch, as a Pi without RTC may
    const c = new SystemClock(src);
    s.mono += 5;
    s.wall += 5;
    expect(c.nowUs()).toBe(5_000);
    s.wall = 1_765_000_000_000; // NTP steps
    s.mono += 1;
    expect(c.nowUs()).toBe(1_765_000_000_000_000);
    s.mono += 0.1;
    expect(c.nowUs()).toBe(1_765_000_000_000_100);
    s.wall -= 3_600_000; // the operator steps it back an hour
    s.mono += 0.1;
    expect(c.nowUs()).toBe(1_764_996_400_000_000);
  });

  test("a drift correction of under a millisecond never runs time backwards", () => {
    const { s, src } = sources(1_000, 0);
    const c = new SystemClock(src);
    s.mono = 0.9;
    expect(c.nowUs()).toBe(1_000_900);
    // The monotonic clock ran fast: Date.now() still says 1000 ms after 1.2 ms of monotonic time.
    s.mono = 1.2;
    expect(c.nowUs()).toBeGreaterThanOrEqual(1_000_900);
    expect(c.nowUs()).toBeLessThan(1_001_000);
  });

  test("the real clock agrees with Date.now()", () => {
    const c = new SystemClock();
    const before = Date.now() * 1000;
    const t = c.nowUs();
    const after = (Date.now() + 1) * 1000;
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(after);
  });
});

/** Parses the record times (µs) out of a classic pcap byte stream. */
function pcapTimes(bytes: Uint8Array): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let at = 24; at + 16 <= bytes.length; ) {
    const sec = v.getUint32(at, true);
    const usec = v.getUint32(at + 4, true);
    const incl = v.getUint32(at + 8, true);
    out.push(sec * 1e6 + usec);
    at += 16 + incl;
  }
  return out;
}

describe("every output shows the time the frame reached the gateway", () => {
  let g: ViewGateway | null = null;
  const cleanups: (() => void | Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
    await g?.stop();
    g = null;
  });

  test("a clock step moves the timestamps of every output alike", async () => {
    const T0 = 1_700_000_000_123_456; // µs
    const STEP = 3_601_234_567; // NTP steps the clock by 1 h 1.234567 s
    const clock = new ManualClock(T0);
    g = await startViewGateway(
      { socketcandListen: "127.0.0.1:0", canlogserverListen: "127.0.0.1:0", slcanListen: "127.0.0.1:0", gvretListen: "127.0.0.1:0" },
      { clock },
    );
    const gw = g.gateway;
    const dir = mkdtempSync(join(tmpdir(), "one-clock-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const { log } = memoryLogger("warn");
    const rec = await startRecorder(
      { record: dir, recordMaxBytes: 1 << 20, recordMaxFiles: 10, recordMaxAgeMs: 0 },
      { buses: gw.buses, allocateId: () => gw.registry.allocateId(), counters: new ConsumerCounters(), log },
    );
    cleanups.push(() => rec.stop(500));

    const sc = await RawSocketcandClient.connect(gw.port("socketcand")!);
    cleanups.push(() => sc.close());
    await sc.handshake("can0");
    const cl = await CanlogserverTestClient.connect(gw.port("canlogserver")!);
    cleanups.push(() => cl.close());
    const sl = await SlcanTestClient.connect(gw.port("slcan")!);
    cleanups.push(() => sl.close());
    sl.command("Z1");
    await sl.waitReplies(1);
    await sl.open();
    const gv = await GvretTestClient.connect(gw.port("gvret")!);
    cleanups.push(() => gv.close());
    await gv.openLikeSavvyCan();
    // the dashboard's live tail: {type:"frames", frames:[[ms, "123#01"], …]}
    const wsFrames: [number, string][] = [];
    const host = g.httpBase.replace("http://", "");
    const ws = new WebSocket(`ws://${host}/ws`, { headers: { origin: `http://${host}` } } as unknown as string[]);
    ws.onmessage = (ev) => {
      const m = JSON.parse(String(ev.data)) as { type: string; frames?: [number, string][] };
      if (m.type === "frames") wsFrames.push(...m.frames!);
    };
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("dashboard WebSocket failed"));
    });
    cleanups.push(() => ws.close());
    const pcap = await fetch(`${g.httpBase}/capture.pcap`);
    const reader = pcap.body!.getReader();
    cleanups.push(() => reader.cancel());
    await waitFor(() => gw.hub.size >= 7, "every consumer attached");

    g.backend.inject(dataFrame(0x101, [1]));
    clock.step(STEP);
    g.backend.inject(dataFrame(0x102, [2]));
    // a client frame: stamped when it enters the hub (the slcan client sends it)
    clock.step(1_000);
    sl.command("t1033030303");
    await sc.waitFrames(3);
    await cl.waitFrames(3);
    await sl.waitFrames(2); // the sender gets no echo of its own frame
    await waitFor(() => gv.received.length >= 3, "3 GVRET frames");

    const T1 = T0 + STEP;
    const T2 = T1 + 1_000;
    const sec = (us: number): string => `${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}`;
    // socketcand: `< frame ID SEC.USEC DATA >`
    const scTimes = Array.from(sc.text.matchAll(/< frame ([0-9A-F]+) (\d+\.\d{6}) /g), (m) => `${m[1]} ${m[2]}`);
    expect(scTimes).toEqual([`101 ${sec(T0)}`, `102 ${sec(T1)}`, `103 ${sec(T2)}`]);
    // canlogserver: `(SEC.USEC) IFACE FRAME`
    expect(cl.lines.map((l) => l.seconds * 1e6 + l.micros)).toEqual([T0, T1, T2]);
    // slcan Z1: milliseconds within the minute
    const msInMinute = (us: number): number => Math.floor(us / 1000) % 60_000;
    expect(sl.timestamps).toEqual([msInMinute(T0), msInMinute(T1)]);
    // GVRET: device micros since the session opened; the differences are the clock's
    const gvt = gv.received.slice(0, 3).map((r) => r.timestampUs);
    expect(((gvt[1]! - gvt[0]!) >>> 0)).toBe(STEP);
    expect(((gvt[2]! - gvt[1]!) >>> 0)).toBe(1_000);
    // pcap stream
    let bytes = new Uint8Array(0);
    while (pcapTimes(bytes).length < 3) {
      const { value } = await reader.read();
      const next = new Uint8Array(bytes.length + value!.length);
      next.set(bytes);
      next.set(value!, bytes.length);
      bytes = next;
    }
    expect(pcapTimes(bytes)).toEqual([T0, T1, T2]);
    // dashboard: milliseconds of the same stamps
    await waitFor(() => wsFrames.length >= 3, "3 frames on the dashboard", 5000);
    expect(wsFrames.slice(0, 3)).toEqual([
      [T0 / 1000, "101#01"],
      [T1 / 1000, "102#02"],
      [T2 / 1000, "103#030303"],
    ]);
    // recorder: lines and the file name, on the same clock
    await rec.stop(1000);
    const files = readdirSync(dir);
    expect(files).toEqual(["can-server-20231114-221320-123.log"]); // T0 in UTC
    const text = readFileSync(join(dir, files[0]!), "utf8");
    expect(text).toBe(`(${sec(T0)}) can0 101#01 R\n(${sec(T1)}) can0 102#02 R\n(${sec(T2)}) can0 103#030303 T\n`);
  });

  test("a backed-up client sees when its frames arrived, not when its queue drained", async () => {
    const T0 = 1_700_000_000_000_000;
    const clock = new ManualClock(T0);
    g = await startViewGateway({ socketcandListen: "127.0.0.1:0", hubBuffer: 100_000 }, { clock });
    const gw = g.gateway;
    const sc = await RawSocketcandClient.connect(gw.port("socketcand")!);
    cleanups.push(() => sc.close());
    await sc.handshake("can0");
    sc.pause();
    const session = [...gw.registry.sessions][0]!;
    // Until the socket pushes back and frames wait in the session's queue (bounded: 400k frames).
    let injected = 0;
    while (session.queued === 0 && injected < 400_000) {
      for (let i = 0; i < 2000; i++) g.backend.inject(dataFrame(0x100 + (injected++ % 0x100), [1, 2, 3, 4, 5, 6, 7, 8]));
      await Bun.sleep(1);
    }
    expect(session.queued).toBeGreaterThan(0);
    clock.step(60_000_000); // a minute later the queue drains
    sc.resume();
    await sc.waitFrames(injected, 20_000);
    const times = new Set(Array.from(sc.text.matchAll(/< frame [0-9A-F]+ (\d+\.\d{6}) /g), (m) => m[1]));
    expect([...times]).toEqual(["1700000000.000000"]);
  }, 30_000);

  test("MQTT raw frames carry the same stamp (ms), and follow a clock step", async () => {
    const T0 = 1_700_000_000_123_456;
    const clock = new ManualClock(T0);
    const broker = new Mosquitto();
    await broker.start();
    cleanups.push(() => broker.stop());
    const sub = await MqttSub.start(broker.port, "clk/raw/#");
    cleanups.push(() => sub.stop());
    const cg = await startConsumerGateway({ mqttUrl: broker.url, mqttPrefix: "clk" }, {}, clock);
    cleanups.push(() => cg.stop());
    await waitFor(() => bridgeOf(cg).connected, "bridge connected", 5000);
    cg.backend.inject(dataFrame(0x101, [1]));
    clock.step(3_601_234_567);
    cg.backend.inject(dataFrame(0x102, [2]));
    const a = await sub.waitTopic("clk/raw/101");
    const b = await sub.waitTopic("clk/raw/102");
    expect((JSON.parse(a.payload) as { ts: number }).ts).toBe(Math.floor(T0 / 1000));
    expect((JSON.parse(b.payload) as { ts: number }).ts).toBe(Math.floor((T0 + 3_601_234_567) / 1000));
  });
});
