/**
 * DBC codec: decoding details canmatrix does not show (value names, units, FD padding, frames
 * too short) and encoding as the inverse of decoding, as a round trip over random values of
 * every signal of the fixture and of canmatrix's j1939.dbc (decoding itself is compared with
 * canmatrix in oracle.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { dataFrame } from "../../src/can/frame.ts";
import { DbcCodec, DbcEncodeError, type MessageCodec, dbcText, parseDbc, signalBits } from "../../src/dbc/index.ts";
import { J1939_DBC } from "./canmatrix.ts";

const COVERAGE = join(import.meta.dir, "..", "fixtures", "dbc", "coverage.dbc");
const codec = new DbcCodec(parseDbc(readFileSync(COVERAGE, "utf8"), "coverage.dbc"));

function values(decoded: { name: string; value: number; valueName?: string | undefined }[]): Record<string, number> {
  return Object.fromEntries(decoded.map((s) => [s.name, s.value]));
}

describe("DBC decoding", () => {
  test("value names, units, raw and physical", () => {
    const d = codec.decode(dataFrame(0x106, [0b0110, 130]))!;
    expect(d.message.name).toBe("Gearbox");
    expect(d.signals).toEqual([
      { name: "Gear", value: 2, raw: 2, unit: "", valueName: "N" },
      { name: "DoorState", value: 1, raw: 1, unit: "", valueName: "open" },
      { name: "OilTemp", value: 90, raw: 130, unit: "degC", valueName: undefined },
    ]);
  });

  test("unknown ids, remote and error frames decode to null; the extended flag matters", () => {
    expect(codec.decode(dataFrame(0x7ff, [1]))).toBeNull();
    expect(codec.decode(dataFrame(0x201, [1, 2, 3, 4, 5, 6, 7, 8], false))).toBeNull();
    expect(codec.decode(dataFrame(0x201, [1, 2, 3, 4, 5, 6, 7, 8], true))!.message.name).toBe("ExtendedMux");
    expect(codec.decode({ ...dataFrame(0x106, [1, 2]), canId: 0x106 | 0x40000000 })).toBeNull();
  });

  test("a frame shorter than the message decodes only the signals it holds", () => {
    const d = codec.decode(dataFrame(0x106, [3]))!;
    expect(d.signals.map((s) => s.name)).toEqual(["Gear", "DoorState"]);
  });

  test("multiplexing: only the selected branch", () => {
    expect(codec.message("SimpleMux")!.decode(new Uint8Array([0x01, 0x10, 0x27, 0, 0, 0, 0, 9])).map((s) => s.name)).toEqual(["Page", "Always", "P1Volt", "P1Current"]);
    expect(codec.message("SimpleMux")!.decode(new Uint8Array([0x03, 0, 0, 0, 0, 0, 0, 9])).map((s) => s.name)).toEqual(["Page", "Always"]);
    const ext = codec.message("ExtendedMux")!;
    expect(ext.decode(new Uint8Array([1, 8, 0x34, 0x12, 0, 0, 0, 0])).map((s) => `${s.name}=${s.raw}`)).toEqual(["Service=1", "Sub=8", "S1Value=4660"]);
    expect(ext.decode(new Uint8Array([1, 5, 0x34, 0x12, 0, 0, 0, 0])).map((s) => s.name)).toEqual(["Service", "Sub"]);
    expect(ext.decode(new Uint8Array([3, 5, 7, 0xfe, 0xff, 0, 0, 0])).map((s) => `${s.name}=${s.value}`)).toEqual(["Service=3", "Sub2Value=-1", "SvcRange=7"]);
  });
});

/** A random physical value a signal can carry exactly (its raw range, its value table). */
function randomValue(mc: MessageCodec, name: string, next: () => number): number | string {
  const s = mc.signals.find((x) => x.name === name)!.signal;
  if (s.valueType === "float32" && s.min < s.max) return Math.fround(((next() * (s.max - s.min) + s.min - s.offset) / s.factor)) * s.factor + s.offset;
  if (s.valueType === "float32") return Math.fround((next() - 0.5) * 1e6) * s.factor + s.offset;
  if (s.valueType === "float64") return (next() - 0.5) * 1e12 * s.factor + s.offset;
  if (s.valueNames.size > 0 && next() < 0.5) return [...s.valueNames.values()][Math.floor(next() * s.valueNames.size)]!;
  const bits = Math.min(s.length, 52);
  let raw = Math.floor(next() * 2 ** bits);
  if (s.valueType === "signed") raw -= 2 ** (bits - 1);
  const v = raw * s.factor + s.offset;
  if (s.min < s.max && (v < s.min || v > s.max)) return Math.round((s.min - s.offset) / s.factor) * s.factor + s.offset;
  return v;
}

/** A multiplexor value that selects one of its branches (picked at random), as a physical value. */
function selectingValue(mc: MessageCodec, index: number, next: () => number): number {
  const mux = mc.signals[index]!;
  const raws = mc.signals.filter((c) => c.muxIndex === index).flatMap((c) => c.signal.mux!.ranges.map((r) => r[0]));
  const raw = raws.length > 0 ? raws[Math.floor(next() * raws.length)]! : 0;
  return raw * mux.factor + mux.offset;
}

function overlapping(mc: MessageCodec, names: string[]): Set<string> {
  const owner = new Map<number, string>();
  const out = new Set<string>();
  for (const name of names) {
    const s = mc.signals.find((x) => x.name === name)!.signal;
    const { first, last } = signalBits(s.startBit, s.length, s.byteOrder);
    for (let b = first; b <= last; b++) {
      const o = owner.get(b);
      if (o !== undefined) {
        out.add(o);
        out.add(name);
      }
      owner.set(b, name);
    }
  }
  // A multiplexor stays: the branch depends on it (its overlap partners are dropped instead).
  for (const name of [...out]) if (mc.signals.find((x) => x.name === name)!.signal.isMultiplexor) out.delete(name);
  return out;
}

function roundTrip(c: DbcCodec, seed: number, rounds: number): { messages: number; signals: number } {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let signals = 0;
  for (const mc of c.messages) {
    for (let round = 0; round < rounds; round++) {
      // Multiplexors first (their value picks the branch), then what that branch carries.
      const given: Record<string, number | string> = {};
      for (const s of mc.order) {
        if (s.needBytes > mc.message.length) continue;
        if (s.muxIndex >= 0) {
          const muxName = mc.signals[s.muxIndex]!.name;
          const mv = given[muxName];
          if (mv === undefined || !s.selectedBy(Number(mc.signals[s.muxIndex]!.toRaw(mv)))) continue;
        }
        given[s.name] = s.signal.isMultiplexor ? selectingValue(mc, s.index, next) : randomValue(mc, s.name, next);
      }
      // Real files have overlapping signals (j1939.dbc does): only signals with bits of their own are checked.
      for (const name of overlapping(mc, Object.keys(given))) delete given[name];
      const frame = mc.frame(mc.encode(given));
      const got = c.decode(frame);
      expect(got).not.toBeNull();
      const decoded = new Map(got!.signals.map((s) => [s.name, s]));
      for (const [name, v] of Object.entries(given)) {
        const d = decoded.get(name);
        expect(d, `${mc.message.name}.${name}`).toBeDefined();
        if (typeof v === "string") expect(d!.valueName).toBe(v);
        else expect(Math.abs(d!.value - v)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(v)));
        signals++;
      }
    }
  }
  return { messages: c.messages.length, signals };
}

describe("DBC encoding", () => {
  test("encode is decode's inverse: every signal of the fixture, multiplexed branches included", () => {
    const r = roundTrip(codec, 1, 32);
    expect(r.signals).toBeGreaterThan(600);
  });

  test.skipIf(!existsSync(J1939_DBC))("round trip over every message of j1939.dbc", () => {
    const j = new DbcCodec(parseDbc(dbcText(readFileSync(J1939_DBC)), J1939_DBC));
    const r = roundTrip(j, 2, 4);
    expect(r.messages).toBe(357);
    expect(r.signals).toBeGreaterThan(8000);
  });

  test("exact bytes: Motorola across bytes, value names, FD padding", () => {
    const m = codec.encode("Motorola", { Cross12: 1422, Cross20s: -3877.11, Nibble: 9, Cross9: 452, Edge: 241 });
    // Cross12 = 2864 = 0xB30 from bit 3 of byte 0 down into byte 1; Cross20s = -387711 (0xA1581) from bit 1 of byte 2 down into byte 5.
    expect([...m.data]).toEqual([0x0b, 0x30, 0x02, 0x85, 0x60, 0x67, 0x88, 0x78]);
    expect(codec.decode(m)!.signals.map((s) => s.raw)).toEqual([2864, -387711, 9, 452, 120]);
    expect([...codec.encode("Gearbox", { Gear: "D", DoorState: "ajar", OilTemp: 20 }).data]).toEqual([0b1011, 60]);
    const fd = codec.encode("FdBig", { Head: 1, Tail: 12.3 });
    expect(fd.fd).toBe(true);
    expect(fd.len).toBe(64);
    expect(fd.canId >>> 0).toBe((0x18feca15 | 0x80000000) >>> 0);
    expect(fd.data[0]).toBe(1);
    expect(fd.data[62]! | (fd.data[63]! << 8)).toBe(123);
  });

  test("64-bit raw values are exact", () => {
    const f = codec.encode("Wide64", { Counter64: "18446744073709551615" });
    expect([...f.data]).toEqual([255, 255, 255, 255, 255, 255, 255, 255]);
    expect(codec.decode(f)!.signals[0]!.raw).toBe(18446744073709551615n);
    const s = codec.encode("Wide64Signed", { Big64s: -2 });
    expect(codec.decode(s)!.signals[0]!.raw).toBe(-2);
  });

  test("clear errors: unknown message or signal, out of range, wrong branch, bad name", () => {
    expect(() => codec.encode("Nope", {})).toThrow("no message 'Nope' in coverage.dbc");
    expect(() => codec.encode("Gearbox", { Gearz: 1 })).toThrow("Gearbox: no signal 'Gearz' (signals: Gear, DoorState, OilTemp)");
    expect(() => codec.encode("Gearbox", { OilTemp: 300 })).toThrow("Gearbox.OilTemp: 300 is outside the signal's range [-40, 215]");
    expect(() => codec.encode("Wide64", { Counter64: -1 })).toThrow("Wide64.Counter64: -1 needs raw -1, outside the 64-bit unsigned range 0..18446744073709551615");
    expect(() => codec.encode("Gearbox", { Gear: "X" })).toThrow("Gearbox.Gear: 'X' is not a number nor one of 'P', 'R', 'N', 'D'");
    expect(() => codec.encode("SimpleMux", { Page: 0, P1Volt: 3 })).toThrow("SimpleMux: signal P1Volt is not in the branch selected by Page=0");
    expect(() => codec.encode("SimpleMux", { P1Volt: 3 })).toThrow(DbcEncodeError);
    expect(() => codec.encode("Gearbox", JSON.parse('{"__proto__": 1}') as Record<string, number>)).toThrow("Gearbox: no signal '__proto__'");
    expect([...codec.encode("SimpleMux", { Page: "power", P1Volt: 12.5, Always: 7 }).data]).toEqual([1, 125, 0, 0, 0, 0, 0, 7]);
  });

  test("a value whose raw overflows the signal's type is a clear error, not Infinity bits or a RangeError", () => {
    // min = max = 0 (no range in the DBC), so only the raw conversion can catch these.
    expect(() => codec.encode("Floats", { Pressure: 1e39 })).toThrow("Floats.Pressure: 1e+39 needs raw 5e+38, beyond an IEEE float");
    expect(() => codec.encode("DoubleMotorola", { Distance: 1e306 })).toThrow("DoubleMotorola.Distance: 1e+306 needs raw Infinity, beyond an IEEE double");
    expect(() => codec.encode("ExtendedMux", { Service: 2, Sub2Value: 1e308 })).toThrow("ExtendedMux.Sub2Value: 1e+308 needs raw Infinity, outside the 16-bit signed range");
    // The largest finite values still encode.
    expect(codec.decode(codec.encode("Floats", { Pressure: 1e38 }))!.signals[1]!.value).toBeCloseTo(1e38, -32);
  });

  test("a value given as a decimal string is held to the signal's range like a number", () => {
    const db = parseDbc('VERSION ""\nBS_:\nBU_: ECU\nBO_ 300 Pct: 1 ECU\n SG_ Level : 0|8@1+ (1,0) [0|100] "%" ECU\n', "pct.dbc");
    const pct = new DbcCodec(db);
    expect(() => pct.encode("Pct", { Level: 200 })).toThrow("Pct.Level: 200 is outside the signal's range [0, 100]");
    // MQTT commands carry values as JSON strings just as often: the same refusal.
    expect(() => pct.encode("Pct", { Level: "200" })).toThrow("Pct.Level: 200 is outside the signal's range [0, 100]");
    expect([...pct.encode("Pct", { Level: "100" }).data]).toEqual([100]);
  });
});
