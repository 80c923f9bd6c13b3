/**
 * Waveshare 13-byte codec and session (shared/spec/PROTOCOLS.md §5): the shared conformance suite,
 * named byte vectors commented per byte, and the WireSession driven through a recording events
 * sink (the interface the server layer implements; no real part to use instead).
 */
import { describe, expect, test } from "bun:test";
import { CAN_ERR_FLAG, type CanFrame, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import { encodeWaveshare, WAVESHARE_FRAME_BYTES, WaveshareDecoder } from "../../src/protocols/waveshare/codec.ts";
import { waveshare } from "../../src/protocols/waveshare/protocol.ts";
import { Rng, runCodecConformance } from "./conformance.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

function genWaveshareFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  return rng.bool(0.2) ? remoteFrame(id, rng.int(9), ext) : dataFrame(id, rng.bytes(rng.int(9)), ext);
}

function decodeAll(...chunks: Uint8Array[]): { frames: CanFrame[]; violation: string | null } {
  const frames: CanFrame[] = [];
  const dec = new WaveshareDecoder((f) => frames.push(f));
  let violation: string | null = null;
  for (const c of chunks) violation = dec.push(c);
  return { frames, violation };
}

runCodecConformance({
  name: "waveshare",
  encode: (frames) => encodeWaveshare(frames, frames.length),
  makeDecoder(onFrame) {
    const d = new WaveshareDecoder(onFrame);
    return { push: (c) => d.push(c), buffered: () => d.buffered };
  },
  genFrame: genWaveshareFrame,
  maxBuffered: WAVESHARE_FRAME_BYTES - 1,
  // DLC 9
  violation: bytes(0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
});

describe("waveshare decoder byte vectors", () => {
  // info DLC 3 | id 0x123 | AA BB CC + 5 padding
  const std3 = bytes(0x03, 0x00, 0x00, 0x01, 0x23, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0);

  test("standard data frame", () => {
    expect(decodeAll(std3)).toEqual({ frames: [dataFrame(0x123, [0xaa, 0xbb, 0xcc])], violation: null });
  });

  test("frame split in two chunks", () => {
    expect(decodeAll(std3.subarray(0, 6), std3.subarray(6)).frames).toEqual([dataFrame(0x123, [0xaa, 0xbb, 0xcc])]);
  });

  test("one and a half frames, then the rest", () => {
    const wire = new Uint8Array([...std3, ...std3]);
    expect(decodeAll(wire.subarray(0, 19)).frames.length).toBe(1);
    expect(decodeAll(wire.subarray(0, 19), wire.subarray(19)).frames.length).toBe(2);
  });

  test("extended frame: info 0x80, id without flag bits", () => {
    // info EXT | DLC 8, id 0x1ABCDE0F, 8 data bytes
    const { frames } = decodeAll(bytes(0x88, 0x1a, 0xbc, 0xde, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8));
    expect(frames).toEqual([dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true)]);
  });

  test("extended frame with a small id stays extended", () => {
    const { frames } = decodeAll(bytes(0x80, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 0));
    expect(frames).toEqual([dataFrame(0x5, [], true)]);
  });

  test("RTR keeps its DLC, padding ignored, no data", () => {
    // info RTR | DLC 4, id 0x7FF, padding not zero
    const { frames } = decodeAll(bytes(0x44, 0, 0, 0x07, 0xff, 9, 9, 9, 9, 9, 9, 9, 9));
    expect(frames).toEqual([remoteFrame(0x7ff, 4)]);
  });

  test("non-zero padding after the data is ignored", () => {
    const { frames } = decodeAll(bytes(0x01, 0, 0, 0, 0x10, 0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    expect(frames).toEqual([dataFrame(0x10, [0x42])]);
  });

  test("DLC 9 is a violation", () => {
    expect(decodeAll(bytes(0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).violation).toContain("DLC 9");
  });

  test("DLC 15 is a violation", () => {
    expect(decodeAll(bytes(0x0f, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).violation).toContain("DLC 15");
  });

  test("reserved info bits are a violation", () => {
    expect(decodeAll(bytes(0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).violation).toContain("reserved");
    expect(decodeAll(bytes(0x20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).violation).toContain("reserved");
  });

  test("standard id above 0x7FF is a violation", () => {
    expect(decodeAll(bytes(0x00, 0, 0, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0)).violation).toContain("standard id 0x800");
  });

  test("extended id above 0x1FFFFFFF is a violation", () => {
    expect(decodeAll(bytes(0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).violation).toContain("extended id 0x20000000");
  });

  test("flag bits in the id word are a violation (the format has none)", () => {
    expect(decodeAll(bytes(0x80, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).violation).not.toBeNull();
  });

  test("frame before a violation in the same chunk is delivered", () => {
    const { frames, violation } = decodeAll(new Uint8Array([...std3, 0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, ...std3]));
    expect(frames.length).toBe(1);
    expect(violation).not.toBeNull();
  });

  test("violation in a frame completed from buffered bytes", () => {
    const bad = bytes(0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const { frames, violation } = decodeAll(new Uint8Array([...std3, ...bad.subarray(0, 3)]), bad.subarray(3), std3);
    expect(frames.length).toBe(1);
    expect(violation).toContain("DLC 12");
  });
});

describe("waveshare encoder byte vectors", () => {
  test("standard, extended and RTR frames, 13 bytes each, zero padded", () => {
    const wire = encodeWaveshare([dataFrame(0x123, [0xaa, 0xbb, 0xcc]), dataFrame(0x1abcde0f, [1], true), remoteFrame(0x7ff, 8)], 3);
    expect(Array.from(wire)).toEqual([
      0x03, 0x00, 0x00, 0x01, 0x23, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0, // DLC 3, id 0x123
      0x81, 0x1a, 0xbc, 0xde, 0x0f, 0x01, 0, 0, 0, 0, 0, 0, 0, // EXT | DLC 1, id without EFF bit
      0x48, 0x00, 0x00, 0x07, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, // RTR | DLC 8, no data
    ]);
  });

  test("FD and error frames are skipped", () => {
    const err: CanFrame = { canId: (CAN_ERR_FLAG | 4) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    const wire = encodeWaveshare([fdFrame(0x1, [1]), err, dataFrame(0x2, [])], 3);
    expect(Array.from(wire)).toEqual([0x00, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

function recorder() {
  const rec = { frames: [] as CanFrame[], replies: 0, ready: 0, fails: [] as [string, string][] };
  const events: WireSessionEvents = {
    frame: (f) => rec.frames.push(f),
    reply: () => rec.replies++,
    ready: () => rec.ready++,
    rejected: () => rec.fails.push(["rejected", ""]),
    fail: (kind, reason) => rec.fails.push([kind, reason]),
  };
  return { events, rec };
}

describe("waveshare session", () => {
  const opts = { fd: true, busName: "can0" };

  test("protocol identity", () => {
    expect(waveshare.name).toBe("waveshare");
    expect(waveshare.defaultPort).toBe(20001);
  });

  test("no handshake: ready on start, nothing sent", () => {
    const { events, rec } = recorder();
    waveshare.open(events, opts).start();
    expect(rec).toEqual({ frames: [], replies: 0, ready: 1, fails: [] });
  });

  test("frames then a violation: malformed once, later input ignored", () => {
    const { events, rec } = recorder();
    const s = waveshare.open(events, opts);
    s.start();
    s.receive(encodeWaveshare([dataFrame(0x1, [1])], 1));
    s.receive(bytes(0x30, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    s.receive(encodeWaveshare([dataFrame(0x1, [1])], 1));
    expect(rec.frames.length).toBe(1);
    expect(rec.fails.length).toBe(1);
    expect(rec.fails[0]![0]).toBe("malformed");
  });

  test("accepts neither FD nor error frames, even with FD enabled", () => {
    const s = waveshare.open(recorder().events, opts);
    expect(s.accepts(fdFrame(0x1, [1]))).toBe(false);
    expect(s.accepts({ canId: CAN_ERR_FLAG, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toBe(false);
    expect(s.accepts(dataFrame(0x1, [1]))).toBe(true);
    expect(s.accepts(remoteFrame(0x1, 2))).toBe(true);
  });
});
