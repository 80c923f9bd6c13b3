/**
 * Byte-vector tests of the Ampio decoder, one block per subtype. The frames are the layouts of
 * aioampio's own test vectors (tests/test_ampio_codecs_smoke.py) and of the serial adapter spec
 * example, plus edge cases for signedness, masking and short frames; every byte is commented.
 * Layouts: docs/ampio.md.
 */
import { describe, expect, test } from "bun:test";
import {
  type AmpioPayload,
  type DecodeResult,
  AMPIO_COMMAND_ID,
  SATEL_COMMAND_ID,
  SATEL_STATUS_KEY,
  SUBTYPES,
  decodeAmpio,
  satelResponse,
  stateKeyName,
} from "../../src/ampio/decoder.ts";
import { CAN_ERR_FLAG, type CanFrame, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";

/** A module id of the size real Ampio modules use. */
const MODULE = 0x00001a2b;

function mod(bytes: readonly number[], id = MODULE): CanFrame {
  return dataFrame(id, bytes, true);
}

type Decoded = Extract<DecodeResult, { kind: "decoded" }>;

function decoded(bytes: readonly number[]): Decoded {
  const r = decodeAmpio(mod(bytes));
  if (r.kind !== "decoded") throw new Error(`expected decoded, got ${JSON.stringify(r)}`);
  return r;
}

function payloadOf<T extends AmpioPayload["type"]>(bytes: readonly number[], type: T): Extract<AmpioPayload, { type: T }> {
  const r = decoded(bytes);
  expect(r.payload.type).toBe(type);
  return r.payload as Extract<AmpioPayload, { type: T }>;
}

/** Values of a decoded frame as name → value. */
function valueMap(bytes: readonly number[]): Record<string, number | boolean | string> {
  const out: Record<string, number | boolean | string> = {};
  for (const v of decoded(bytes).values) out[v.name] = v.value;
  return out;
}

function trueChannels(p: Extract<AmpioPayload, { type: "bits" }>): number[] {
  const out: number[] = [];
  p.states.forEach((s, i) => {
    if (s) out.push(p.first + i);
  });
  return out;
}

describe("0x06 temperature", () => {
  test("aioampio vector: 24.1 °C", () => {
    const bytes = [
      0xfe, // state broadcast
      0x06, // subtype: temperature
      0xd9, 0x04, // u16le 0x04D9 = 1241 → (1241 − 1000) / 10 = 24.1
      0xb5, 0x04, 0x00, 0x00, // trailing bytes, not part of the value
    ];
    expect(payloadOf(bytes, "temperature").celsius).toBe(24.1);
    expect(decoded(bytes).values).toEqual([{ name: "temperature.1", value: 24.1, unit: "°C" }]);
  });
  test("below zero: the offset, not two's complement, gives the sign", () => {
    // FE 06 | u16le 0x01E8 = 488 → (488 − 1000) / 10 = −51.2
    expect(payloadOf([0xfe, 0x06, 0xe8, 0x01], "temperature").celsius).toBe(-51.2);
  });
  test("one value byte is too short", () => {
    expect(decodeAmpio(mod([0xfe, 0x06, 0xd9]))).toEqual({ kind: "short", moduleId: MODULE, key: 0x06, name: "temperature" });
  });
});

describe("0x0C, 0x0D, 0x0E analog outputs", () => {
  const full = [
    0xfe, // state broadcast
    0x0c, // subtype: aout 1–6
    0x01, 0x02, 0x03, // aout 1, 2, 3
    0x10, 0x11, 0x12, // aout 4 = 16, 5 = 17, 6 = 18
  ];
  test("aioampio vector: six channels, u8 each", () => {
    const p = payloadOf(full, "series");
    expect(p).toEqual({ type: "series", family: "aout", first: 1, values: [1, 2, 3, 16, 17, 18] });
  });
  test("0x0D starts at channel 7, 0x0E at 13", () => {
    expect(valueMap([0xfe, 0x0d, 0x01, 0x02, 0x03, 0x10, 0x11, 0x12])).toEqual({
      "aout.7": 1, "aout.8": 2, "aout.9": 3, "aout.10": 16, "aout.11": 17, "aout.12": 18,
    });
    expect(payloadOf([0xfe, 0x0e, 0xff], "series")).toEqual({ type: "series", family: "aout", first: 13, values: [255] });
  });
  test("a shorter frame carries fewer channels", () => {
    expect(payloadOf(full.slice(0, 7), "series").values).toEqual([1, 2, 3, 16, 17]); // 5 channels
    expect(payloadOf(full.slice(0, 3), "series").values).toEqual([1]); // FE 0C 01
    expect(decodeAmpio(mod([0xfe, 0x0c])).kind).toBe("short"); // no channel at all
  });
});

describe("0x0F binout 1–48", () => {
  test("aioampio vector: bytes alternate all-on / all-off", () => {
    const bytes = [
      0xfe, // state broadcast
      0x0f, // subtype: binout
      0xff, // channels 1–8 on
      0x00, // 9–16 off
      0xff, // 17–24 on
      0x00, // 25–32 off
      0xff, // 33–40 on
      0x00, // 41–48 off
    ];
    const p = payloadOf(bytes, "bits");
    expect(p.family).toBe("binout");
    expect(p.states).toHaveLength(48);
    expect(p.states).toEqual([...Array(8).fill(true), ...Array(8).fill(false), ...Array(8).fill(true), ...Array(8).fill(false), ...Array(8).fill(true), ...Array(8).fill(false)]);
  });
  test("bit 0 of data[2] is channel 1", () => {
    // FE 0F | 0x01 → channel 1 on | 0x80 → channel 16 on
    expect(trueChannels(payloadOf([0xfe, 0x0f, 0x01, 0x80], "bits"))).toEqual([1, 16]);
  });
});

describe("0x10 date/time", () => {
  test("serial adapter spec example (a real frame of module 0x2)", () => {
    const bytes = [
      0xfe, // state broadcast
      0x10, // subtype: date/time
      0x19, // year 2000 + 25
      0x09, // month 9 (low nibble)
      0x19, // day 25 (low five bits)
      0x04, // weekday 4 (low three bits)
      0x01, // bit 7 clear: not daytime; hour 1 (low five bits)
      0x20, // minute 32 (low seven bits)
    ];
    expect(payloadOf(bytes, "datetime")).toEqual({ type: "datetime", year: 2025, month: 9, day: 25, weekday: 4, daytime: false, hour: 1, minute: 32 });
  });
  test("aioampio vector: 2025-09-21 13:01, weekday 7", () => {
    // FE 10 | 19 = 2025 | 09 = Sep | 15 = 21 | 07 = weekday 7 | 0D = 13 h | 01 = minute 1
    expect(payloadOf([0xfe, 0x10, 0x19, 0x09, 0x15, 0x07, 0x0d, 0x01], "datetime")).toEqual({
      type: "datetime", year: 2025, month: 9, day: 21, weekday: 7, daytime: false, hour: 13, minute: 1,
    });
  });
  test("masks drop the bits around each field; bit 7 of data[6] is the daytime flag", () => {
    const p = payloadOf([
      0xfe, 0x10, // state broadcast, date/time
      0x1a, // 2026
      0xf3, // high nibble ignored → month 3
      0xe5, // top three bits ignored → day 5
      0xf9, // top five bits ignored → weekday 1
      0x8e, // 0x80 daytime, 0x0E → hour 14 (bits 5–6 clear)
      0xbb, // bit 7 ignored → minute 59
    ], "datetime");
    expect(p).toEqual({ type: "datetime", year: 2026, month: 3, day: 5, weekday: 1, daytime: true, hour: 14, minute: 59 });
  });
  test("seven bytes are too short (aioampio vector)", () => {
    expect(decodeAmpio(mod([0xfe, 0x10, 0x19, 0x09, 0x15, 0x07, 0x0d])).kind).toBe("short");
  });
});

describe("0x19 / 0x1A / 0x38 / 0x39 / 0x3A SATEL zone bits", () => {
  const cases: [number, string][] = [
    [0x19, "armed"],
    [0x1a, "alarm"],
    [0x38, "breached"],
    [0x39, "arming"],
    [0x3a, "arming_10s"],
  ];
  for (const [subtype, family] of cases) {
    test(`0x${subtype.toString(16).toUpperCase()} ${family}: eight zones from data[2] only (aioampio vector)`, () => {
      const bytes = [
        0xfe, // state broadcast
        subtype, // SATEL bit set
        0xf0, // zones 5–8 set, 1–4 clear
        0x00, 0xff, 0x00, 0xff, 0x00, // beyond zone 8: not decoded
      ];
      const p = payloadOf(bytes, "bits");
      expect(p.family).toBe(family as typeof p.family);
      expect(p.states).toEqual([false, false, false, false, true, true, true, true]);
      expect(decoded(bytes).values.map((v) => v.name)).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((z) => `${family}.${z}`));
    });
  }
});

describe("0x1B–0x1D binary inputs, 0x1E–0x20 binary outputs", () => {
  const body = [
    0x00, // channels +1..+8: none
    0x00, // +9..+16: none
    0x01, // bit 0 → +17
    0x40, // bit 6 → +31
    0x05, // bits 0, 2 → +33, +35
    0x5a, // bits 1, 3, 4, 6 → +42, +44, +45, +47
  ];
  const trues = [17, 31, 33, 35, 42, 44, 45, 47];
  const cases: [number, string, number][] = [
    [0x1b, "bin", 1],
    [0x1c, "bin", 49],
    [0x1d, "bin", 97],
    [0x1e, "bout", 1],
    [0x1f, "bout", 49],
    [0x20, "bout", 97],
  ];
  for (const [subtype, family, first] of cases) {
    test(`0x${subtype.toString(16).toUpperCase()} ${family} ${first}–${first + 47} (aioampio vector)`, () => {
      const p = payloadOf([0xfe, subtype, ...body], "bits");
      expect(p.family).toBe(family as typeof p.family);
      expect(p.first).toBe(first);
      expect(p.states).toHaveLength(48);
      expect(trueChannels(p)).toEqual(trues.map((c) => c - 1 + first));
    });
  }
  test("a series stops at the last byte the frame holds", () => {
    // FE 1B | 0x81 → inputs 1 and 8; nothing more
    const p = payloadOf([0xfe, 0x1b, 0x81], "bits");
    expect(p.states).toHaveLength(8);
    expect(trueChannels(p)).toEqual([1, 8]);
  });
});

describe("0x21–0x25 signed values (offset 10000, tenths)", () => {
  const bytes = (subtype: number): number[] => [
    0xfe, // state broadcast
    subtype, // s16b10000 bank
    0x2c, 0x29, // u16le 10540 → (10540 − 10000) / 10 = 54
    0x79, 0x4d, // u16le 19833 → 983.3
    0xa4, 0x28, // u16le 10404 → 40.4
  ];
  const firsts: [number, number][] = [
    [0x21, 1],
    [0x22, 4],
    [0x23, 7],
    [0x24, 10],
    [0x25, 13],
  ];
  for (const [subtype, first] of firsts) {
    test(`0x${subtype.toString(16)}: channels ${first}–${first + 2} (aioampio vector)`, () => {
      expect(payloadOf(bytes(subtype), "series")).toEqual({ type: "series", family: "s16b10000", first, values: [54, 983.3, 40.4] });
    });
  }
  test("below the offset is negative", () => {
    // FE 21 | u16le 0x270F = 9999 → −0.1 | u16le 0 → −1000
    expect(payloadOf([0xfe, 0x21, 0x0f, 0x27, 0x00, 0x00], "series").values).toEqual([-0.1, -1000]);
  });
  test("a half channel is not decoded (aioampio vectors)", () => {
    expect(valueMap([0xfe, 0x23, 0x2c, 0x29])).toEqual({ "s16b10000.7": 54 }); // one full channel
    expect(valueMap([0xfe, 0x23, 0x2c, 0x29, 0x79])).toEqual({ "s16b10000.7": 54 }); // and a lone byte
    expect(decodeAmpio(mod([0xfe, 0x23, 0x2c])).kind).toBe("short");
  });
});

describe("0x44–0x46 raw 16-bit values", () => {
  test("aioampio vector: 44, 982, 114", () => {
    const bytes = [
      0xfe, // state broadcast
      0x44, // subtype: s16b 1–3
      0x2c, 0x00, // u16le 44
      0xd6, 0x03, // u16le 982
      0x72, 0x00, // u16le 114
    ];
    expect(payloadOf(bytes, "series")).toEqual({ type: "series", family: "s16b", first: 1, values: [44, 982, 114] });
  });
  test("unsigned despite the name: FF FF is 65535; 0x45 and 0x46 start at 4 and 7", () => {
    expect(payloadOf([0xfe, 0x45, 0xff, 0xff], "series")).toEqual({ type: "series", family: "s16b", first: 4, values: [65535] });
    expect(payloadOf([0xfe, 0x46, 0x01, 0x80], "series")).toEqual({ type: "series", family: "s16b", first: 7, values: [0x8001] });
  });
  test("one byte is too short (aioampio vector)", () => {
    expect(decodeAmpio(mod([0xfe, 0x44, 0x39])).kind).toBe("short");
  });
});

describe("0x49 RGBW", () => {
  test("aioampio vector", () => {
    const bytes = [
      0xfe, // state broadcast
      0x49, // subtype: RGBW
      0x07, // red
      0x08, // green
      0x09, // blue
      0x0a, // white
    ];
    expect(payloadOf(bytes, "rgbw")).toEqual({ type: "rgbw", red: 7, green: 8, blue: 9, white: 10 });
    expect(valueMap(bytes)).toEqual({ "rgb.red": 7, "rgb.green": 8, "rgb.blue": 9, "rgb.white": 10 });
  });
  test("white missing is too short", () => {
    expect(decodeAmpio(mod([0xfe, 0x49, 0x07, 0x08, 0x09])).kind).toBe("short");
  });
});

describe("0x4F diagnostics", () => {
  test("aioampio vector: 11.4 V, 30 °C", () => {
    const bytes = [
      0xfe, // state broadcast
      0x4f, // subtype: diagnostics
      0x39, // supply voltage 57 × 0.2 = 11.4 V
      0x82, // module temperature 130 − 100 = 30 °C
    ];
    expect(payloadOf(bytes, "diagnostics")).toEqual({ type: "diagnostics", supplyVoltage: 11.4, moduleTemperature: 30 });
    expect(decoded(bytes).values).toEqual([
      { name: "diagnostics.voltage", value: 11.4, unit: "V" },
      { name: "diagnostics.temperature", value: 30, unit: "°C" },
    ]);
  });
  test("below 100 the module temperature is negative; voltages are exact tenths", () => {
    // FE 4F | 0x3C = 60 → 12.0 V | 0x5A = 90 → −10 °C
    expect(payloadOf([0xfe, 0x4f, 0x3c, 0x5a], "diagnostics")).toEqual({ type: "diagnostics", supplyVoltage: 12, moduleTemperature: -10 });
    // 0x7B = 123 → 24.6 V (not 24.600000000000001)
    expect(payloadOf([0xfe, 0x4f, 0x7b, 0x64], "diagnostics").supplyVoltage).toBe(24.6);
  });
});

describe("0x80 flags 1–32", () => {
  test("aioampio vector: four bytes, the rest ignored", () => {
    const bytes = [
      0xfe, // state broadcast
      0x80, // subtype: flags
      0x00, 0x00, // flags 1–16 clear
      0x01, // flag 17
      0x40, // flag 31
      0x05, 0x5a, // beyond flag 32: not decoded
    ];
    const p = payloadOf(bytes, "bits");
    expect(p.family).toBe("flag");
    expect(p.states).toHaveLength(32);
    expect(trueChannels(p)).toEqual([17, 31]);
  });
});

describe("0xC8 heating-zone summary", () => {
  test("sixteen zones from data[2..3]", () => {
    const bytes = [
      0xfe, // state broadcast
      0xc8, // subtype: heating-zone summary
      0x81, // zones 1 and 8
      0x02, // zone 10
      0xff, 0xff, // beyond zone 16: not decoded
    ];
    const p = payloadOf(bytes, "bits");
    expect(p.family).toBe("zone");
    expect(p.states).toHaveLength(16);
    expect(trueChannels(p)).toEqual([1, 8, 10]);
  });
});

describe("0xC9–0xD8 heating zones 1–16", () => {
  const zoneBytes = (subtype: number): number[] => [
    0xfe, // state broadcast
    subtype, // heating zone n = subtype − 0xC8
    0xe1, // current temperature 225 × 0.1 = 22.5
    0x04, // not interpreted
    0xb0, // target temperature 176 × 0.1 = 17.6
    0x04, // not interpreted
    0x33, // int8 51 → (51 − 100) × 0.1 = −4.9
    0x05, // bit 0 active, bit 1 clear (not heating), bit 2 day mode, bits 4–6 mode 0
  ];
  for (let zone = 1; zone <= 16; zone++) {
    const subtype = 0xc8 + zone;
    test(`0x${subtype.toString(16).toUpperCase()} zone ${zone} (aioampio vector)`, () => {
      expect(payloadOf(zoneBytes(subtype), "heating-zone")).toEqual({
        type: "heating-zone", zone, currentTemperature: 22.5, targetTemperature: 17.6, temperatureDifference: -4.9,
        active: true, heating: false, dayMode: true, mode: 0,
      });
    });
  }
  test("data[6] is signed; mode is bits 4–6 shifted down", () => {
    const p = payloadOf([
      0xfe, 0xc9, // state broadcast, zone 1
      0xc8, 0x00, // current 20.0
      0xd2, 0x00, // target 21.0
      0x9c, // int8 −100 (not 156) → (−100 − 100) × 0.1 = −20
      0xb2, // bit 7 ignored, mode 3 (0x30), heating (0x02), not active, night
    ], "heating-zone");
    expect(p).toEqual({
      type: "heating-zone", zone: 1, currentTemperature: 20, targetTemperature: 21, temperatureDifference: -20,
      active: false, heating: true, dayMode: false, mode: 3,
    });
  });
  test("values are named heating.<zone>.<field>", () => {
    expect(Object.keys(valueMap(zoneBytes(0xd8)))).toEqual([
      "heating.16.current_temperature", "heating.16.target_temperature", "heating.16.temperature_diff",
      "heating.16.active", "heating.16.heating", "heating.16.day_mode", "heating.16.mode",
    ]);
  });
  test("seven bytes are too short", () => {
    expect(decodeAmpio(mod(zoneBytes(0xc9).slice(0, 7))).kind).toBe("short");
  });
});

describe("SATEL status (10 EF code)", () => {
  test("aioampio vector: 0x07 changed code is the same", () => {
    const bytes = [
      0x10, // SATEL status marker
      0xef, // SATEL status submarker
      0x07, // response code
    ];
    const r = decoded(bytes);
    expect(r.key).toBe(SATEL_STATUS_KEY);
    expect(r.payload).toEqual({ type: "satel-status", code: 7, response: "changed code is the same" });
    expect(r.values).toEqual([
      { name: "response.status", value: 7 },
      { name: "response.text", value: "changed code is the same" },
    ]);
  });
  test("every code has a text; 0x80–0x8F are other errors", () => {
    expect(satelResponse(0x00)).toBe("OK");
    expect(satelResponse(0x11)).toBe("cannot arm, force arm possible");
    expect(satelResponse(0xff)).toBe("command accepted");
    expect(satelResponse(0x85)).toBe("other error");
    expect(satelResponse(0x42)).toBe("unknown");
  });
  test("10 with another second byte is unknown, not guessed", () => {
    expect(decodeAmpio(mod([0x10, 0xee, 0x00]))).toEqual({ kind: "unknown", moduleId: MODULE, key: SATEL_STATUS_KEY });
  });
  test("the status is exactly three bytes", () => {
    expect(decodeAmpio(mod([0x10, 0xef, 0x07, 0x00])).kind).toBe("other");
    expect(decodeAmpio(mod([0x10, 0xef])).kind).toBe("other");
  });
});

describe("known but undecoded subtypes", () => {
  const cases: [number, number[]][] = [
    [0x01, [0xfe, 0x01, 0x00, 0x00]],
    [0x05, [0xfe, 0x05, 0xd9, 0x04]],
    [0x18, [0xfe, 0x18, 0x00, 0x03, 0x94, 0x90, 0x00, 0x00]], // aioampio vector: no output
    [0x2b, [0xfe, 0x2b, 0x01, 0x02]],
  ];
  for (const [subtype, bytes] of cases) {
    test(`0x${subtype.toString(16).padStart(2, "0")} ${stateKeyName(subtype)}`, () => {
      const r = decodeAmpio(mod(bytes));
      expect(r.kind).toBe("undecoded");
      if (r.kind === "undecoded") expect(r.key).toBe(subtype);
    });
  }
});

describe("the table", () => {
  test("lists exactly the subtypes of docs/ampio.md", () => {
    const decodedCodes = [
      0x06, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25,
      0x38, 0x39, 0x3a, 0x44, 0x45, 0x46, 0x49, 0x4f, 0x80, 0xc8,
      ...Array.from({ length: 16 }, (_, i) => 0xc9 + i),
    ];
    expect(SUBTYPES.filter((s) => s.decoded).map((s) => s.code).sort((a, b) => a - b)).toEqual(decodedCodes);
    expect(SUBTYPES.filter((s) => !s.decoded).map((s) => s.code)).toEqual([0x01, 0x05, 0x18, 0x2b]);
  });
  test("every other subtype is unknown, with any payload", () => {
    const listed = new Set(SUBTYPES.map((s) => s.code));
    for (let st = 0; st < 256; st++) {
      if (listed.has(st)) continue;
      for (let len = 2; len <= 8; len++) {
        const r = decodeAmpio(mod([0xfe, st, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff].slice(0, len)));
        expect(r).toEqual({ kind: "unknown", moduleId: MODULE, key: st });
      }
    }
  });
  test("every subtype at every length 0..8 decodes without throwing, and decoded means values", () => {
    for (let st = 0; st < 256; st++) {
      for (const fill of [0x00, 0xff, 0x80]) {
        for (let len = 2; len <= 8; len++) {
          const bytes = [0xfe, st, ...Array<number>(len - 2).fill(fill)];
          const r = decodeAmpio(mod(bytes));
          if (r.kind === "decoded") expect(r.values.length).toBeGreaterThan(0);
        }
      }
    }
  });
});

describe("frames that are not state broadcasts", () => {
  test("other module traffic", () => {
    expect(decodeAmpio(mod([]))).toEqual({ kind: "other", moduleId: MODULE }); // empty
    expect(decodeAmpio(mod([0xfe]))).toEqual({ kind: "other", moduleId: MODULE }); // marker without subtype
    expect(decodeAmpio(mod([0x01, 0xfe, 0x06]))).toEqual({ kind: "other", moduleId: MODULE });
  });
  test("commands are commands even when their bytes look like a state", () => {
    const cmd = [
      0xfe, 0x06, 0x1a, 0x2b, // target module id 0xFE061A2B, big-endian (looks like FE 06 …)
      0x15, 0xff, 0x00, 0x00, // the command
    ];
    expect(decodeAmpio(mod(cmd, AMPIO_COMMAND_ID))).toEqual({ kind: "command", commandId: AMPIO_COMMAND_ID, target: 0xfe061a2b });
    expect(decodeAmpio(mod([0x00, 0x00, 0x1a, 0x2b, 0x16, 0x00], SATEL_COMMAND_ID))).toEqual({
      kind: "command", commandId: SATEL_COMMAND_ID, target: MODULE,
    });
    // aioampio 0.2.3 sends empty frames to 0x0F000000 before a multi-frame command
    expect(decodeAmpio(mod([], AMPIO_COMMAND_ID))).toEqual({ kind: "command", commandId: AMPIO_COMMAND_ID, target: null });
  });
  test("frames an Ampio bus does not carry", () => {
    expect(decodeAmpio(dataFrame(0x123, [0xfe, 0x06, 0xd9, 0x04]))).toEqual({ kind: "not-ampio", reason: "standard-id" });
    expect(decodeAmpio(remoteFrame(MODULE, 8, true))).toEqual({ kind: "not-ampio", reason: "remote" });
    expect(decodeAmpio(fdFrame(MODULE, [0xfe, 0x06, 0xd9, 0x04], 0, true))).toEqual({ kind: "not-ampio", reason: "fd" });
    expect(decodeAmpio({ canId: (CAN_ERR_FLAG | 0x04) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toEqual({
      kind: "not-ampio", reason: "error-frame",
    });
    const f = mod([0xfe, 0x06, 0xd9, 0x04]);
    expect(decodeAmpio({ ...f, len: 2 })).toEqual({ kind: "not-ampio", reason: "bad-length" });
  });
  test("the module id is the 29-bit arbitration id", () => {
    const r = decodeAmpio(dataFrame(0x1fffffff, [0xfe, 0x06, 0xd9, 0x04], true));
    expect(r.kind === "decoded" && r.moduleId).toBe(0x1fffffff);
  });
});
