/**
 * candump log lines (docs/protocols.md §9): formatter and parser vectors as candump -l, canplayer
 * and python-can's CanutilsLogReader write and read them, errors with line numbers, and the
 * resumable stream reader under any chunking.
 */
import { describe, expect, test } from "bun:test";
import {
  CANDUMP_MAX_LINE,
  CandumpLogReader,
  type CandumpLogRecord,
  CandumpLogSyntaxError,
  formatCandumpLogLine,
  formatLogTimestamp,
  parseCandumpLog,
  parseCandumpLogLine,
} from "../../src/can/candump-log.ts";
import { CAN_ERR_FLAG, CANFD_BRS, CANFD_ESI, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import { randomChunks, Rng } from "./conformance.ts";

const T = 1_700_000_000_123_456;

describe("candump log formatting", () => {
  test("classic, extended, RTR, error frames", () => {
    expect(formatCandumpLogLine({ timestampUs: T, iface: "can0", frame: dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]) })).toBe("(1700000000.123456) can0 123#DEADBEEF");
    expect(formatCandumpLogLine({ timestampUs: T, iface: "vcan0", frame: dataFrame(0x12345678, [], true) })).toBe("(1700000000.123456) vcan0 12345678#");
    expect(formatCandumpLogLine({ timestampUs: T, iface: "can0", frame: remoteFrame(0x123, 4) })).toBe("(1700000000.123456) can0 123#R4");
    expect(formatCandumpLogLine({ timestampUs: T, iface: "can0", frame: remoteFrame(0x123, 0) })).toBe("(1700000000.123456) can0 123#R");
    const err = { canId: (CAN_ERR_FLAG | 0x4) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    expect(formatCandumpLogLine({ timestampUs: T, iface: "can0", frame: err })).toBe("(1700000000.123456) can0 20000004#0000000000000000");
  });

  test("FD: flags digit carries FDF (0x04) as can-utils writes it", () => {
    expect(formatCandumpLogLine({ timestampUs: T, iface: "can0", frame: fdFrame(0x123, [0x11, 0x22]) })).toBe("(1700000000.123456) can0 123##41122");
    expect(formatCandumpLogLine({ timestampUs: T, iface: "can0", frame: fdFrame(0x123, [], CANFD_BRS | CANFD_ESI) })).toBe("(1700000000.123456) can0 123##7");
  });

  test("direction token and timestamp padding", () => {
    expect(formatCandumpLogLine({ timestampUs: 5, iface: "can0", frame: dataFrame(1, []), direction: "T" })).toBe("(0.000005) can0 001# T");
    expect(formatLogTimestamp(1_000_000)).toBe("1.000000");
  });
});

describe("candump log parsing", () => {
  test("the lines above parse back", () => {
    expect(parseCandumpLogLine("(1700000000.123456) can0 123#DEADBEEF")).toEqual({ timestampUs: T, iface: "can0", frame: dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]) });
    expect(parseCandumpLogLine("(1700000000.123456) can0 123#R4").frame).toEqual(remoteFrame(0x123, 4));
    expect(parseCandumpLogLine("(1700000000.123456) can0 123##41122").frame).toEqual(fdFrame(0x123, [0x11, 0x22]));
    expect(parseCandumpLogLine("(1700000000.123456) can0 123##11122").frame).toEqual(fdFrame(0x123, [0x11, 0x22], CANFD_BRS));
    expect(parseCandumpLogLine("(1.5) can0 001#  R")).toEqual({ timestampUs: 1_500_000, iface: "can0", frame: dataFrame(1, []), direction: "R" });
  });

  test("lower-case hex, dotted data, CR at the end", () => {
    expect(parseCandumpLogLine("(1.000001) can1 7ff#de.ad\r").frame).toEqual(dataFrame(0x7ff, [0xde, 0xad]));
  });

  test("errors carry the line number and the reason", () => {
    const cases: [string, string][] = [
      ["1700000000.1 can0 123#", "timestamp"],
      ["(1700000000.123456) can0", "fields"],
      ["(1700000000.123456) can0 12#00", "3 (standard) or 8"],
      ["(1700000000.123456) can0 123#0", "data bytes"],
      ["(1700000000.123456) can0 123#001122334455667788", "longer than 8"],
      ["(1700000000.123456) can0 123##4" + "00".repeat(9), "FD length 9"],
      ["(1700000000.123456) can0 123# X", "direction"],
      ["(1700000000.123456) abcdefghijklmnop 123#", "interface"],
    ];
    for (const [line, why] of cases) {
      let err: unknown;
      try {
        parseCandumpLogLine(line, 42);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CandumpLogSyntaxError);
      expect((err as CandumpLogSyntaxError).line).toBe(42);
      expect((err as CandumpLogSyntaxError).message).toContain("line 42");
      expect((err as CandumpLogSyntaxError).reason).toContain(why);
    }
  });

  test("whole text: lines not starting with '(' are skipped (canplayer), bad lines reported, rest parsed", () => {
    const text = ["# recorded on the bench", "(1.000000) can0 001#01", "", "(2.000000) can0 XYZ#", "(3.000000) can0 002#R2", ""].join("\n");
    const r = parseCandumpLog(text);
    expect(r.records.map((x) => x.frame)).toEqual([dataFrame(1, [1]), remoteFrame(2, 2)]);
    expect(r.errors.map((e) => e.line)).toEqual([4]);
    expect(r.skipped).toBe(2);
  });
});

function genRecord(rng: Rng): CandumpLogRecord {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  const k = rng.int(6);
  const frame = k === 0 ? remoteFrame(id, rng.int(9), ext) : k === 1 ? fdFrame(id, rng.bytes(rng.pick([0, 5, 8, 12, 64])), rng.int(4), ext) : dataFrame(id, rng.bytes(rng.int(9)), ext);
  const rec = { timestampUs: rng.int(2 ** 31) * 1_000_000 + rng.int(1_000_000), iface: rng.pick(["can0", "vcan12", "slcan0"]), frame };
  return rng.bool(0.2) ? { ...rec, direction: rng.pick(["R", "T"] as const) } : rec;
}

describe("candump log stream reader", () => {
  test("random records survive random chunking exactly (seeded)", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const rng = new Rng(seed);
      const recs = Array.from({ length: 1 + rng.int(80) }, () => genRecord(rng));
      const wire = new TextEncoder().encode(recs.map((r) => formatCandumpLogLine(r) + "\n").join(""));
      const got: CandumpLogRecord[] = [];
      const reader = new CandumpLogReader({ record: (r) => got.push(r), error: (e) => { throw e; } });
      for (const c of randomChunks(rng, wire, 1 + rng.int(50))) {
        reader.push(c);
        expect(reader.buffered).toBeLessThanOrEqual(CANDUMP_MAX_LINE);
      }
      reader.end();
      expect(got).toEqual(recs);
    }
  });

  test("a last line without newline is parsed at end(); an over-long line is reported once with its number", () => {
    const got: CandumpLogRecord[] = [];
    const errors: CandumpLogSyntaxError[] = [];
    const reader = new CandumpLogReader({ record: (r) => got.push(r), error: (e) => errors.push(e) });
    reader.push(new TextEncoder().encode("(1.0) can0 001#\n(" + "9".repeat(CANDUMP_MAX_LINE) + "\n(2.0) can0 002#"));
    expect(reader.buffered).toBeLessThan(CANDUMP_MAX_LINE);
    reader.end();
    expect(got.map((r) => r.frame)).toEqual([dataFrame(1, []), dataFrame(2, [])]);
    expect(errors.map((e) => e.line)).toEqual([2]);
  });

  test("random garbage never throws out of the reader and stays bounded", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Rng(seed * 101);
      const reader = new CandumpLogReader({ record: () => {}, error: () => {} });
      expect(() => {
        for (const c of randomChunks(rng, rng.bytes(2000), 64)) reader.push(c);
        reader.end();
      }).not.toThrow();
      expect(reader.buffered).toBeLessThanOrEqual(CANDUMP_MAX_LINE);
    }
  });
});
