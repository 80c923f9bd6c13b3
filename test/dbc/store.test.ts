/** The signal store without a process: branches, eviction bound, rates, reload keeping slots. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { dataFrame } from "../../src/can/frame.ts";
import { branchKey, MAX_BRANCHES, SignalStore } from "../../src/consumers/signals.ts";
import { DbcCodec, parseDbc } from "../../src/dbc/index.ts";
import { SignalModel } from "../../src/consumers/signal-model.ts";
import { memoryLogger } from "../../src/ops/log.ts";

const text = readFileSync(join(import.meta.dir, "..", "fixtures", "dbc", "coverage.dbc"), "utf8");
const codec = () => new DbcCodec(parseDbc(text, "coverage.dbc"));

test("accepts only data frames of known messages", () => {
  const s = new SignalStore(codec(), { bus: "can0", file: "x", log: memoryLogger().log });
  expect(s.accepts(dataFrame(0x106, [1, 2]))).toBe(true);
  expect(s.accepts(dataFrame(0x107, [1, 2]))).toBe(false);
  expect(s.accepts(dataFrame(0x201, [1], false))).toBe(false);
  expect(s.accepts({ ...dataFrame(0x106, [1]), canId: 0x106 | 0x40000000 })).toBe(false);
});

test("branch keys follow the multiplexor chain", () => {
  const c = codec();
  expect(branchKey(c.message("SimpleMux")!, new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0]))).toBe("5");
  expect(branchKey(c.message("ExtendedMux")!, new Uint8Array([1, 8, 0, 0, 0, 0, 0, 0]))).toBe("1/8");
  expect(branchKey(c.message("ExtendedMux")!, new Uint8Array([2, 8, 0, 0, 0, 0, 0, 0]))).toBe("2");
});

test("each branch keeps its latest frame; a signal comes from the newest frame that carries it; bounded", () => {
  let now = 1000;
  const s = new SignalStore(codec(), { bus: "can0", file: "x", log: memoryLogger().log });
  s.store(dataFrame(0x200, [0, 0x10, 0x27, 0, 0, 0, 0, 1]), now++);
  s.store(dataFrame(0x200, [1, 0x7d, 0, 0, 0, 0, 0, 2]), now++);
  const st = s.state(0x200)!;
  const r = new Map(s.read(st).map((x) => [x.signal, x]));
  expect(r.get("P0Speed")!.value).toBe(100);
  expect(r.get("P1Volt")!.value).toBe(12.5);
  expect(r.get("Always")!.value).toBe(2); // from the newer frame
  expect(r.get("Page")!.valueName).toBe("power");
  expect(s.read(st, new Set(["P0Speed"])).map((x) => x.signal)).toEqual(["P0Speed"]);
  // 300 distinct branches: Service 0..255 (Service 1 with Sub 0), then Service 1 with Sub 1..44.
  for (let i = 0; i < 300; i++) s.store(dataFrame(0x201, [i <= 255 ? i : 1, i > 255 ? i - 255 : 0, 0, 0, 0, 0, 0, 0], true), now++);
  expect(s.state(0x80000201)!.slots.size).toBe(MAX_BRANCHES);
  expect(s.counters().branchEvictions).toBe(300 - MAX_BRANCHES);
});

test("rates are smoothed per slot and summed per signal", () => {
  const s = new SignalStore(codec(), { bus: "can0", file: "x", log: memoryLogger().log });
  for (let sec = 0; sec < 3; sec++) {
    for (let i = 0; i < 10; i++) s.store(dataFrame(0x106, [1, 2]), 0);
    s.tickRates();
  }
  expect(s.read(s.state(0x106)!)[0]!.rate).toBeCloseTo(10, 5);
  s.tickRates();
  expect(s.read(s.state(0x106)!)[0]!.rate).toBeCloseTo(8, 5);
});

test("a reload keeps what was stored for messages that stayed, and drops the rest", () => {
  const s = new SignalStore(codec(), { bus: "can0", file: "x", log: memoryLogger().log });
  s.store(dataFrame(0x106, [3, 50]), 1);
  s.store(dataFrame(0x100, [1, 2, 3, 4, 5, 6, 7, 8]), 1);
  s.replaceCodec(new DbcCodec(parseDbc(text.replace("BO_ 256 Motorola:", "BO_ 256 Renamed:"), "c2")));
  expect(s.read(s.state(0x106)!).find((x) => x.signal === "Gear")!.valueName).toBe("D");
  expect(s.state(0x100)!.slots.size).toBe(0);
  expect(s.counters().reloads).toBe(1);
});

test("the signal model over the store: readMatching filters (case-insensitive), limits, counts every match", () => {
  const s = new SignalStore(codec(), { bus: "can0", file: "x", log: memoryLogger().log });
  const model = new SignalModel("can0", [s]);
  s.store(dataFrame(0x106, [3, 50]), 1);
  s.store(dataFrame(0x200, [1, 0x7d, 0, 0, 0, 0, 0, 2]), 1);
  expect(model.readMatching("gearbox.", 10).readings.map((r) => r.signal)).toEqual(["Gear", "DoorState", "OilTemp"]);
  const two = model.readMatching("", 2);
  expect(two.readings.length).toBe(2);
  expect(two.total).toBe(3 + 4); // Gearbox: 3; SimpleMux in branch Page=1: Page, Always, P1Volt, P1Current
  expect(model.readMatching("p1", 10).readings.map((r) => `${r.message}.${r.signal}`)).toEqual(["SimpleMux.P1Volt", "SimpleMux.P1Current"]);
});

test("groups: one per message with values, stable keys, seq moves with frames; readAll by keys", () => {
  const s = new SignalStore(codec(), { bus: "can0", file: "x", log: memoryLogger().log });
  const model = new SignalModel("can0", [s]);
  expect([...model.groups()].length).toBe(0);
  s.store(dataFrame(0x106, [3, 50]), 1);
  const [g] = [...model.groups()];
  expect(g!.message).toBe("Gearbox");
  const seq = g!.seq;
  s.store(dataFrame(0x106, [2, 51]), 2);
  expect([...model.groups()][0]!.key).toBe(g!.key);
  expect(g!.seq).toBe(seq + 1);
  expect(g!.valueNames("Gear")).toEqual(["P", "R", "N", "D"]);
  expect(model.readAll(new Set(["Gearbox.OilTemp", "Nope.X"])).map((r) => r.value)).toEqual([11]);
});

test("branch keys through three levels of extended multiplexing", () => {
  const dbc = [
    "BO_ 300 Deep: 4 X",
    ' SG_ A M : 0|8@1+ (1,0) [0|0] "" X',
    ' SG_ B m1M : 8|8@1+ (1,0) [0|0] "" X',
    ' SG_ C m2M : 16|8@1+ (1,0) [0|0] "" X',
    ' SG_ D m3 : 24|8@1+ (1,0) [0|0] "" X',
    "SG_MUL_VAL_ 300 B A 1-1;",
    "SG_MUL_VAL_ 300 C B 2-2;",
    "SG_MUL_VAL_ 300 D C 3-3;",
  ].join("\n");
  const mc = new DbcCodec(parseDbc(dbc, "deep.dbc")).message("Deep")!;
  expect(branchKey(mc, new Uint8Array([1, 2, 3, 9]))).toBe("1/2/3");
  expect(branchKey(mc, new Uint8Array([1, 5, 3, 9]))).toBe("1/5");
  expect(branchKey(mc, new Uint8Array([0, 2, 3, 9]))).toBe("0");
  expect(mc.decode(new Uint8Array([1, 2, 3, 9])).map((s) => s.name)).toEqual(["A", "B", "C", "D"]);
  expect(mc.decode(new Uint8Array([1, 5, 3, 9])).map((s) => s.name)).toEqual(["A", "B"]);
});
