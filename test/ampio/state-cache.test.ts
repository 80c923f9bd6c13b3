/**
 * State-on-connect cache: latest frame per (module, subtype), the age limit on an injected clock,
 * what is never stored (commands, events, one-off responses, unknown), and the size bound.
 */
import { describe, expect, test } from "bun:test";
import { AMPIO_COMMAND_ID, SATEL_COMMAND_ID, decodeAmpio } from "../../src/ampio/decoder.ts";
import { StateCache } from "../../src/ampio/state-cache.ts";
import { type CanFrame, dataFrame, formatFrame } from "../../src/can/frame.ts";

const A = 0x00001a2b;
const B = 0x00001a2c;
const T0 = 5_000_000;

const f = (id: number, bytes: Uint8Array | readonly number[]): CanFrame => dataFrame(id, bytes, true);
const text = (frames: readonly CanFrame[]): string[] => frames.map(formatFrame);

describe("what a new client is handed", () => {
  test("the latest broadcast per (module, subtype), in the order the bus last sent them", () => {
    const cache = new StateCache();
    cache.offer(f(A, [0xfe, 0x06, 0xd9, 0x04]), T0); // A temperature 24.1
    cache.offer(f(B, [0xfe, 0x1e, 0x01]), T0 + 10); // B outputs
    cache.offer(f(A, [0xfe, 0x4f, 0x39, 0x82]), T0 + 20); // A diagnostics
    cache.offer(f(A, [0xfe, 0x06, 0xe2, 0x04]), T0 + 30); // A temperature 25.0 replaces 24.1
    cache.offer(f(A, [0x10, 0xef, 0xff]), T0 + 40); // A SATEL response: one-off, never replayed
    expect(cache.size).toBe(3);
    expect(text(cache.snapshot(T0 + 50, 60_000))).toEqual(["00001A2C#FE1E01", "00001A2B#FE4F3982", "00001A2B#FE06E204"]);
  });

  test("a client that connects after the broadcasts gets the current picture", () => {
    const cache = new StateCache();
    const bus = [
      f(A, [0xfe, 0x1e, 0x00]), // outputs all off
      f(A, [0xfe, 0x1e, 0x05]), // outputs 1 and 3 on
      f(B, [0xfe, 0xc9, 0xe1, 0x04, 0xb0, 0x04, 0x33, 0x05]), // heating zone 1
      f(AMPIO_COMMAND_ID, [0x00, 0x00, 0x1a, 0x2b, 0x15, 0xff, 0x00, 0x00]), // a command to A
    ];
    bus.forEach((fr, i) => cache.offer(fr, T0 + i * 1000));
    // ...the client connects 10 s later, after its handshake:
    expect(text(cache.snapshot(T0 + 13_000, 60_000))).toEqual(["00001A2B#FE1E05", "00001A2C#FEC9E104B0043305"]);
  });

  test("SATEL panel responses and the date/time broadcast are one-off messages: never replayed", () => {
    const cache = new StateCache();
    // An old "command accepted" replayed to Home Assistant after its restart would look new and could re-fire an automation.
    expect(cache.offer(f(A, [0x10, 0xef, 0xff]), T0)).toBe(false);
    expect(cache.offer(f(B, [0x10, 0xef, 0x12]), T0 + 1)).toBe(false);
    expect(cache.offer(f(A, [0xfe, 0x10, 0x19, 0x09, 0x15, 0x07, 0x0d, 0x1e]), T0 + 2)).toBe(false); // a clock replayed late is wrong
    expect(cache.offer(f(A, [0xfe, 0x39, 0x01]), T0 + 3)).toBe(true); // SATEL arming state is state
    expect(text(cache.snapshot(T0 + 4, 1000))).toEqual(["00001A2B#FE3901"]);
  });

  test("a stored frame is a copy: the caller may reuse its buffer", () => {
    const cache = new StateCache();
    const buf = Uint8Array.from([0xfe, 0x06, 0xd9, 0x04]);
    cache.offer(f(A, buf), T0);
    buf.fill(0);
    expect(text(cache.snapshot(T0, 1000))).toEqual(["00001A2B#FE06D904"]);
  });

  test("a caller that already decoded passes the result in", () => {
    const cache = new StateCache();
    const fr = f(A, [0xfe, 0x80, 0x01]);
    expect(cache.offer(fr, T0, decodeAmpio(fr))).toBe(true);
    expect(cache.size).toBe(1);
  });
});

describe("never stored", () => {
  test("commands, even when their bytes look like a state broadcast", () => {
    const cache = new StateCache();
    expect(cache.offer(f(AMPIO_COMMAND_ID, [0xfe, 0x06, 0xd9, 0x04]), T0)).toBe(false);
    expect(cache.offer(f(SATEL_COMMAND_ID, [0x10, 0xef, 0x00]), T0)).toBe(false);
    expect(cache.offer(f(AMPIO_COMMAND_ID, []), T0)).toBe(false); // aioampio 0.2.3's empty frames
    expect(cache.size).toBe(0);
  });
  test("events, unknown, undecoded, short and non-Ampio frames", () => {
    const cache = new StateCache();
    const refused = [
      f(A, [0xfe, 0x2b, 0x01, 0x02]), // event
      f(A, [0xfe, 0x02, 0x01]), // unknown subtype
      f(A, [0xfe, 0x18, 0, 3, 0x94, 0x90, 0, 0]), // known, undecoded
      f(A, [0xfe, 0x10, 0x19, 0x09, 0x15, 0x07, 0x0d]), // date/time one byte short
      f(A, [0x10, 0xee, 0x00]), // not a SATEL status
      f(A, [0x01, 0x02, 0x03]), // other module traffic
      dataFrame(0x123, [0xfe, 0x06, 0xd9, 0x04]), // standard id
    ];
    for (const fr of refused) expect(cache.offer(fr, T0)).toBe(false);
    expect(cache.size).toBe(0);
    expect(cache.counters()).toEqual({ stored: 0, refused: refused.length, evictions: 0, expired: 0 });
  });
});

describe("age limit (injected clock)", () => {
  test("entries older than maxAgeMs are left out; the limit itself is still fresh", () => {
    const cache = new StateCache();
    cache.offer(f(A, [0xfe, 0x06, 0xd9, 0x04]), T0);
    cache.offer(f(B, [0xfe, 0x06, 0xe2, 0x04]), T0 + 5_000);
    expect(cache.snapshot(T0 + 10_000, 10_000)).toHaveLength(2);
    expect(text(cache.snapshot(T0 + 10_001, 10_000))).toEqual(["00001A2C#FE06E204"]);
    expect(cache.snapshot(T0 + 15_001, 10_000)).toEqual([]);
    // a snapshot does not forget: a later client with a longer limit still sees them
    expect(cache.snapshot(T0 + 15_001, 60_000)).toHaveLength(2);
  });
  test("a fresh broadcast renews an entry", () => {
    const cache = new StateCache();
    cache.offer(f(A, [0xfe, 0x06, 0xd9, 0x04]), T0);
    cache.offer(f(A, [0xfe, 0x06, 0xd9, 0x04]), T0 + 9_000);
    expect(cache.snapshot(T0 + 15_000, 10_000)).toHaveLength(1);
  });
  test("prune removes what is older than the limit", () => {
    const cache = new StateCache();
    cache.offer(f(A, [0xfe, 0x06, 0xd9, 0x04]), T0);
    cache.offer(f(B, [0xfe, 0x06, 0xd9, 0x04]), T0 + 5_000);
    expect(cache.prune(T0 + 10_001, 10_000)).toBe(1);
    expect(cache.size).toBe(1);
    expect(cache.counters().expired).toBe(1);
  });
});

describe("bound", () => {
  test("past maxEntries the least recently updated entry is evicted and counted", () => {
    const cache = new StateCache({ maxEntries: 3 });
    cache.offer(f(A, [0xfe, 0x06, 0xd9, 0x04]), T0); // A/06
    cache.offer(f(A, [0xfe, 0x4f, 0x39, 0x82]), T0 + 1); // A/4F
    cache.offer(f(B, [0xfe, 0x06, 0xd9, 0x04]), T0 + 2); // B/06
    cache.offer(f(A, [0xfe, 0x06, 0xe2, 0x04]), T0 + 3); // A/06 updated: A/4F is now the oldest
    cache.offer(f(B, [0xfe, 0x4f, 0x3c, 0x5a]), T0 + 4); // B/4F: evicts A/4F
    expect(cache.size).toBe(3);
    expect(cache.counters().evictions).toBe(1);
    expect(text(cache.snapshot(T0 + 5, 1000))).toEqual(["00001A2C#FE06D904", "00001A2B#FE06E204", "00001A2C#FE4F3C5A"]);
  });
  test("options are validated", () => {
    expect(() => new StateCache({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new StateCache({ maxEntries: 1.5 })).toThrow(RangeError);
  });
});
