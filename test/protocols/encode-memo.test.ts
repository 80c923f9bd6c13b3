/**
 * The shared encoding of stateless encoders (src/protocols/encode-memo.ts): reused only for the
 * very same frames, count and key; and, through the protocols that use it, every session still
 * gets exactly its own protocol's bytes.
 */
import { describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, type CanFrame } from "../../src/can/frame.ts";
import { EncodeMemo } from "../../src/protocols/encode-memo.ts";
import { encodeCannelloni } from "../../src/protocols/cannelloni/codec.ts";
import { cannelloni } from "../../src/protocols/cannelloni/protocol.ts";
import { encodeWaveshare } from "../../src/protocols/waveshare/codec.ts";
import { waveshare } from "../../src/protocols/waveshare/protocol.ts";
import { stamped } from "../helpers/stamped.ts";
import type { WireSessionEvents, WireSessionOptions } from "../../src/protocols/protocol.ts";

function counting(): { memo: EncodeMemo<string>; calls: () => number } {
  let calls = 0;
  const memo = new EncodeMemo<string>((frames, count, key) => {
    calls++;
    return new TextEncoder().encode(`${key}:${frames.slice(0, count).map((f) => f.canId).join(",")}`);
  });
  return { memo, calls: () => calls };
}

// As the hub hands them out (StampedFrame).
const a = stamped(dataFrame(0x100, [1]));
const b = stamped(dataFrame(0x101, [2]));
const c = stamped(dataFrame(0x102, [3]));

describe("EncodeMemo", () => {
  test("the same frames, count and key reuse the bytes (the same object)", () => {
    const { memo, calls } = counting();
    const first = memo.encode([a, b, c], 3, "k");
    const second = memo.encode([a, b, c], 3, "k");
    expect(second).toBe(first);
    expect(calls()).toBe(1);
    expect(memo.hits).toBe(1);
    expect(memo.misses).toBe(1);
  });

  test("a different frame anywhere, a different count or key encodes afresh", () => {
    const { memo, calls } = counting();
    memo.encode([a, b, c], 3, "k");
    // Same first and last frame and count, another frame in the middle.
    expect(new TextDecoder().decode(memo.encode([a, a, c], 3, "k"))).toBe("k:256,256,258");
    expect(new TextDecoder().decode(memo.encode([a, a, c], 2, "k"))).toBe("k:256,256");
    expect(new TextDecoder().decode(memo.encode([a, a], 2, "other"))).toBe("other:256,256");
    // An equal-looking but distinct frame object is another frame.
    expect(new TextDecoder().decode(memo.encode([a, dataFrame(0x100, [1])], 2, "other"))).toBe("other:256,256");
    expect(calls()).toBe(5);
  });

  test("only `count` frames of a longer batch array count", () => {
    const { memo, calls } = counting();
    memo.encode([a, b, c], 2, "k");
    expect(new TextDecoder().decode(memo.encode([a, b, a], 2, "k"))).toBe("k:256,257");
    expect(calls()).toBe(1);
  });

  test("the caller reusing its batch array does not change what was kept", () => {
    const { memo, calls } = counting();
    const batch: CanFrame[] = [a, b];
    memo.encode(batch, 2, "k");
    batch[1] = c; // the session refills its batch array for the next flush
    expect(new TextDecoder().decode(memo.encode(batch, 2, "k"))).toBe("k:256,258");
    expect(calls()).toBe(2);
  });
});

const events: WireSessionEvents = { frame() {}, reply() {}, ready() {}, rejected() {}, fail() {} };
const opts = (fd: boolean): WireSessionOptions => ({ fd, busName: "can0" });

describe("protocols sharing their encoding", () => {
  const fdF = stamped(fdFrame(0x123, new Uint8Array(12).fill(7), 1));
  const batch = [a, fdF, b];

  test("cannelloni: sessions with and without FD each get their own bytes, interleaved", () => {
    const classic = cannelloni.open(events, opts(false));
    const withFd = cannelloni.open(events, opts(true));
    for (let i = 0; i < 3; i++) {
      expect(classic.encode(batch, 3)).toEqual(encodeCannelloni(batch, 3, { fd: false }));
      expect(withFd.encode(batch, 3)).toEqual(encodeCannelloni(batch, 3, { fd: true }));
    }
    expect(withFd.encode(batch, 3).length).toBeGreaterThan(classic.encode(batch, 3).length);
  });

  test("cannelloni: two sessions with the same options share one buffer for one batch", () => {
    const s1 = cannelloni.open(events, opts(false));
    const s2 = cannelloni.open(events, opts(false));
    const bytes = s1.encode([a, b], 2);
    expect(s2.encode([a, b], 2)).toBe(bytes);
    expect(s2.encode([b, a], 2)).toEqual(encodeCannelloni([b, a], 2, { fd: false }));
  });

  test("waveshare: the shared bytes are the encoder's", () => {
    const s1 = waveshare.open(events, opts(false));
    const s2 = waveshare.open(events, opts(false));
    const bytes = s1.encode([a, b, c], 3);
    expect(bytes).toEqual(encodeWaveshare([a, b, c], 3));
    expect(s2.encode([a, b, c], 3)).toBe(bytes);
  });
});
