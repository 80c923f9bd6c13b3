/**
 * Seeded property test: 100k random frames (random and recurring ids, every frame shape an
 * Ampio bus and a hostile one can carry) never make the decoder throw and never grow the
 * inventory or the state cache past their bounds. A failure names its seed and frame.
 */
import { expect, test } from "bun:test";
import { AMPIO_COMMAND_ID, SATEL_COMMAND_ID, SUBTYPES, decodeAmpio } from "../../src/ampio/decoder.ts";
import { ModuleInventory } from "../../src/ampio/inventory.ts";
import { StateCache } from "../../src/ampio/state-cache.ts";
import { CAN_EFF_MASK, CAN_ERR_FLAG, type CanFrame, dataFrame, fdFrame, formatFrame, remoteFrame } from "../../src/can/frame.ts";
import { Rng } from "../protocols/conformance.ts";

const SEED = 0x13a3910;
const FRAMES = 100_000;
const LISTED = SUBTYPES.map((s) => s.code);

function randomFrame(rng: Rng, recurring: readonly number[]): CanFrame {
  const id = rng.bool(0.5) ? rng.pick(recurring) : rng.int(CAN_EFF_MASK + 1);
  const len = rng.int(9);
  const data = rng.bytes(len);
  const shape = rng.int(100);
  if (shape < 45 && len >= 2) {
    data[0] = 0xfe; // a state broadcast, mostly of a listed subtype
    data[1] = rng.bool(0.7) ? rng.pick(LISTED) : rng.int(256);
  } else if (shape < 55 && len >= 2) {
    data[0] = 0x10; // SATEL-shaped
    data[1] = rng.bool(0.7) ? 0xef : rng.int(256);
  }
  if (shape >= 90) {
    switch (shape % 5) {
      case 0:
        return dataFrame(rng.int(0x800), data, false);
      case 1:
        return remoteFrame(id, len, true);
      case 2:
        return fdFrame(id, rng.bytes(rng.pick([12, 16, 64])), 0, true);
      case 3:
        return { canId: (CAN_ERR_FLAG | rng.int(0x1000)) >>> 0, len: 8, data: rng.bytes(8), fd: false, fdFlags: 0 };
      default:
        return dataFrame(rng.bool() ? AMPIO_COMMAND_ID : SATEL_COMMAND_ID, data, true);
    }
  }
  return dataFrame(id, data, true);
}

test(`${FRAMES} random frames (seed 0x${SEED.toString(16)}): no throw, bounds hold`, () => {
  const rng = new Rng(SEED);
  const recurring = Array.from({ length: 40 }, () => rng.int(0x10000));
  const inv = new ModuleInventory({ maxModules: 64, maxValuesPerModule: 100, staleAfterMs: 1000 });
  const cache = new StateCache({ maxEntries: 128 });
  let now = 0;
  let maxModules = 0;
  let maxEntries = 0;
  let decodedCount = 0;
  for (let i = 0; i < FRAMES; i++) {
    const frame = randomFrame(rng, recurring);
    now += rng.int(20);
    try {
      const r = inv.observe(frame, now);
      cache.offer(frame, now, r);
      if (r.kind === "decoded") {
        decodedCount++;
        if (r.values.length === 0) throw new Error("decoded without values");
        if (inv.valueCount(r.moduleId) > inv.maxValuesPerModule) throw new Error("value cap exceeded");
      }
      if (decodeAmpio(frame).kind !== r.kind) throw new Error("decoding is not deterministic");
    } catch (e) {
      throw new Error(`seed 0x${SEED.toString(16)} frame #${i} ${formatFrame(frame)}: ${String(e)}`);
    }
    maxModules = Math.max(maxModules, inv.size);
    maxEntries = Math.max(maxEntries, cache.size);
    if (i % 10_000 === 0) {
      const snap = inv.snapshot(now);
      for (const m of snap.modules) {
        expect(m.values.length).toBeLessThanOrEqual(100);
        expect(m.subtypes.length).toBeLessThanOrEqual(257);
      }
      expect(cache.snapshot(now, 500).length).toBeLessThanOrEqual(128);
    }
  }
  expect(maxModules).toBe(64); // reached the cap, never passed it
  expect(maxEntries).toBe(128);
  const c = inv.counters();
  expect(c.evictions).toBeGreaterThan(0);
  expect(c.valuesDropped).toBeGreaterThan(0);
  expect(c.unknown).toBeGreaterThan(0);
  expect(decodedCount).toBeGreaterThan(FRAMES / 10); // the property is checked on real decodings too
  expect(cache.counters().evictions).toBeGreaterThan(0);
  expect(JSON.parse(JSON.stringify(inv.snapshot(now)))).toEqual(inv.snapshot(now));
});
