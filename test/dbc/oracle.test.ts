/**
 * Our DBC decoder against a real third-party one: Debian's python3-canmatrix decodes the same
 * random frames from the same DBC files (its own j1939.dbc with 357 messages, its decoding test
 * DBC, and our fixtures for what those lack), and every signal's raw and physical value must match
 * (physical within float rounding). Multiplexed messages also get frames whose multiplexors are
 * set to each branch's values, so every branch is compared, not only what random bytes select.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { DbcCodec, type DbcDatabase, type MessageCodec, dbcText, parseDbc } from "../../src/dbc/index.ts";
import { CANMATRIX_TEST_DBC, J1939_DBC, type OracleFrame, canmatrixDecode, pyNumber } from "./canmatrix.ts";

const FIXTURES = join(import.meta.dir, "..", "fixtures", "dbc");

/** Deterministic bytes (xorshift32), so a failure replays. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x & 0xff;
  };
}

/** Random frames for every message; for multiplexed signals, frames with their mux chain set to select them. */
function framesFor(codec: DbcCodec, perMessage: number, seed: number): { mc: MessageCodec; frame: OracleFrame }[] {
  const next = rng(seed);
  const out: { mc: MessageCodec; frame: OracleFrame }[] = [];
  const random = (len: number) => Uint8Array.from({ length: len }, next);
  for (const mc of codec.messages) {
    const m = mc.message;
    const datas: Uint8Array[] = [];
    for (let i = 0; i < perMessage; i++) datas.push(random(m.length));
    for (const s of mc.signals) {
      if (s.muxIndex < 0) continue;
      for (const pick of ["lo", "hi"] as const) {
        const data = random(m.length);
        // Walk up the multiplexor chain, setting each one to a value that selects the child.
        let child = s;
        while (child.muxIndex >= 0) {
          const mux = mc.signals[child.muxIndex]!;
          const range = child.signal.mux!.ranges[pick === "lo" ? 0 : child.signal.mux!.ranges.length - 1]!;
          mux.insert(data, BigInt(pick === "lo" ? range[0] : range[1]));
          child = mux;
        }
        datas.push(data);
      }
    }
    for (const d of datas) out.push({ mc, frame: { id: m.id, extended: m.extended, data: [...d] } });
  }
  return out;
}

function close(a: number, b: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (a === b) return true;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

interface Comparison {
  frames: number;
  signals: number;
  mismatches: string[];
  /** Messages whose frames canmatrix itself could not decode, with its error. */
  oracleErrors: Map<string, string>;
}

async function compare(file: string, perMessage: number, seed: number): Promise<{ db: DbcDatabase; cmp: Comparison }> {
  const db = parseDbc(dbcText(readFileSync(file)), file);
  const codec = new DbcCodec(db);
  const frames = framesFor(codec, perMessage, seed);
  const oracle = await canmatrixDecode(
    file,
    frames.map((f) => f.frame),
  );
  // Signals our parser skipped with a warning (duplicated names, > 64 bits) are not compared.
  const skipped = new Set(db.warnings.filter((w) => w.includes("skipped")).map((w) => /signal (\S+?)[: ]/.exec(w)?.[1]));
  const cmp: Comparison = { frames: frames.length, signals: 0, mismatches: [], oracleErrors: new Map() };
  frames.forEach(({ mc, frame }, i) => {
    const r = oracle.frames[i]!;
    const m = mc.message.name;
    if ("error" in r) {
      cmp.oracleErrors.set(m, r.error);
      return;
    }
    const ours = new Map(mc.decode(Uint8Array.from(frame.data)).map((s) => [s.name, s]));
    const theirs = Object.entries(r.signals).filter(([n]) => !skipped.has(`${m}.${n}`));
    const hex = Buffer.from(frame.data).toString("hex");
    if (theirs.length !== ours.size) cmp.mismatches.push(`${m} ${hex}: canmatrix decoded [${theirs.map(([n]) => n)}], we [${[...ours.keys()]}]`);
    for (const [name, [raw, phys]] of theirs) {
      const s = ours.get(name);
      cmp.signals++;
      if (s === undefined) {
        cmp.mismatches.push(`${m}.${name} ${hex}: missing in ours`);
        continue;
      }
      const isFloat = mc.signals.find((x) => x.name === name)!.signal.valueType.startsWith("float");
      if (!isFloat && String(s.raw) !== raw) cmp.mismatches.push(`${m}.${name} ${hex}: raw ${s.raw} vs canmatrix ${raw}`);
      if (!close(s.value, pyNumber(phys))) cmp.mismatches.push(`${m}.${name} ${hex}: value ${s.value} vs canmatrix ${phys}`);
    }
  });
  return { db, cmp };
}

const haveCanmatrix = existsSync(J1939_DBC);
if (!haveCanmatrix) console.warn("python3-canmatrix missing: run scripts/ensure-test-deps.sh");

describe.skipIf(!haveCanmatrix)("DBC decoding vs python3-canmatrix", () => {
  test("j1939.dbc: 357 messages, every signal of random frames equal", async () => {
    const { db, cmp } = await compare(J1939_DBC, 6, 0x1939);
    expect(db.messages.length).toBe(357);
    expect(cmp.mismatches.slice(0, 20)).toEqual([]);
    // canmatrix refuses ETH (signals past its 8 bytes); we decode what the frame holds and warned at parse time.
    expect([...cmp.oracleErrors.keys()]).toEqual(["ETH"]);
    expect(db.warnings.some((w) => w.includes("signal ETH.Calibration_Record_Start_Day reaches bit 71, past the message's 8 bytes"))).toBe(true);
    // A 1600-bit J1939 text field cannot be a number: skipped with a warning, the rest of DISP1 compared.
    expect(db.warnings.some((w) => w.includes("DISP1.Text_Display_Character: 1600 bits"))).toBe(true);
    expect(cmp.frames).toBeGreaterThan(2000);
    expect(cmp.signals).toBeGreaterThan(12_000);
  }, 60_000);

  test("canmatrix's test_frame_decoding.dbc (Motorola, floats, multiplexing)", async () => {
    const { db, cmp } = await compare(CANMATRIX_TEST_DBC, 300, 42);
    expect(db.messages.map((m) => m.name).sort()).toEqual(["muxTestFrame", "testFrame1", "testFrame2", "testFrameFloat"]);
    expect(cmp.oracleErrors.size).toBe(0);
    expect(cmp.mismatches.slice(0, 20)).toEqual([]);
    expect(cmp.signals).toBeGreaterThan(5_000);
  }, 60_000);

  test("our fixture: Motorola across bytes, 64-bit, float/double, value tables, simple and extended multiplexing, 64-byte FD", async () => {
    const file = join(FIXTURES, "coverage.dbc");
    const { db, cmp } = await compare(file, 300, 7);
    expect(db.warnings).toEqual([]);
    expect(cmp.oracleErrors.size).toBe(0);
    expect(cmp.mismatches.slice(0, 20)).toEqual([]);
    expect(cmp.signals).toBeGreaterThan(5_000);
  }, 60_000);
});
