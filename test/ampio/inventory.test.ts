/**
 * Module inventory: what it records per module, staleness and frame rate on an injected clock,
 * and its bounds (modules evicted least-recently-seen first, values capped per module).
 */
import { describe, expect, test } from "bun:test";
import { AMPIO_COMMAND_ID } from "../../src/ampio/decoder.ts";
import { ModuleInventory } from "../../src/ampio/inventory.ts";
import { type CanFrame, dataFrame } from "../../src/can/frame.ts";

const A = 0x00001a2b;
const B = 0x00001a2c;
const C = 0x00001a2d;
const D = 0x00001a2e;

const f = (id: number, bytes: readonly number[]): CanFrame => dataFrame(id, bytes, true);
/** FE 06: 24.1 °C (u16le 1241). */
const temp241 = (id: number): CanFrame => f(id, [0xfe, 0x06, 0xd9, 0x04]);
/** FE 06: 25.0 °C (u16le 1250). */
const temp250 = (id: number): CanFrame => f(id, [0xfe, 0x06, 0xe2, 0x04]);
/** FE 4F: 11.4 V, 30 °C. */
const diag = (id: number): CanFrame => f(id, [0xfe, 0x4f, 0x39, 0x82]);
/** FE 1B: 48 binary inputs. */
const bin48 = (id: number): CanFrame => f(id, [0xfe, 0x1b, 0x01, 0, 0, 0, 0, 0x80]);

const T0 = 1_700_000_000_000;

describe("what a module records", () => {
  test("first/last seen, frames, subtypes and latest values with their time", () => {
    const inv = new ModuleInventory();
    inv.observe(temp241(A), T0);
    inv.observe(diag(A), T0 + 1000);
    inv.observe(temp250(A), T0 + 2000);
    const m = inv.module(A, T0 + 2500)!;
    expect(m.id).toBe(A);
    expect(m.idHex).toBe("00001A2B");
    expect(m.firstSeen).toBe(T0);
    expect(m.lastSeen).toBe(T0 + 2000);
    expect(m.ageMs).toBe(500);
    expect(m.stale).toBe(false);
    expect(m.frames).toBe(3);
    expect(m.subtypes).toEqual([
      { key: 0x06, hex: "0x06", name: "temperature", frames: 2 },
      { key: 0x4f, hex: "0x4F", name: "diagnostics", frames: 1 },
    ]);
    expect(m.values).toEqual([
      { name: "temperature.1", value: 25, unit: "°C", at: T0 + 2000 },
      { name: "diagnostics.voltage", value: 11.4, unit: "V", at: T0 + 1000 },
      { name: "diagnostics.temperature", value: 30, unit: "°C", at: T0 + 1000 },
    ]);
  });

  test("the SATEL status is a state key of its own", () => {
    const inv = new ModuleInventory();
    inv.observe(f(A, [0x10, 0xef, 0xff]), T0);
    const m = inv.module(A, T0)!;
    expect(m.subtypes).toEqual([{ key: 0x100, hex: "0x100", name: "satel_status", frames: 1 }]);
    expect(m.values.map((v) => [v.name, v.value])).toEqual([
      ["response.status", 255],
      ["response.text", "command accepted"],
    ]);
  });

  test("unknown, undecoded and short frames are counted, never turned into values", () => {
    const inv = new ModuleInventory();
    inv.observe(f(A, [0xfe, 0x02, 0x01, 0x02]), T0); // unknown subtype 0x02
    inv.observe(f(A, [0xfe, 0x18, 0, 3, 0x94, 0x90, 0, 0]), T0); // known, undecoded
    inv.observe(f(A, [0xfe, 0x06, 0xd9]), T0); // temperature, too short
    inv.observe(f(A, [0x01, 0x02]), T0); // not a state broadcast
    const m = inv.module(A, T0)!;
    expect(m.frames).toBe(4);
    expect(m.unknownFrames).toBe(1);
    expect(m.values).toEqual([]);
    expect(m.subtypes.map((s) => s.key)).toEqual([0x06, 0x18]);
    expect(inv.counters()).toMatchObject({ frames: 4, decoded: 0, unknown: 1, undecoded: 1, short: 1 });
  });

  test("commands and non-Ampio frames create no module", () => {
    const inv = new ModuleInventory();
    inv.observe(f(AMPIO_COMMAND_ID, [0, 0, 0x1a, 0x2b, 0x15, 0xff, 0, 0]), T0);
    inv.observe(dataFrame(0x123, [0xfe, 0x06, 0xd9, 0x04]), T0);
    expect(inv.size).toBe(0);
    expect(inv.counters()).toMatchObject({ frames: 0, commands: 1, notAmpio: 1 });
  });

  test("the snapshot is plain JSON, sorted by id", () => {
    const inv = new ModuleInventory();
    inv.observe(temp241(B), T0);
    inv.observe(bin48(A), T0 + 10);
    inv.observe(f(A, [0x10, 0xef, 0x07]), T0 + 20);
    const snap = inv.snapshot(T0 + 30);
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    expect(snap.modules.map((m) => m.id)).toEqual([A, B]);
    expect(snap).toMatchObject({ now: T0 + 30, maxModules: 256, maxValuesPerModule: 600, staleAfterMs: 300_000 });
    expect(snap.counters.decoded).toBe(3);
  });
});

describe("staleness (injected clock)", () => {
  test("a module silent for longer than staleAfterMs is stale; a frame makes it fresh again", () => {
    const inv = new ModuleInventory({ staleAfterMs: 60_000 });
    inv.observe(temp241(A), T0);
    inv.observe(temp241(B), T0 + 30_000);
    expect(inv.isStale(A, T0 + 60_000)).toBe(false); // exactly the limit: not yet
    expect(inv.isStale(A, T0 + 60_001)).toBe(true);
    expect(inv.staleModules(T0 + 60_001)).toEqual([A]);
    expect(inv.staleModules(T0 + 90_001)).toEqual([A, B]);
    expect(inv.module(A, T0 + 90_001)!.stale).toBe(true);
    inv.observe(diag(A), T0 + 90_001);
    expect(inv.staleModules(T0 + 90_001)).toEqual([B]);
    expect(inv.module(A, T0 + 90_001)!.stale).toBe(false);
    // stale modules are reported, not forgotten
    expect(inv.size).toBe(2);
  });

  test("a clock that steps back neither moves last-seen back nor inflates the rate", () => {
    const inv = new ModuleInventory();
    inv.observe(temp241(A), T0 + 10_000);
    inv.observe(temp241(A), T0);
    const m = inv.module(A, T0 + 10_000)!;
    expect(m.lastSeen).toBe(T0 + 10_000);
    expect(m.framesPerSecond).toBeLessThanOrEqual(0.2);
  });
});

describe("frame rate", () => {
  test("settles near the real rate and decays when the module goes quiet", () => {
    const inv = new ModuleInventory({ rateTimeConstantMs: 10_000 });
    let t = T0;
    for (let i = 0; i < 600; i++, t += 100) inv.observe(temp241(A), t); // 10 frames/s for 60 s
    const busy = inv.module(A, t)!.framesPerSecond;
    expect(busy).toBeGreaterThan(9.5);
    expect(busy).toBeLessThan(10.5);
    const quiet = inv.module(A, t + 30_000)!.framesPerSecond; // 3 time constants later
    expect(quiet).toBeLessThan(busy * 0.06);
  });
  test("a slow module reads slow", () => {
    const inv = new ModuleInventory({ rateTimeConstantMs: 60_000 });
    let t = T0;
    for (let i = 0; i < 100; i++, t += 5000) inv.observe(diag(A), t); // one frame every 5 s
    const r = inv.module(A, t - 5000)!.framesPerSecond;
    expect(r).toBeGreaterThan(0.18);
    expect(r).toBeLessThan(0.23);
  });
});

describe("bounds", () => {
  test("past maxModules the least recently seen module is evicted and counted", () => {
    const inv = new ModuleInventory({ maxModules: 3 });
    inv.observe(temp241(A), T0);
    inv.observe(temp241(B), T0 + 1);
    inv.observe(temp241(C), T0 + 2);
    inv.observe(temp241(A), T0 + 3); // A is now the most recent; B the least
    inv.observe(temp241(D), T0 + 4);
    expect(inv.size).toBe(3);
    expect(inv.has(B)).toBe(false);
    expect([A, C, D].every((id) => inv.has(id))).toBe(true);
    expect(inv.counters().evictions).toBe(1);
    expect(inv.module(A, T0 + 4)!.firstSeen).toBe(T0); // survivors keep their history
  });

  test("past maxValuesPerModule new names are dropped and counted; known names still update", () => {
    const inv = new ModuleInventory({ maxValuesPerModule: 10 });
    inv.observe(bin48(A), T0); // 48 names offered
    expect(inv.valueCount(A)).toBe(10);
    expect(inv.counters().valuesDropped).toBe(38);
    inv.observe(f(A, [0xfe, 0x1b, 0x00]), T0 + 5); // bin.1..8 updated, all off
    const v = inv.module(A, T0 + 5)!.values.find((x) => x.name === "bin.1")!;
    expect(v).toEqual({ name: "bin.1", value: false, at: T0 + 5 });
    expect(inv.valueCount(A)).toBe(10);
    inv.observe(temp241(A), T0 + 6); // a new name: refused
    expect(inv.counters().valuesDropped).toBe(39);
  });

  test("a module with every bank full fits in the default value cap", () => {
    const inv = new ModuleInventory();
    const full = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    for (let st = 0; st < 256; st++) inv.observe(f(A, [0xfe, st, ...full]), T0);
    inv.observe(f(A, [0x10, 0xef, 0x00]), T0);
    expect(inv.counters().valuesDropped).toBe(0);
    expect(inv.valueCount(A)).toBe(594);
    expect(inv.module(A, T0)!.subtypes.length).toBe(45 + 4 + 1); // decoded + undecoded + SATEL status
  });

  test("options are validated", () => {
    expect(() => new ModuleInventory({ maxModules: 0 })).toThrow(RangeError);
    expect(() => new ModuleInventory({ maxValuesPerModule: -1 })).toThrow(RangeError);
    expect(() => new ModuleInventory({ staleAfterMs: Number.NaN })).toThrow(RangeError);
  });
});
