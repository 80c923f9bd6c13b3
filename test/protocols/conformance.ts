/**
 * The conformance suite every frame codec runs (hono style: one suite, many implementations).
 * Seeded random frames are encoded, re-split at random points (and one byte at a time) and must
 * decode to exactly the same frames; random garbage must never throw out of the decoder, must end
 * in a violation or in buffered bytes that stay within the codec's bound, and must not hang
 * (every loop here is bounded in count). Deterministic: a failure names its seed.
 * Two kinds of codec: strict ones stop at the first violation (`violation`: cannelloni, whose
 * length bytes can desync the stream), resynchronising ones skip a bad unit, count it and carry on
 * (`malformed`: Waveshare's fixed 13 bytes, socketcand's `< … >` elements).
 */
import { describe, expect, test } from "bun:test";
import { type CanFrame, formatFrame, framesEqual } from "../../src/can/frame.ts";

/** mulberry32: small, fast, seedable. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

/** A decoder wrapped to a common shape: push returns the violation (sticky) or null. */
export interface DecoderUnderTest {
  push(chunk: Uint8Array): string | null;
  /** Bytes held between pushes; must stay ≤ maxBuffered. */
  buffered(): number;
  /** Resynchronising codecs: bad units skipped so far (what the session counts as malformed). */
  rejected?(): number;
}

export interface CodecUnderTest {
  name: string;
  /** Encodes a batch into wire bytes. */
  encode(frames: readonly CanFrame[]): Uint8Array;
  makeDecoder(onFrame: (frame: CanFrame) => void): DecoderUnderTest;
  /** A random frame this codec round-trips exactly. */
  genFrame(rng: Rng): CanFrame;
  /** Upper bound on decoder.buffered() after any push. */
  maxBuffered: number;
  /**
   * Bytes that are a violation when they start where a frame should. Omit for codecs that
   * resynchronise instead of stopping (e.g. a serial line); the stop-on-violation tests are skipped.
   */
  violation?: Uint8Array;
  /**
   * Resynchronising codecs: bytes of one bad unit (a frame or command) that the decoder must
   * reject once and skip without losing any frame around it, at any chunking. Needs `rejected`.
   */
  malformed?: Uint8Array;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Splits bytes at random points (chunks of 1..maxChunk bytes, sometimes empty ones). */
export function randomChunks(rng: Rng, bytes: Uint8Array, maxChunk: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let p = 0;
  while (p < bytes.length) {
    if (rng.bool(0.05)) out.push(bytes.subarray(p, p));
    const n = 1 + rng.int(maxChunk);
    out.push(bytes.subarray(p, p + n));
    p += n;
  }
  return out;
}

function describeMismatch(want: readonly CanFrame[], got: readonly CanFrame[]): string {
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    const w = want[i];
    const g = got[i];
    if (!w || !g || !framesEqual(w, g)) {
      return `frame ${i}: want ${w ? formatFrame(w) : "none"}, got ${g ? formatFrame(g) : "none"} (${want.length} vs ${got.length} frames)`;
    }
  }
  return "";
}

function decodeChunks(
  c: CodecUnderTest,
  chunks: readonly Uint8Array[],
): { frames: CanFrame[]; violation: string | null; maxHeld: number; rejected: number } {
  const frames: CanFrame[] = [];
  const dec = c.makeDecoder((f) => frames.push(f));
  let violation: string | null = null;
  let maxHeld = 0;
  for (const ch of chunks) {
    violation = dec.push(ch);
    maxHeld = Math.max(maxHeld, dec.buffered());
    if (violation !== null) break;
  }
  return { frames, violation, maxHeld, rejected: dec.rejected?.() ?? 0 };
}

export function runCodecConformance(c: CodecUnderTest): void {
  describe(`${c.name} codec conformance`, () => {
    test("random frames survive random chunking exactly (seeded)", () => {
      for (let seed = 1; seed <= 40; seed++) {
        const rng = new Rng(seed);
        const frames = Array.from({ length: 1 + rng.int(60) }, () => c.genFrame(rng));
        const wire = c.encode(frames);
        // Wire bytes must not depend on how they are later cut.
        const got = decodeChunks(c, randomChunks(rng, wire, 1 + rng.int(40)));
        expect(got.violation).toBeNull();
        const mismatch = describeMismatch(frames, got.frames);
        if (mismatch) throw new Error(`seed ${seed}: ${mismatch}`);
        expect(got.maxHeld).toBeLessThanOrEqual(c.maxBuffered);
      }
    });

    test("one byte at a time", () => {
      const rng = new Rng(777);
      const frames = Array.from({ length: 50 }, () => c.genFrame(rng));
      const wire = c.encode(frames);
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < wire.length; i++) chunks.push(wire.subarray(i, i + 1));
      const got = decodeChunks(c, chunks);
      expect(got.violation).toBeNull();
      expect(describeMismatch(frames, got.frames)).toBe("");
    });

    test("whole batch in one chunk, and batches of one frame", () => {
      const rng = new Rng(4242);
      const frames = Array.from({ length: 200 }, () => c.genFrame(rng));
      const whole = decodeChunks(c, [c.encode(frames)]);
      expect(whole.violation).toBeNull();
      expect(describeMismatch(frames, whole.frames)).toBe("");
      const single = decodeChunks(c, [concat(frames.map((f) => c.encode([f])))]);
      expect(describeMismatch(frames, single.frames)).toBe("");
    });

    test("empty batch encodes to no bytes", () => {
      expect(c.encode([]).length).toBe(0);
    });

    test("random garbage never throws, never hangs, stays bounded", () => {
      for (let seed = 1; seed <= 200; seed++) {
        const rng = new Rng(seed * 7919);
        const garbage = rng.bytes(1 + rng.int(600));
        let got: ReturnType<typeof decodeChunks> | undefined;
        expect(() => {
          got = decodeChunks(c, randomChunks(rng, garbage, 1 + rng.int(64)));
        }).not.toThrow();
        expect(got!.maxHeld).toBeLessThanOrEqual(c.maxBuffered);
      }
    });

    const skips = c.malformed !== undefined;
    test.if(skips)("a bad unit between frames is rejected once and skipped; every frame around it arrives (seeded chunking)", () => {
      for (let seed = 1; seed <= 40; seed++) {
        const rng = new Rng(seed * 31);
        const before = Array.from({ length: 1 + rng.int(20) }, () => c.genFrame(rng));
        const after = Array.from({ length: 1 + rng.int(20) }, () => c.genFrame(rng));
        const wire = concat([c.encode(before), c.malformed!, c.encode(after)]);
        const got = decodeChunks(c, randomChunks(rng, wire, 1 + rng.int(40)));
        expect(got.violation).toBeNull();
        const mismatch = describeMismatch([...before, ...after], got.frames);
        if (mismatch) throw new Error(`seed ${seed}: ${mismatch}`);
        expect(got.rejected).toBe(1);
        expect(got.maxHeld).toBeLessThanOrEqual(c.maxBuffered);
      }
    });

    test.if(skips)("a flood of bad units: each counted, memory bounded, the next good frame still decodes", () => {
      const rng = new Rng(5150);
      const frames: CanFrame[] = [];
      const dec = c.makeDecoder((f) => frames.push(f));
      const flood = concat(Array.from({ length: 100 }, () => c.malformed!));
      let maxHeld = 0;
      for (let i = 0; i < 50; i++) {
        expect(dec.push(flood)).toBeNull();
        maxHeld = Math.max(maxHeld, dec.buffered());
      }
      expect(dec.rejected!()).toBe(5000);
      expect(maxHeld).toBeLessThanOrEqual(c.maxBuffered);
      const good = c.genFrame(rng);
      expect(dec.push(c.encode([good]))).toBeNull();
      expect(describeMismatch([good], frames)).toBe("");
    });

    const stops = c.violation !== undefined;
    test.if(stops)("after a violation further input is ignored and the violation stays", () => {
      // Find a garbage stream that breaks the decoder, then keep pushing valid frames.
      for (let seed = 1; seed <= 500; seed++) {
        const rng = new Rng(seed);
        const frames: CanFrame[] = [];
        const dec = c.makeDecoder((f) => frames.push(f));
        const v = dec.push(rng.bytes(200));
        if (v === null) continue;
        const before = frames.length;
        const again = dec.push(c.encode([c.genFrame(rng), c.genFrame(rng)]));
        expect(again).toBe(v);
        expect(frames.length).toBe(before);
        return;
      }
      throw new Error("no garbage stream produced a violation");
    });

    test.if(stops)("frames before a violation in the same chunk are delivered, then it stops", () => {
      const rng = new Rng(99);
      const frames = Array.from({ length: 10 }, () => c.genFrame(rng));
      const got: CanFrame[] = [];
      const dec = c.makeDecoder((f) => got.push(f));
      const v = dec.push(concat([c.encode(frames), c.violation!, c.encode(frames)]));
      expect(v).not.toBeNull();
      expect(describeMismatch(frames, got)).toBe("");
    });
  });
}
