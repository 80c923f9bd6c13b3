/**
 * cannelloni UDP format v2 datagrams (docs/protocols.md §3): named byte vectors commented per byte,
 * round trips over random batches and MTUs, truncation at every byte and random garbage datagrams
 * (never a throw, every problem reported), and the 8-bit sequence tracker.
 */
import { describe, expect, test } from "bun:test";
import { CAN_ERR_FLAG, type CanFrame, CANFD_BRS, CANFD_ESI, CANFD_VALID_LENGTHS, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import {
  CANNELLONI_UDP_DEFAULT_PORT,
  cannelloniPayloadLimit,
  decodeDatagram,
  encodeDatagrams,
  SeqTracker,
} from "../../src/protocols/cannelloni-udp/codec.ts";
import { Rng } from "./conformance.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

function genFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  const k = rng.int(10);
  if (k < 2) return remoteFrame(id, rng.int(9), ext);
  if (k < 4) return fdFrame(id, rng.bytes(rng.pick(CANFD_VALID_LENGTHS)), rng.int(4) & (CANFD_BRS | CANFD_ESI), ext);
  if (k === 4) return { canId: (CAN_ERR_FLAG | rng.int(0x200)) >>> 0, len: 8, data: rng.bytes(8), fd: false, fdFlags: 0 };
  return dataFrame(id, rng.bytes(rng.int(9)), ext);
}

describe("cannelloni UDP byte vectors", () => {
  test("header and frames: data, RTR with its DLC, FD with flags", () => {
    const [d] = encodeDatagrams([dataFrame(0x123, [0xaa]), remoteFrame(0x7ff, 3), fdFrame(0x10, new Array(12).fill(0x55), CANFD_BRS)], 7, 1500);
    expect(Array.from(d!)).toEqual([
      0x02, // version 2
      0x00, // op_code DATA
      0x07, // seq_no
      0x00, 0x03, // count 3, big-endian
      0x00, 0x00, 0x01, 0x23, 0x01, 0xaa, // id 0x123, len 1, data
      0x40, 0x00, 0x07, 0xff, 0x03, // id RTR|0x7FF, len 3 (the DLC), no data bytes
      0x00, 0x00, 0x00, 0x10, 0x8c, 0x01, ...new Array(12).fill(0x55), // id 0x10, len 0x80|12, flags BRS, data
    ]);
    expect(decodeDatagram(d!)).toEqual({
      seq: 7,
      frames: [dataFrame(0x123, [0xaa]), remoteFrame(0x7ff, 3), fdFrame(0x10, new Array(12).fill(0x55), CANFD_BRS)],
      problems: [],
    });
  });

  test("extended id keeps the EFF flag in the id word", () => {
    const [d] = encodeDatagrams([dataFrame(0x1abcde0f, [], true)], 0, 1500);
    expect(Array.from(d!.subarray(5))).toEqual([0x9a, 0xbc, 0xde, 0x0f, 0x00]);
  });

  test("no frames, no datagram", () => {
    expect(encodeDatagrams([], 0, 1500)).toEqual([]);
  });

  test("payload limit: MTU − 28 (IPv4), − 48 (IPv6)", () => {
    expect(cannelloniPayloadLimit(1500)).toBe(1472);
    expect(cannelloniPayloadLimit(1500, "ipv6")).toBe(1452);
    expect(CANNELLONI_UDP_DEFAULT_PORT).toBe(20000);
  });

  test("an MTU too small for the largest frame is refused up front", () => {
    expect(() => encodeDatagrams([dataFrame(1, [])], 0, 100)).toThrow(RangeError);
  });

  test("batching: datagrams filled up to the MTU, successive seq numbers wrapping at 256", () => {
    const frames = Array.from({ length: 500 }, (_, i) => dataFrame(i & 0x7ff, [1, 2, 3, 4, 5, 6, 7, 8]));
    const ds = encodeDatagrams(frames, 254, 1500);
    // 13 bytes per frame, 1467 payload bytes after the header → 112 frames per datagram
    expect(ds.map((d) => (d[3]! << 8) | d[4]!)).toEqual([112, 112, 112, 112, 52]);
    expect(ds.map((d) => d[2])).toEqual([254, 255, 0, 1, 2]);
    for (const d of ds) expect(d.length).toBeLessThanOrEqual(1472);
    expect(ds.flatMap((d) => decodeDatagram(d).frames)).toEqual(frames);
  });

  test("a frame length over 64 is reported and the rest of the datagram skipped", () => {
    // header: count 2 | frame 0: id 1, len 0x7F (127 > 64) | then a valid frame that is not reached
    const d = bytes(2, 0, 9, 0, 2, 0, 0, 0, 1, 0x7f, 0, 0, 0, 2, 0);
    const got = decodeDatagram(d);
    expect(got.frames).toEqual([]);
    expect(got.problems.length).toBe(1);
    expect(got.problems[0]).toContain("above 64");
  });

  test("a count overrunning the datagram is reported; frames before it are kept", () => {
    // count 3, but only one 5-byte frame follows
    const got = decodeDatagram(bytes(2, 0, 1, 0, 3, 0, 0, 0, 5, 0));
    expect(got.frames).toEqual([dataFrame(5, [])]);
    expect(got.problems[0]).toContain("count 3 overruns");
  });

  test("a frame whose data runs past the end is reported", () => {
    const got = decodeDatagram(bytes(2, 0, 1, 0, 1, 0, 0, 0, 5, 4, 1, 2));
    expect(got.frames).toEqual([]);
    expect(got.problems[0]).toContain("rest of the datagram skipped");
  });

  test("complete but invalid frames are skipped, decoding goes on", () => {
    // classic len 9; FD len 13; standard id 0x800; then a good frame
    const d = bytes(2, 0, 1, 0, 4, 0, 0, 0, 1, 9, ...new Array(9).fill(0), 0, 0, 0, 1, 0x8d, 0, ...new Array(13).fill(0), 0, 0, 0x08, 0, 0, 0, 0, 0, 7, 1, 0x42);
    const got = decodeDatagram(d);
    expect(got.frames).toEqual([dataFrame(7, [0x42])]);
    expect(got.problems.length).toBe(3);
  });

  test("bad headers: short, wrong version, not DATA", () => {
    expect(decodeDatagram(bytes(2, 0, 1)).problems[0]).toContain("shorter");
    expect(decodeDatagram(bytes(1, 0, 1, 0, 0))).toEqual({ seq: null, frames: [], problems: ["version 1 (expected 2)"] });
    expect(decodeDatagram(bytes(2, 1, 5, 0, 0)).seq).toBe(5);
    expect(decodeDatagram(bytes(2, 1, 5, 0, 0)).problems[0]).toContain("not DATA");
  });

  test("trailing bytes after the counted frames are reported", () => {
    expect(decodeDatagram(bytes(2, 0, 1, 0, 0, 0xff)).problems[0]).toContain("1 bytes after");
  });
});

describe("cannelloni UDP datagram properties", () => {
  test("random batches round-trip exactly at random MTUs (seeded)", () => {
    for (let seed = 1; seed <= 60; seed++) {
      const rng = new Rng(seed);
      const frames = Array.from({ length: rng.int(300) }, () => genFrame(rng));
      const mtu = 28 + 75 + rng.int(1500);
      const ds = encodeDatagrams(frames, rng.int(256), mtu, {});
      const got: CanFrame[] = [];
      for (const d of ds) {
        expect(d.length).toBeLessThanOrEqual(mtu - 28);
        const r = decodeDatagram(d);
        expect(r.problems).toEqual([]);
        got.push(...r.frames);
      }
      expect(got).toEqual(frames);
    }
  });

  test("truncation at every byte never throws and always reports a problem", () => {
    const rng = new Rng(77);
    const frames = Array.from({ length: 20 }, () => genFrame(rng));
    const [d] = encodeDatagrams(frames, 0, 9000);
    for (let n = 0; n < d!.length; n++) {
      const r = decodeDatagram(d!.subarray(0, n));
      expect(r.problems.length).toBeGreaterThan(0);
      expect(r.frames).toEqual(frames.slice(0, r.frames.length));
    }
  });

  test("random garbage datagrams never throw; frames decoded are always valid", () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const rng = new Rng(seed * 13);
      const g = rng.bytes(rng.int(200));
      if (g.length > 0 && rng.bool(0.7)) g[0] = 2; // mostly past the version check
      if (g.length > 1 && rng.bool(0.7)) g[1] = 0;
      let r: ReturnType<typeof decodeDatagram> | undefined;
      expect(() => (r = decodeDatagram(g))).not.toThrow();
      for (const f of r!.frames) expect(f.fd ? f.data.length === f.len : f.len <= 8).toBe(true);
    }
  });
});

describe("SeqTracker", () => {
  test("in order, gaps, wrap-around", () => {
    const t = new SeqTracker();
    expect(t.classify(250)).toEqual({ verdict: "first", lostBefore: 0 });
    expect(t.observe(251)).toBe(0);
    expect(t.observe(254)).toBe(2); // 252, 253 lost
    expect(t.observe(255)).toBe(0);
    expect(t.observe(0)).toBe(0); // wraps
    expect(t.observe(3)).toBe(2); // 1, 2 lost across zero
    expect(t.lost).toBe(4);
    expect(t.received).toBe(6);
  });

  test("duplicates and late datagrams are not losses and do not move the reference", () => {
    const t = new SeqTracker();
    t.observe(10);
    t.observe(11);
    expect(t.classify(11).verdict).toBe("duplicate");
    expect(t.classify(9).verdict).toBe("late");
    expect(t.observe(12)).toBe(0);
    expect(t).toMatchObject({ lost: 0, duplicates: 1, late: 1 });
  });

  test("a gap of 128 is the largest counted as loss; reset forgets the reference", () => {
    const t = new SeqTracker();
    t.observe(0);
    expect(t.observe(128)).toBe(127);
    expect(t.classify(1).verdict).toBe("late"); // 129 behind
    t.reset();
    expect(t.classify(77).verdict).toBe("first");
  });
});
