/**
 * slcan (Lawicel) codec and session (docs/protocols.md §6): the shared conformance suite over the
 * frame lines, named byte vectors commented per byte, and the session driven the way python-can
 * and slcand (the kernel slcan driver behind it) drive an adapter.
 */
import { describe, expect, test } from "bun:test";
import { CAN_ERR_FLAG, type CanFrame, CANFD_BRS, CANFD_VALID_LENGTHS, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import {
  encodeSlcanFrames,
  formatSlcanFrame,
  parseSlcanFrame,
  SLCAN_MAX_LINE,
  SlcanLineReader,
  sja1000DualFilterAccepts,
  slcanTimestamp,
} from "../../src/protocols/slcan/codec.ts";
import { open, SLCAN_DEFAULT_PORT, SLCAN_NAME, type SlcanOptions } from "../../src/protocols/slcan/protocol.ts";
import { allAt } from "../helpers/stamped.ts";
import { Rng, runCodecConformance } from "./conformance.ts";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const text = (b: Uint8Array) => String.fromCharCode(...b);

function genSlcanFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  const kind = rng.int(10);
  if (kind < 2) return remoteFrame(id, rng.int(9), ext);
  // ESI has no slcan letter: only BRS survives the round trip.
  if (kind < 4) return fdFrame(id, rng.bytes(rng.pick(CANFD_VALID_LENGTHS)), rng.bool() ? CANFD_BRS : 0, ext);
  return dataFrame(id, rng.bytes(rng.int(9)), ext);
}

/** The frame-line decoder a client would run: lines → frames, bad lines counted. */
function makeLineDecoder(onFrame: (f: CanFrame) => void) {
  let rejected = 0;
  const reader = new SlcanLineReader({
    line: (l) => {
      if (l === "") return;
      const f = parseSlcanFrame(l, true);
      if (typeof f === "string") rejected++;
      else onFrame(f);
    },
    overlong: () => rejected++,
  });
  return { push: (c: Uint8Array) => (reader.push(c), null), buffered: () => reader.buffered, rejected: () => rejected };
}

runCodecConformance({
  name: "slcan",
  encode: (frames) => encodeSlcanFrames(allAt(0, frames), frames.length, { fd: true, timestamps: false }),
  makeDecoder: makeLineDecoder,
  genFrame: genSlcanFrame,
  maxBuffered: SLCAN_MAX_LINE,
  // 't' + id "12" and no DLC: a frame line too short to parse.
  malformed: ascii("t12\r"),
});

describe("slcan frame syntax", () => {
  test("standard data frame: t | id 3 hex | DLC digit | data", () => {
    expect(parseSlcanFrame("t1232AABB", false)).toEqual(dataFrame(0x123, [0xaa, 0xbb]));
  });
  test("extended data frame: T | id 8 hex | DLC | data", () => {
    expect(parseSlcanFrame("T1ABCDE0F10F", false)).toEqual(dataFrame(0x1abcde0f, [0x0f], true));
  });
  test("remote frames keep their DLC and carry no data", () => {
    expect(parseSlcanFrame("r7FF4", false)).toEqual(remoteFrame(0x7ff, 4));
    expect(parseSlcanFrame("R000000018", false)).toEqual(remoteFrame(1, 8, true));
  });
  test("lower-case hex is accepted", () => {
    expect(parseSlcanFrame("t1ab1ff", false)).toEqual(dataFrame(0x1ab, [0xff]));
  });
  test("a trailing 4-digit timestamp is ignored", () => {
    // t 123 DLC 1 data 42, timestamp EA5F (59999 ms)
    expect(parseSlcanFrame("t123142EA5F", false)).toEqual(dataFrame(0x123, [0x42]));
  });
  test("FD: d/D plain, b/B with BRS, DLC code F = 64 bytes", () => {
    const data64 = new Uint8Array(64).fill(0x11);
    expect(parseSlcanFrame("d123F" + "11".repeat(64), true)).toEqual(fdFrame(0x123, data64));
    expect(parseSlcanFrame("B123456789" + "22".repeat(12), true)).toEqual(fdFrame(0x12345678, new Uint8Array(12).fill(0x22), CANFD_BRS, true));
  });
  test("FD lines are refused without FD", () => {
    expect(parseSlcanFrame("d1230", false)).toContain("not enabled");
  });
  test("errors name the reason", () => {
    expect(parseSlcanFrame("t8001", false)).toContain("out of range"); // standard id 0x800
    expect(parseSlcanFrame("t1239", false)).toContain("DLC"); // classic DLC 9
    expect(parseSlcanFrame("t1232AA", false)).toContain("2 data bytes"); // one byte short
    expect(parseSlcanFrame("t1231AAB", false)).toContain("after the frame"); // stray digit
    expect(parseSlcanFrame("t12G0", false)).toContain("bad id");
  });
  test("formatting: upper-case, kernel layout", () => {
    expect(formatSlcanFrame(dataFrame(0x12, [0xde, 0xad]), null)).toBe("t0122DEAD");
    expect(formatSlcanFrame(dataFrame(0x12, [], true), null)).toBe("T000000120");
    expect(formatSlcanFrame(remoteFrame(0x123, 3), null)).toBe("r1233");
    expect(formatSlcanFrame(fdFrame(0x1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], CANFD_BRS), null)).toBe("b0019" + "0102030405060708090A0B0C");
    expect(formatSlcanFrame(dataFrame(0x1, [0x42]), 0xea5f)).toBe("t0011" + "42" + "EA5F");
  });
  test("timestamp is milliseconds within the minute (from µs)", () => {
    expect(slcanTimestamp(1_699_999_979_999_999)).toBe(59_999);
    expect(slcanTimestamp(1_699_999_980_000_000)).toBe(0);
  });
  test("encoder skips error frames and FD without FD", () => {
    const err: CanFrame = { canId: (CAN_ERR_FLAG | 4) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    const wire = encodeSlcanFrames(allAt(0, [err, fdFrame(1, [1]), dataFrame(2, [])]), 3, { fd: false, timestamps: false });
    expect(text(wire)).toBe("t0020\r");
  });
});

describe("slcan line reader", () => {
  test("CR, LF and CRLF all end a line; CRLF leaves an empty line", () => {
    const lines: string[] = [];
    const r = new SlcanLineReader({ line: (l) => lines.push(l), overlong: () => lines.push("!") });
    r.push(ascii("O\rC\nV\r\n"));
    expect(lines).toEqual(["O", "C", "V", ""]);
  });
  test("a line longer than the bound is skipped once, the next line still parses", () => {
    const lines: string[] = [];
    const r = new SlcanLineReader({ line: (l) => lines.push(l), overlong: () => lines.push("!") });
    r.push(ascii("x".repeat(SLCAN_MAX_LINE)));
    r.push(ascii("yyyy"));
    expect(r.buffered).toBe(0);
    r.push(ascii("zz\rO\r"));
    expect(lines).toEqual(["!", "O"]);
  });
});

describe("SJA1000 acceptance filter (M/m, dual filter mode)", () => {
  test("default code 0 / mask FFFFFFFF passes everything", () => {
    expect(sja1000DualFilterAccepts(dataFrame(0x7ff, [1]), 0, 0xffffffff)).toBe(true);
    expect(sja1000DualFilterAccepts(dataFrame(0x1fffffff, [], true), 0, 0xffffffff)).toBe(true);
  });
  test("standard id exact match via filter 1 (ACR0/ACR1), filter 2 closed", () => {
    // ACR0 = 0x24 (id 10..3 of 0x123), ACR1 = 0x60 (id 2..0 = 011, RTR 0), ACR2/3 = 0xFF 0xFF
    // AMR0 = 00, AMR1 = 0x0F (data nibble don't care), AMR2/3 = 00 00 with code FFFF (matches only 0x7FF RTR)
    const code = 0x2460ffff;
    const mask = 0x000f000f;
    expect(sja1000DualFilterAccepts(dataFrame(0x123, [0x55]), code, mask)).toBe(true);
    expect(sja1000DualFilterAccepts(dataFrame(0x124, [0x55]), code, mask)).toBe(false);
    expect(sja1000DualFilterAccepts(remoteFrame(0x123, 0), code, mask)).toBe(false); // RTR bit differs
  });
  test("extended: filter 2 (ACR2/ACR3) on id bits 28..13", () => {
    // id 0x18FEF100 >>> 13 = 0xC7F7; filter 1 expects 0x0000 exactly, filter 2 0xC7F7
    const code = 0x0000c7f7;
    const mask = 0x00000000;
    expect(sja1000DualFilterAccepts(dataFrame(0x18fef100, [], true), code, mask)).toBe(true);
    expect(sja1000DualFilterAccepts(dataFrame(0x18fef100 ^ 0x10000000, [], true), code, mask)).toBe(false);
    // low 13 bits are never compared in dual mode
    expect(sja1000DualFilterAccepts(dataFrame(0x18fef1ff, [], true), code, mask)).toBe(true);
  });
});

function recorder() {
  const rec = { frames: [] as CanFrame[], out: "", ready: 0, rejected: [] as string[], fails: [] as string[], notices: [] as string[] };
  const events: WireSessionEvents = {
    frame: (f) => rec.frames.push(f),
    reply: (b) => (rec.out += text(b)),
    ready: () => rec.ready++,
    rejected: (r) => rec.rejected.push(r),
    fail: (_k, r) => rec.fails.push(r),
  };
  return { events, rec };
}

function session(extra: Partial<SlcanOptions> = {}) {
  const { events, rec } = recorder();
  const s = open(events, { fd: false, busName: "can0", busBitrate: 50000, notice: (t) => rec.notices.push(t), ...extra });
  s.start();
  return { s, rec };
}

describe("slcan session", () => {
  test("identity", () => {
    expect(SLCAN_NAME).toBe("slcan");
    expect(SLCAN_DEFAULT_PORT).toBe(3333);
  });

  test("silent on connect, not ready, accepts nothing while closed", () => {
    const { s, rec } = session();
    expect(rec.out).toBe("");
    expect(rec.ready).toBe(0);
    expect(s.accepts(dataFrame(1, [1]))).toBe(false);
  });

  test("slcand -o -c -s2: 'C\\rS2\\r' then 'O\\r' → three CRs, ready on O", () => {
    const { s, rec } = session();
    s.receive(ascii("C\rS2\r"));
    expect(rec.ready).toBe(0);
    s.receive(ascii("O\r"));
    expect(rec.out).toBe("\r\r\r");
    expect(rec.ready).toBe(1);
    expect(s.channel).toBe("open");
    expect(s.requestedBitrate).toBe(50000);
    expect(rec.notices).toEqual([]); // S2 = 50 kbit/s = the bus
    expect(s.accepts(dataFrame(1, [1]))).toBe(true);
  });

  test("python-can: C, S6, empty line, O — the other bit rate is acknowledged and noticed", () => {
    const { s, rec } = session();
    s.receive(ascii("C\rS6\r\rO\r"));
    expect(rec.out).toBe("\r\r\r"); // the empty line gets no answer
    expect(rec.notices.length).toBe(1);
    expect(rec.notices[0]).toContain("500000");
    expect(s.channel).toBe("open");
  });

  test("the kernel driver's frame from cansend becomes a bus frame, acked with CR", () => {
    const { s, rec } = session();
    s.receive(ascii("O\r"));
    rec.out = "";
    // kernel slc_encaps: 't' id "123" DLC '4' data "DEADBEEF" CR
    s.receive(ascii("t1234DEADBEEF\r"));
    expect(rec.frames).toEqual([dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef])]);
    expect(rec.out).toBe("\r");
  });

  test("a command split across chunks", () => {
    const { s, rec } = session();
    s.receive(ascii("O\rT1ABC"));
    s.receive(ascii("DE0F2010"));
    s.receive(ascii("2\r"));
    expect(rec.frames).toEqual([dataFrame(0x1abcde0f, [0x01, 0x02], true)]);
  });

  test("frames while closed: BEL and rejected", () => {
    const { s, rec } = session();
    s.receive(ascii("t1230\r"));
    expect(rec.out).toBe("\x07");
    expect(rec.frames).toEqual([]);
    expect(rec.rejected.length).toBe(1);
  });

  test("listen-only: ready, receives bus frames, its frames refused with BEL", () => {
    const { s, rec } = session();
    s.receive(ascii("L\r"));
    expect(rec.ready).toBe(1);
    expect(s.accepts(dataFrame(1, []))).toBe(true);
    s.receive(ascii("t1230\r"));
    expect(rec.out).toBe("\r\x07");
    expect(rec.frames).toEqual([]);
    expect(rec.rejected[0]).toContain("listen-only");
  });

  test("bad frame line: BEL, rejected, session goes on", () => {
    const { s, rec } = session();
    s.receive(ascii("O\rt1239\rt1230\r"));
    expect(rec.out).toBe("\r\x07\r");
    expect(rec.frames).toEqual([dataFrame(0x123, [])]);
    expect(rec.rejected.length).toBe(1);
    expect(rec.fails).toEqual([]);
  });

  test("V, v, N, F answer with their values; unknown commands ring the bell", () => {
    const { s, rec } = session();
    s.receive(ascii("V\rv\rN\rF\rX\rQ1\r"));
    expect(rec.out).toBe("V1013\rv1014\rNCSGW\rF00\r\x07\x07");
  });

  test("O twice rings the bell; C on a closed channel is fine", () => {
    const { s, rec } = session();
    s.receive(ascii("C\rO\rO\r"));
    expect(rec.out).toBe("\r\r\x07");
    expect(rec.ready).toBe(1);
  });

  test("settings need a closed channel (S, s, Z, M, m)", () => {
    const { s, rec } = session();
    s.receive(ascii("O\rS4\rs031C\rZ1\rM00000000\rmFFFFFFFF\r"));
    expect(rec.out).toBe("\r\x07\x07\x07\x07\x07");
    s.receive(ascii("C\rs031C\r"));
    expect(rec.out.endsWith("\r\r")).toBe(true);
    expect(rec.notices.some((n) => n.includes("custom bit timing"))).toBe(true);
  });

  test("bad S argument rings the bell", () => {
    const { s, rec } = session();
    s.receive(ascii("SA\rS\rS12\r"));
    expect(rec.out).toBe("\x07\x07\x07");
  });

  test("C stops the flow: accepts() false, queued frames not encoded; O again does not re-fire ready", () => {
    const { s, rec } = session();
    s.receive(ascii("O\r"));
    const queued = allAt(0, [dataFrame(0x10, [1])]);
    s.receive(ascii("C\r"));
    expect(s.accepts(queued[0]!)).toBe(false);
    expect(s.encode(queued, 1).length).toBe(0);
    s.receive(ascii("O\r"));
    expect(rec.ready).toBe(1);
    expect(text(s.encode(queued, 1))).toBe("t010101\r");
  });

  test("Z1 appends the millisecond timestamp to bus frames", () => {
    const { s } = session();
    s.receive(ascii("Z1\rO\r"));
    expect(s.timestamps).toBe(true);
    // arrived at ...981.234 s → 1234 ms in the minute = 0x04D2 (the frame's time, not the encoding's)
    expect(text(s.encode(allAt(1_699_999_981_234_567, [dataFrame(0x7ff, [0xaa])]), 1))).toBe("t7FF1AA04D2\r");
  });

  test("acceptance filter set with M/m applies to bus frames", () => {
    const { s } = session();
    // filter 1: id 0x123 exact (data don't care); filter 2: code FFFF mask 0000 → only 0x7FF RTR
    s.receive(ascii("M2460FFFF\rm000F000F\rO\r"));
    expect(s.filter).toEqual({ code: 0x2460ffff, mask: 0x000f000f });
    expect(s.accepts(dataFrame(0x123, [9]))).toBe(true);
    expect(s.accepts(dataFrame(0x321, [9]))).toBe(false);
    expect(text(s.encode(allAt(0, [dataFrame(0x321, []), dataFrame(0x123, [])]), 2))).toBe("t1230\r");
  });

  test("FD only with fd: lines refused and FD bus frames not accepted without it", () => {
    const off = session();
    off.s.receive(ascii("O\rd1231AB\r"));
    expect(off.rec.out).toBe("\r\x07");
    expect(off.s.accepts(fdFrame(1, [1]))).toBe(false);
    const on = session({ fd: true });
    on.s.receive(ascii("O\rb1231AB\r"));
    expect(on.rec.frames).toEqual([fdFrame(0x123, [0xab], CANFD_BRS)]);
    expect(on.s.accepts(fdFrame(1, [1]))).toBe(true);
  });

  test("error frames are never accepted", () => {
    const { s } = session();
    s.receive(ascii("O\r"));
    expect(s.accepts({ canId: CAN_ERR_FLAG, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toBe(false);
  });

  test("an over-long line rings the bell once and is counted; never fatal", () => {
    const { s, rec } = session();
    s.receive(ascii("O\r"));
    s.receive(ascii("t" + "1".repeat(400) + "\rt1230\r"));
    expect(rec.out).toBe("\r\x07\r");
    expect(rec.rejected.length).toBe(1);
    expect(rec.fails).toEqual([]);
    expect(rec.frames.length).toBe(1);
  });

  test("replies to one chunk go out as one reply", () => {
    const { events, rec } = recorder();
    let replies = 0;
    const s = open({ ...events, reply: (b) => (replies++, events.reply(b)) }, { fd: false, busName: "can0" });
    s.receive(ascii("O\r" + "t1230\r".repeat(50)));
    expect(replies).toBe(1);
    expect(rec.out).toBe("\r".repeat(51));
  });

  test("random input never throws and never fails the session", () => {
    for (let seed = 1; seed <= 100; seed++) {
      const rng = new Rng(seed);
      const { s, rec } = session({ fd: rng.bool() });
      expect(() => {
        for (let i = 0; i < 20; i++) s.receive(rng.bytes(rng.int(80)));
      }).not.toThrow();
      expect(rec.fails).toEqual([]);
      expect(s.buffered).toBeLessThanOrEqual(SLCAN_MAX_LINE);
    }
  });
});
