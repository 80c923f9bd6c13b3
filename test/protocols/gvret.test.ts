/**
 * GVRET codec and session (docs/protocols.md §7): the shared conformance suite over the host →
 * device frame commands, named byte vectors commented per byte, and the session driven with
 * SavvyCAN's connection sequence. Device → host bytes are checked with a small reader written
 * from SavvyCAN's procRXChar rules (the client the gateway must satisfy).
 */
import { describe, expect, test } from "bun:test";
import { CAN_ERR_FLAG, type CanFrame, CANFD_VALID_LENGTHS, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import {
  encodeGvretFrames,
  encodeGvretHostFrames,
  GVRET_DISCOVERY_PAYLOAD,
  GVRET_MAX_COMMAND,
  GvretHostDecoder,
} from "../../src/protocols/gvret/codec.ts";
import { GVRET_DEFAULT_PORT, GVRET_NAME, type GvretOptions, open } from "../../src/protocols/gvret/protocol.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import { Rng, runCodecConformance } from "./conformance.ts";
import { allAt } from "../helpers/stamped.ts";
import { ManualClock } from "../../src/can/clock.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

function genGvretFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  if (rng.bool(0.2)) return fdFrame(id, rng.bytes(rng.pick(CANFD_VALID_LENGTHS.filter((l) => l > 8))), 0, ext);
  return dataFrame(id, rng.bytes(rng.int(9)), ext);
}

function makeHostDecoder(onFrame: (f: CanFrame) => void) {
  let rejected = 0;
  const d = new GvretHostDecoder({
    binaryMode: () => {},
    frame: (f) => onFrame(f),
    echo: () => {},
    query: () => {},
    setupBuses: () => {},
    rejected: () => rejected++,
  });
  return { push: (c: Uint8Array) => (d.push(c), null), buffered: () => d.buffered, rejected: () => rejected };
}

runCodecConformance({
  name: "gvret (host → device)",
  encode: (frames) => encodeGvretHostFrames(frames),
  makeDecoder: makeHostDecoder,
  genFrame: genGvretFrame,
  maxBuffered: GVRET_MAX_COMMAND + 2,
  // F1 00 | id 0x00000800 (standard, above 0x7FF) | bus 0 | len 0 | checksum
  malformed: bytes(0xf1, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00),
});

/** Device → host reader following SavvyCAN's rules (classic frame ends at its last data byte). */
function savvyRead(wire: Uint8Array): { frames: { id: number; ext: boolean; bus: number; data: number[]; fd: boolean; ts: number }[]; replies: number[][] } {
  const frames: { id: number; ext: boolean; bus: number; data: number[]; fd: boolean; ts: number }[] = [];
  const replies: number[][] = [];
  let i = 0;
  const u32 = (o: number) => (wire[o]! | (wire[o + 1]! << 8) | (wire[o + 2]! << 16) | (wire[o + 3]! << 24)) >>> 0;
  while (i < wire.length) {
    if (wire[i] !== 0xf1) {
      i++;
      continue;
    }
    const cmd = wire[i + 1]!;
    if (cmd === 0) {
      const idw = u32(i + 6);
      const lb = wire[i + 10]!;
      const n = lb & 0xf;
      frames.push({ ts: u32(i + 2), id: idw & 0x7fffffff, ext: (idw & 0x80000000) !== 0, bus: lb >> 4, data: Array.from(wire.subarray(i + 11, i + 11 + n)), fd: false });
      i += 11 + n; // the trailing 00 is skipped as idle noise
    } else if (cmd === 20) {
      const idw = u32(i + 6);
      const n = wire[i + 10]!;
      frames.push({ ts: u32(i + 2), id: idw & 0x7fffffff, ext: (idw & 0x80000000) !== 0, bus: wire[i + 11]!, data: Array.from(wire.subarray(i + 12, i + 12 + n)), fd: true });
      expect(wire[i + 12 + n]).toBe(0); // SavvyCAN needs the trailing byte to finish an FD frame
      i += 13 + n;
    } else {
      const len = ({ 1: 4, 6: 10, 7: 6, 9: 2, 12: 1, 13: 15 } as Record<number, number>)[cmd];
      if (len === undefined) throw new Error(`unexpected reply command ${cmd}`);
      replies.push(Array.from(wire.subarray(i, i + 2 + len)));
      i += 2 + len;
    }
  }
  return { frames, replies };
}

describe("gvret device → host encoding", () => {
  test("classic standard frame: F1 00 | ts u32 LE | id u32 LE | len|bus<<4 | data | 00", () => {
    const wire = encodeGvretFrames(allAt(1_000_000 + 0x04030201, [dataFrame(0x123, [0xaa, 0xbb])]), 1, { fd: false, epochUs: 1_000_000 });
    expect(Array.from(wire)).toEqual([
      0xf1, 0x00, // frame
      0x01, 0x02, 0x03, 0x04, // timestamp 0x04030201 µs, little-endian
      0x23, 0x01, 0x00, 0x00, // id 0x123
      0x02, // len 2, bus 0 in the high nibble
      0xaa, 0xbb, // data
      0x00, // checksum byte (always 0)
    ]);
  });

  test("extended frame sets bit 31 of the id word", () => {
    const wire = encodeGvretFrames(allAt(5, [dataFrame(0x1abcde0f, [], true)]), 1, { fd: false, epochUs: 5 });
    expect(Array.from(wire)).toEqual([0xf1, 0x00, 0, 0, 0, 0, 0x0f, 0xde, 0xbc, 0x9a, 0x00, 0x00]);
  });

  test("FD frame as command 20: len and bus in separate bytes", () => {
    const data = Array.from({ length: 12 }, (_, i) => i);
    const wire = encodeGvretFrames(allAt(7, [fdFrame(0x10, data)]), 1, { fd: true, epochUs: 0 });
    expect(Array.from(wire)).toEqual([0xf1, 0x14, 7, 0, 0, 0, 0x10, 0, 0, 0, 12, 0, ...data, 0x00]);
  });

  test("RTR, error and (without fd) FD frames are skipped", () => {
    const err: CanFrame = { canId: (CAN_ERR_FLAG | 1) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    expect(encodeGvretFrames(allAt(0, [remoteFrame(1, 2), err, fdFrame(1, [1])]), 3, { fd: false, epochUs: 0 }).length).toBe(0);
  });

  test("a SavvyCAN-style reader recovers every frame of a random batch", () => {
    const rng = new Rng(9);
    const frames = Array.from({ length: 100 }, () => genGvretFrame(rng));
    const got = savvyRead(encodeGvretFrames(allAt(123, frames), frames.length, { fd: true, epochUs: 0 })).frames;
    expect(got.length).toBe(100);
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i]!;
      expect(got[i]!.data).toEqual(Array.from(f.data));
      expect(got[i]!.fd).toBe(f.fd);
      expect(got[i]!.ext).toBe((f.canId & 0x80000000) !== 0);
      expect(got[i]!.ts).toBe(123);
    }
  });
});

describe("gvret host → device decoding", () => {
  test("SavvyCAN's frame write: F1 00 | id LE | bus | len | data | 00", () => {
    const frames: CanFrame[] = [];
    const d = makeHostDecoder((f) => frames.push(f));
    // F1 00 | id 0x80000005 (extended 5) | bus 0 | len 3 | 01 02 03 | checksum 0
    d.push(bytes(0xf1, 0x00, 0x05, 0x00, 0x00, 0x80, 0x00, 0x03, 0x01, 0x02, 0x03, 0x00));
    expect(frames).toEqual([dataFrame(5, [1, 2, 3], true)]);
  });

  test("a frame split across TCP segments at every byte", () => {
    const wire = encodeGvretHostFrames([dataFrame(0x7ff, [9, 8, 7, 6, 5, 4, 3, 2])]);
    for (let cut = 1; cut < wire.length; cut++) {
      const frames: CanFrame[] = [];
      const d = makeHostDecoder((f) => frames.push(f));
      d.push(wire.subarray(0, cut));
      expect(frames.length).toBe(0);
      d.push(wire.subarray(cut));
      expect(frames).toEqual([dataFrame(0x7ff, [9, 8, 7, 6, 5, 4, 3, 2])]);
    }
  });

  test("garbage before, between and unknown commands are skipped", () => {
    const frames: CanFrame[] = [];
    const d = makeHostDecoder((f) => frames.push(f));
    const one = encodeGvretHostFrames([dataFrame(1, [1])]);
    // text-mode noise, an unknown command F1 7F, a doubled F1, then frames
    d.push(new Uint8Array([0x41, 0x42, 0x0d, ...one, 0xf1, 0x7f, 0x00, 0xf1, ...one]));
    expect(frames).toEqual([dataFrame(1, [1]), dataFrame(1, [1])]);
  });

  test("SavvyCAN FD send: command 0 with a payload longer than 8 is an FD frame", () => {
    const frames: CanFrame[] = [];
    const d = makeHostDecoder((f) => frames.push(f));
    const data = Array.from({ length: 16 }, (_, i) => i);
    d.push(bytes(0xf1, 0x00, 0x10, 0, 0, 0, 0x00, 16, ...data, 0x00));
    expect(frames).toEqual([fdFrame(0x10, data)]);
  });

  test("length above 64 is rejected and the decoder resynchronises", () => {
    const frames: CanFrame[] = [];
    const d = makeHostDecoder((f) => frames.push(f));
    d.push(new Uint8Array([0xf1, 0x00, 1, 0, 0, 0, 0, 200, ...encodeGvretHostFrames([dataFrame(2, [])])]));
    expect(frames).toEqual([dataFrame(2, [])]);
    expect(d.rejected()).toBe(1);
  });

  test("invalid FD length 13 is rejected, stream stays in step", () => {
    const frames: CanFrame[] = [];
    const d = makeHostDecoder((f) => frames.push(f));
    d.push(new Uint8Array([0xf1, 0x14, 1, 0, 0, 0, 0, 13, ...new Array(13).fill(0), 0, ...encodeGvretHostFrames([dataFrame(3, [3])])]));
    expect(frames).toEqual([dataFrame(3, [3])]);
    expect(d.rejected()).toBe(1);
  });
});

function recorder() {
  const rec = { frames: [] as CanFrame[], out: [] as number[], replies: 0, ready: 0, rejected: [] as string[], fails: [] as string[] };
  const events: WireSessionEvents = {
    frame: (f) => rec.frames.push(f),
    reply: (b) => {
      rec.replies++;
      rec.out.push(...b);
    },
    ready: () => rec.ready++,
    rejected: (r) => rec.rejected.push(r),
    fail: (_k, r) => rec.fails.push(r),
  };
  return { events, rec };
}

function session(extra: Partial<GvretOptions> = {}) {
  const { events, rec } = recorder();
  const clock = new ManualClock(1_700_000_000_000_000);
  const s = open(events, { fd: false, busName: "can0", busBitrate: 50000, clock, ...extra });
  s.start();
  return { s, rec, clock, advance: (ms: number) => clock.step(ms * 1000) };
}

// SavvyCAN deviceConnected(): E7 E7, F1 0C, F1 06, F1 07, F1 01, F1 09 in one write.
const SAVVYCAN_OPENING = bytes(0xe7, 0xe7, 0xf1, 0x0c, 0xf1, 0x06, 0xf1, 0x07, 0xf1, 0x01, 0xf1, 0x09);

describe("gvret session", () => {
  test("identity", () => {
    expect(GVRET_NAME).toBe("gvret");
    expect(GVRET_DEFAULT_PORT).toBe(23);
    expect(Array.from(GVRET_DISCOVERY_PAYLOAD)).toEqual([0x1c, 0xef, 0xac, 0xed]);
  });

  test("silent and not ready until E7", () => {
    const { rec } = session();
    expect(rec.out).toEqual([]);
    expect(rec.ready).toBe(0);
  });

  test("SavvyCAN's opening write: ready, then every answer it waits for, in order, in one reply", () => {
    const { s, rec, advance } = session();
    advance(2.5); // 2500 µs since the session opened
    s.receive(SAVVYCAN_OPENING);
    expect(rec.ready).toBe(1);
    expect(rec.replies).toBe(1);
    expect(rec.out).toEqual([
      0xf1, 0x0c, 0x01, // one bus
      0xf1, 0x06, 0x01, 0x50, 0xc3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // can0 enabled at 50000 (0xC350); can1 off
      0xf1, 0x07, 0x6a, 0x02, 0x20, 0x00, 0x00, 0x00, // build 618, EEPROM version 0x20
      0xf1, 0x01, 0xc4, 0x09, 0x00, 0x00, // time sync: 2500 µs
      0xf1, 0x09, 0xde, 0xad, // keepalive
    ]);
  });

  test("SavvyCAN asks for extended buses after the bus count: 15 zero bytes", () => {
    const { s, rec } = session();
    s.receive(bytes(0xe7, 0xf1, 0x0d));
    expect(rec.out).toEqual([0xf1, 0x0d, ...new Array(15).fill(0)]);
  });

  test("keepalive every 250 ms for 10 s is answered every time", () => {
    const { s, rec, advance } = session();
    s.receive(SAVVYCAN_OPENING);
    rec.out = [];
    for (let i = 0; i < 40; i++) {
      advance(250);
      s.receive(bytes(0xf1, 0x09));
    }
    expect(rec.out.length).toBe(160);
    expect(savvyRead(Uint8Array.from(rec.out)).replies.every((r) => r[1] === 9 && r[2] === 0xde && r[3] === 0xad)).toBe(true);
    expect(rec.fails).toEqual([]);
  });

  test("frames both ways; device timestamps are arrival times since the session opened", () => {
    const { s, rec, clock, advance } = session();
    s.receive(SAVVYCAN_OPENING);
    s.receive(encodeGvretHostFrames([dataFrame(0x100, [1, 2])]));
    expect(rec.frames).toEqual([dataFrame(0x100, [1, 2])]);
    advance(1);
    const arrived = clock.us;
    advance(500); // encoded later (a backed-up client): the device time is still the arrival's
    const got = savvyRead(s.encode(allAt(arrived, [dataFrame(0x200, [3]), dataFrame(0x1234567, [4], true)]), 2)).frames;
    expect(got.map((f) => [f.id, f.ext, f.bus, f.data])).toEqual([
      [0x200, false, 0, [3]],
      [0x1234567, true, 0, [4]],
    ]);
    expect(got[0]!.ts).toBe(1000);
  });

  test("a host frame for bus 1 is rejected; FD without fd is rejected", () => {
    const { s, rec } = session();
    s.receive(encodeGvretHostFrames([dataFrame(1, [1])], 1));
    s.receive(encodeGvretHostFrames([fdFrame(1, new Array(12).fill(0))]));
    expect(rec.frames).toEqual([]);
    expect(rec.rejected.length).toBe(2);
  });

  test("FD with fd: both ways as command 20", () => {
    const { s, rec } = session({ fd: true });
    s.receive(encodeGvretHostFrames([fdFrame(1, new Array(12).fill(7))]));
    expect(rec.frames).toEqual([fdFrame(1, new Array(12).fill(7))]);
    expect(s.accepts(fdFrame(1, [1]))).toBe(true);
    expect(s.encode(allAt(0, [fdFrame(1, [1])]), 1)[1]).toBe(0x14);
  });

  test("accepts data frames only; FD only with fd", () => {
    const { s } = session();
    expect(s.accepts(dataFrame(1, [1]))).toBe(true);
    expect(s.accepts(remoteFrame(1, 1))).toBe(false);
    expect(s.accepts({ canId: CAN_ERR_FLAG, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toBe(false);
    expect(s.accepts(fdFrame(1, [1]))).toBe(false);
  });

  test("bus set-up (F1 05 + 8 bytes + 00) is silent and does not desync", () => {
    const notices: string[] = [];
    const { s, rec } = session({ notice: (t) => notices.push(t) });
    // can0: valid | enabled | 500000 (0x7A120); can1: 0; trailing 00 as SavvyCAN writes it
    s.receive(bytes(0xe7, 0xf1, 0x05, 0x20, 0xa1, 0x07, 0xc0, 0, 0, 0, 0, 0x00, 0xf1, 0x09));
    expect(rec.out).toEqual([0xf1, 0x09, 0xde, 0xad]);
    expect(notices.length).toBe(1);
  });

  test("echo (F1 0B) comes back to this client as a received frame, not to the bus", () => {
    const { s, rec } = session();
    s.receive(bytes(0xe7, 0xf1, 0x0b, 0x21, 0x00, 0x00, 0x00, 0x00, 0x01, 0x55, 0x00));
    expect(rec.frames).toEqual([]);
    expect(savvyRead(Uint8Array.from(rec.out)).frames.map((f) => [f.id, f.data])).toEqual([[0x21, [0x55]]]);
  });

  test("echo keeps its bus; an echo for a bus past the last is rejected, not shown on bus 0", () => {
    const two = session({ busNames: ["can0", "can1"] });
    two.s.receive(bytes(0xe7, 0xf1, 0x0b, 0x21, 0x00, 0x00, 0x00, 0x01, 0x01, 0x55, 0x00));
    expect(savvyRead(Uint8Array.from(two.rec.out)).frames.map((f) => [f.id, f.bus])).toEqual([[0x21, 1]]);
    const { s, rec } = session({ busNames: ["can0", "can1"] });
    s.receive(bytes(0xe7, 0xf1, 0x0b, 0x21, 0x00, 0x00, 0x00, 0x05, 0x01, 0x55, 0x00));
    expect(savvyRead(Uint8Array.from(rec.out)).frames).toEqual([]);
    expect(rec.rejected).toEqual(["echo for bus 5: this device has buses 0 to 1"]);
  });

  test("random input never throws, never fails, stays bounded", () => {
    for (let seed = 1; seed <= 100; seed++) {
      const rng = new Rng(seed);
      const { s, rec } = session({ fd: rng.bool() });
      expect(() => {
        for (let i = 0; i < 20; i++) s.receive(rng.bytes(rng.int(100)));
      }).not.toThrow();
      expect(rec.fails).toEqual([]);
      expect(s.buffered).toBeLessThanOrEqual(GVRET_MAX_COMMAND + 2);
    }
  });
});
