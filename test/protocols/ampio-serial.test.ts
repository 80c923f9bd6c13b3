/**
 * Ampio serial codec (docs/protocols.md §4): the spec's byte vectors, the edge cases of a
 * streaming decoder (split frames, resync after garbage, bad length, bad checksum, a truncated
 * frame hiding a valid one), the go-ampio-server defects (dlc 0/1 dropped, 9-byte payloads
 * accepted), listeners that throw (every frame still delivered, the first error rethrown), the TX
 * encoder and its refusals, and a seeded fuzz run through random chunk sizes.
 */
import { describe, expect, test } from "bun:test";
import { CAN_EFF_FLAG, type CanFrame, dataFrame, fdFrame, formatFrame, framesEqual, remoteFrame } from "../../src/can/frame.ts";
import {
  AMPIO_RX_MAX_FRAME_BYTES,
  type AmpioRejectReason,
  AmpioSerialDecoder,
  ampioTxRefusal,
  encodeAmpioRx,
  encodeAmpioTx,
} from "../../src/protocols/ampio-serial/codec.ts";
import { hostileStream, prng, randInt, randomChunks } from "../fixtures/ampio-stream.ts";
import {
  RX_DLC0,
  RX_DLC1,
  RX_L14,
  RX_SPEC_EXAMPLE,
  RX_SPEC_EXAMPLE_BAD_CHECKSUM,
  RX_SPEC_EXAMPLE_DATA,
  RX_SPEC_EXAMPLE_ID,
  TX_SPEC_EXAMPLE,
} from "../fixtures/ampio-vectors.ts";

interface Collected {
  frames: CanFrame[];
  rejects: AmpioRejectReason[];
  skipped: number;
  decoder: AmpioSerialDecoder;
}

function collector(): Collected {
  const c: Collected = { frames: [], rejects: [], skipped: 0, decoder: null! };
  c.decoder = new AmpioSerialDecoder({
    frame: (f) => c.frames.push(f),
    reject: (r) => c.rejects.push(r),
    skip: (n) => (c.skipped += n),
  });
  return c;
}

function decodeAll(...chunks: (Uint8Array | number[])[]): Collected {
  const c = collector();
  for (const ch of chunks) c.decoder.push(ch instanceof Uint8Array ? ch : Uint8Array.from(ch));
  return c;
}

const cat = (...parts: (Uint8Array | number[])[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const ext = (id: number, data: number[]): CanFrame => ({ canId: (id | CAN_EFF_FLAG) >>> 0, len: data.length, data: Uint8Array.from(data), fd: false, fdFlags: 0 });
const texts = (fs: CanFrame[]): string[] => fs.map(formatFrame);

describe("ampio decoder: spec vectors", () => {
  test("spec RX example decodes to id 0x2 | EFF with its 8 data bytes", () => {
    const c = decodeAll(RX_SPEC_EXAMPLE);
    expect(c.frames).toHaveLength(1);
    expect(framesEqual(c.frames[0]!, ext(RX_SPEC_EXAMPLE_ID, RX_SPEC_EXAMPLE_DATA))).toBe(true);
    expect(formatFrame(c.frames[0]!)).toBe("00000002#FE10190919040120");
    expect(c.rejects).toEqual([]);
    expect(c.decoder.buffered).toBe(0);
  });

  test("encodeAmpioRx reproduces the spec RX example byte for byte", () => {
    expect([...encodeAmpioRx(RX_SPEC_EXAMPLE_ID, RX_SPEC_EXAMPLE_DATA)]).toEqual([...RX_SPEC_EXAMPLE]);
  });

  test("dlc 0 and dlc 1 frames are decoded (go-ampio-server dropped them)", () => {
    const c = decodeAll(RX_DLC0, RX_DLC1);
    expect(texts(c.frames)).toEqual(["12345678#", "000007FF#42"]);
    expect(c.rejects).toEqual([]);
  });

  test("L = 14 (a 9-byte payload) is rejected as a bad length, the next frame still decodes", () => {
    const c = decodeAll(cat(RX_L14, RX_SPEC_EXAMPLE));
    expect(c.rejects).toEqual(["bad_length"]);
    expect(texts(c.frames)).toEqual(["00000002#FE10190919040120"]);
  });

  test("every L from 0 to 255 outside 5..13 is a bad length", () => {
    for (let len = 0; len < 256; len++) {
      if (len >= 5 && len <= 13) continue;
      const c = decodeAll([0x2d, 0xd4, len]);
      expect(c.rejects).toEqual(["bad_length"]);
    }
  });
});

describe("ampio decoder: streaming edge cases", () => {
  test("message in two chunks, split at every position", () => {
    for (let cut = 0; cut <= RX_SPEC_EXAMPLE.length; cut++) {
      const c = decodeAll(RX_SPEC_EXAMPLE.subarray(0, cut), RX_SPEC_EXAMPLE.subarray(cut));
      expect(texts(c.frames)).toEqual(["00000002#FE10190919040120"]);
    }
  });

  test("one byte at a time", () => {
    const stream = cat(RX_DLC0, RX_SPEC_EXAMPLE, RX_DLC1);
    const c = collector();
    for (const b of stream) c.decoder.push(Uint8Array.of(b));
    expect(texts(c.frames)).toEqual(["12345678#", "00000002#FE10190919040120", "000007FF#42"]);
  });

  test("checksum in its own chunk", () => {
    const c = decodeAll(RX_SPEC_EXAMPLE.subarray(0, 15), RX_SPEC_EXAMPLE.subarray(15));
    expect(c.frames).toHaveLength(1);
  });

  test("does not start with the preamble: leading garbage is skipped", () => {
    const c = decodeAll(cat([0x00, 0xff, 0xd4, 0x13, 0x37], RX_DLC0));
    expect(texts(c.frames)).toEqual(["12345678#"]);
    expect(c.skipped).toBe(5);
    expect(c.rejects).toEqual([]);
  });

  test("a lone 0x2D right before a frame (2D 2D D4 …) is noise", () => {
    const c = decodeAll(cat([0x2d], RX_DLC1));
    expect(texts(c.frames)).toEqual(["000007FF#42"]);
    expect(c.skipped).toBe(1);
  });

  test("a trailing 0x2D waits for the next chunk", () => {
    const c = decodeAll([0x2d]);
    expect(c.decoder.buffered).toBe(1);
    c.decoder.push(RX_DLC0.subarray(1));
    expect(texts(c.frames)).toEqual(["12345678#"]);
  });

  test("continues after a checksum mismatch", () => {
    const c = decodeAll(cat(RX_SPEC_EXAMPLE_BAD_CHECKSUM, RX_DLC0));
    expect(c.rejects).toEqual(["bad_checksum"]);
    expect(texts(c.frames)).toEqual(["12345678#"]);
  });

  test("a truncated frame whose length swallows a valid frame does not hide it", () => {
    // 2D D4 0D 00: claims 13 more bytes, but the line lost its tail; a dlc-0 frame follows.
    // The decoder reads 16 bytes, finds a bad checksum, and must rescan from inside them.
    const c = decodeAll(cat([0x2d, 0xd4, 0x0d, 0x00], RX_DLC0, RX_DLC1));
    expect(c.rejects).toEqual(["bad_checksum"]);
    expect(texts(c.frames)).toEqual(["12345678#", "000007FF#42"]);
  });

  test("a valid frame inside a bad-length candidate is found", () => {
    // 2D D4 then L = 2D: the "length" byte starts the real preamble.
    const c = decodeAll(cat([0x2d, 0xd4], RX_DLC0));
    expect(c.rejects).toEqual(["bad_length"]);
    expect(texts(c.frames)).toEqual(["12345678#"]);
  });

  test("preamble bytes inside a valid frame's payload are data, not a new frame", () => {
    const f = encodeAmpioRx(0x2dd4, [0x2d, 0xd4, 0x05, 0x2d, 0xd4]);
    const c = decodeAll(f, RX_DLC0);
    expect(texts(c.frames)).toEqual(["00002DD4#2DD4052DD4", "12345678#"]);
    expect(c.rejects).toEqual([]);
  });

  test("ids with bits above 29 are masked to an extended data frame (never RTR/ERR)", () => {
    const c = decodeAll(encodeAmpioRx(0xffffffff, [1]));
    expect(c.frames[0]!.canId).toBe((0x1fffffff | CAN_EFF_FLAG) >>> 0);
  });

  test("decoded data does not alias the decoder's buffer", () => {
    const c = collector();
    c.decoder.push(RX_DLC1);
    const data = c.frames[0]!.data;
    c.decoder.push(cat(RX_SPEC_EXAMPLE, RX_SPEC_EXAMPLE));
    expect([...data]).toEqual([0x42]);
  });

  test("memory stays bounded: 4 MiB of noise in one push leaves nothing buffered", () => {
    const rnd = prng(7);
    const noise = new Uint8Array(4 << 20);
    for (let i = 0; i < noise.length; i++) {
      const v = randInt(rnd, 0, 255);
      noise[i] = v === 0xd4 ? 0 : v;
    }
    const c = decodeAll(noise, RX_DLC0);
    expect(texts(c.frames)).toEqual(["12345678#"]);
    expect(c.decoder.buffered).toBeLessThan(AMPIO_RX_MAX_FRAME_BYTES);
  });

  test("endless false preambles with huge lengths never grow the buffer", () => {
    const c = collector();
    const junk = new Uint8Array(1 << 16);
    for (let i = 0; i < junk.length; i += 3) junk.set([0x2d, 0xd4, 0x0d].slice(0, junk.length - i), i);
    for (let round = 0; round < 16; round++) {
      c.decoder.push(junk);
      expect(c.decoder.buffered).toBeLessThan(AMPIO_RX_MAX_FRAME_BYTES);
    }
    c.decoder.push(RX_DLC0);
    // The last false frame's window may swallow the real one's start; a second one always decodes.
    c.decoder.push(RX_DLC0);
    expect(c.frames.length).toBeGreaterThanOrEqual(1);
    expect(c.frames.every((f) => formatFrame(f) === "12345678#")).toBe(true);
  });
});

describe("ampio decoder: listeners that throw", () => {
  /** Frames 1..n with distinct ids, one byte of data each. */
  const numbered = (n: number): Uint8Array => cat(...Array.from({ length: n }, (_, i) => encodeAmpioRx(0x100 + i, [i & 0xff])));
  const ids = (fs: CanFrame[]): number[] => fs.map((f) => (f.canId & ~CAN_EFF_FLAG) >>> 0);
  const expected = (n: number): number[] => Array.from({ length: n }, (_, i) => 0x100 + i);

  /** Calls push(), returns what it threw (undefined if nothing). */
  function pushCatching(d: AmpioSerialDecoder, chunk: Uint8Array): unknown {
    try {
      d.push(chunk);
      return undefined;
    } catch (e) {
      return e;
    }
  }

  test("listener that throws does not lose the following frames", () => {
    const seen: CanFrame[] = [];
    const boom = new Error("listener fault");
    const d = new AmpioSerialDecoder({
      frame: (f) => {
        seen.push(f);
        if (seen.length === 1) throw boom;
      },
      reject: () => {},
    });
    // Five frames and the first half of a sixth in one chunk; the listener throws on the first.
    const wire = numbered(6);
    const cut = wire.length - 4;
    expect(pushCatching(d, wire.subarray(0, cut))).toBe(boom);
    // Every complete frame of the chunk was delivered by that same push, none waits for more bytes.
    expect(ids(seen)).toEqual(expected(5));
    expect(d.buffered).toBe(cut - 5 * encodeAmpioRx(0, [0]).length);
    // The error is reported once; the next chunk decodes normally and completes the partial frame.
    expect(pushCatching(d, wire.subarray(cut))).toBeUndefined();
    expect(ids(seen)).toEqual(expected(6));
    expect(d.buffered).toBe(0);
  });

  test("a listener that throws on every frame still gets every frame of a chunk larger than a slice, once", () => {
    const seen: CanFrame[] = [];
    let thrown = 0;
    // 32-byte slices: 300 frames of 9 bytes cross ~85 slice boundaries inside one push.
    const d = new AmpioSerialDecoder(
      {
        frame: (f) => {
          seen.push(f);
          throw new Error(`fault ${++thrown}`);
        },
        reject: () => {},
      },
      32,
    );
    const err = pushCatching(d, numbered(300));
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe("fault 1"); // the first error, not the last
    expect(thrown).toBe(300);
    expect(ids(seen)).toEqual(expected(300));
    expect(d.buffered).toBe(0);
  });

  test("reject and skip listeners that throw lose nothing either", () => {
    const frames: CanFrame[] = [];
    const rejects: AmpioRejectReason[] = [];
    let skipped = 0;
    const d = new AmpioSerialDecoder({
      frame: (f) => frames.push(f),
      reject: (r) => {
        rejects.push(r);
        throw new Error("reject fault");
      },
      skip: (n) => {
        skipped += n;
        throw new Error("skip fault");
      },
    });
    const chunk = cat([0x01, 0x02, 0x03], RX_DLC0, RX_L14, RX_DLC1, RX_SPEC_EXAMPLE_BAD_CHECKSUM, RX_SPEC_EXAMPLE, [0x07]);
    const err = pushCatching(d, chunk);
    expect((err as Error).message).toBe("skip fault"); // the leading noise came first
    expect(texts(frames)).toEqual(["12345678#", "000007FF#42", "00000002#FE10190919040120"]);
    expect(rejects).toEqual(["bad_length", "bad_checksum"]);
    // The same stream through listeners that do not throw skips exactly as many bytes.
    expect(skipped).toBe(decodeAll(chunk).skipped);
    expect(d.buffered).toBe(0);
  });

  test("a non-Error value thrown by a listener is rethrown as is", () => {
    const d = new AmpioSerialDecoder({
      frame: () => {
        throw "not an Error"; // what a careless listener might do
      },
      reject: () => {},
    });
    expect(pushCatching(d, RX_DLC0)).toBe("not an Error");
    expect(pushCatching(d, new Uint8Array(0))).toBeUndefined();
  });
});

describe("ampio encoder (host → adapter)", () => {
  test("spec TX example: id 0x123, data AA BB CC", () => {
    const bytes = encodeAmpioTx(dataFrame(0x123, [0xaa, 0xbb, 0xcc]));
    expect(bytes).not.toBeNull();
    expect([...bytes!]).toEqual([...TX_SPEC_EXAMPLE]);
  });

  test("extended ids are sent as 29 bits big-endian, every dlc 0..8", () => {
    for (let dlc = 0; dlc <= 8; dlc++) {
      const data = Array.from({ length: dlc }, (_, i) => i + 1);
      const bytes = encodeAmpioTx(dataFrame(0x1abcdef0, data, true))!;
      expect(bytes.length).toBe(10 + dlc);
      expect([...bytes.subarray(0, 9)]).toEqual([0x2d, 0xd4, 7 + dlc, 0x02, 0x80 | dlc, 0x1a, 0xbc, 0xde, 0xf0]);
      expect([...bytes.subarray(9, 9 + dlc)]).toEqual(data);
      let sum = 0x2d;
      for (let i = 2; i < bytes.length - 1; i++) sum += bytes[i]!;
      expect(bytes[bytes.length - 1]).toBe(sum & 0xff);
    }
  });

  test("RTR, CAN FD and error frames are refused with a reason", () => {
    const rtr = remoteFrame(0x123, 2);
    const fd = fdFrame(0x123, new Uint8Array(12));
    const err: CanFrame = { canId: 0x20000004, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    for (const f of [rtr, fd, err]) {
      expect(encodeAmpioTx(f)).toBeNull();
      expect(ampioTxRefusal(f)).toMatch(/cannot|error frames/);
    }
    expect(ampioTxRefusal(dataFrame(0x1, [1]))).toBeNull();
  });

  test("an invalid frame (9 data bytes) is refused, not sent mangled", () => {
    const bad: CanFrame = { canId: 0x123, len: 9, data: new Uint8Array(9), fd: false, fdFlags: 0 };
    expect(encodeAmpioTx(bad)).toBeNull();
  });
});

describe("ampio decoder: fuzz (seeded, bounded)", () => {
  const seeds = [1, 2, 3, 42, 1234, 0xc0ffee];
  for (const seed of seeds) {
    test(`seed ${seed}: exactly the valid frames, in order, once each, through random chunks 1 B..64 KiB`, () => {
      const stream = hostileStream({ seed, frames: seed === 42 ? 20_000 : 3000 });
      const rnd = prng(seed ^ 0x5a5a);
      const c = collector();
      for (const chunk of randomChunks(stream.bytes, rnd)) c.decoder.push(chunk);
      expect(c.frames.length).toBe(stream.expected.length);
      for (let i = 0; i < stream.expected.length; i++) {
        if (!framesEqual(c.frames[i]!, stream.expected[i]!)) {
          throw new Error(`frame ${i}: got ${formatFrame(c.frames[i]!)}, want ${formatFrame(stream.expected[i]!)}`);
        }
      }
      expect(c.rejects.length).toBe(stream.rejects);
      expect(c.decoder.buffered).toBe(0);
      // Every DLC occurs.
      expect(new Set(stream.expected.map((f) => f.len)).size).toBe(9);
    });
  }

  test("the same stream through 1-byte chunks and one 64 KiB chunk gives the same frames", () => {
    const stream = hostileStream({ seed: 99, frames: 2000 });
    const a = collector();
    for (let i = 0; i < stream.bytes.length; i++) a.decoder.push(stream.bytes.subarray(i, i + 1));
    const b = decodeAll(stream.bytes);
    expect(texts(a.frames)).toEqual(texts(stream.expected));
    expect(texts(b.frames)).toEqual(texts(stream.expected));
    expect(a.rejects).toEqual(b.rejects);
  });
});
