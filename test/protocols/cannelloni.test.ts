/**
 * cannelloni TCP codec, hello and session (docs/protocols.md §2): the shared conformance
 * suite, named byte vectors commented per byte, a cross-check of the encoder against an
 * independent decoder written here from the spec (it shares no code with src), and the
 * WireSession driven through its events. The events sink is a recorder, not a mock of a real part:
 * WireSessionEvents is the interface the server layer implements.
 */
import { describe, expect, test } from "bun:test";
import {
  CAN_EFF_FLAG,
  CAN_ERR_FLAG,
  CAN_RTR_FLAG,
  CANFD_BRS,
  CANFD_ESI,
  CANFD_VALID_LENGTHS,
  type CanFrame,
  dataFrame,
  fdFrame,
  frameProblem,
  remoteFrame,
} from "../../src/can/frame.ts";
import { CANNELLONI_MAX_FRAME_BYTES, CannelloniDecoder, encodeCannelloni } from "../../src/protocols/cannelloni/codec.ts";
import { CANNELLONI_HELLO, stepHello } from "../../src/protocols/cannelloni/handshake.ts";
import { cannelloni } from "../../src/protocols/cannelloni/protocol.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import { stamped } from "../helpers/stamped.ts";
import { Rng, randomChunks, runCodecConformance } from "./conformance.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

function genCannelloniFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  switch (rng.int(5)) {
    case 0:
      // The encoder sends RTR with len 0 (the DLC is lost), so only DLC 0 round-trips.
      return remoteFrame(id, 0, ext);
    case 1:
      return fdFrame(id, rng.bytes(rng.pick(CANFD_VALID_LENGTHS)), rng.int(4), ext);
    case 2:
      return { canId: (CAN_ERR_FLAG | rng.int(0x200)) >>> 0, len: 8, data: rng.bytes(8), fd: false, fdFlags: 0 };
    default:
      return dataFrame(id, rng.bytes(rng.int(9)), ext);
  }
}

function decodeAll(...chunks: Uint8Array[]): { frames: CanFrame[]; violation: string | null } {
  const frames: CanFrame[] = [];
  const dec = new CannelloniDecoder((f) => frames.push(f));
  let violation: string | null = null;
  for (const c of chunks) violation = dec.push(c);
  return { frames, violation };
}

runCodecConformance({
  name: "cannelloni",
  encode: (frames) => encodeCannelloni(frames, frames.length, { fd: true }),
  makeDecoder(onFrame) {
    const d = new CannelloniDecoder(onFrame);
    return { push: (c) => d.push(c), buffered: () => d.buffered };
  },
  genFrame: genCannelloniFrame,
  maxBuffered: CANNELLONI_MAX_FRAME_BYTES,
  // Standard id 0x123, len 9: a classic length above 8.
  violation: bytes(0x00, 0x00, 0x01, 0x23, 0x09),
});

describe("cannelloni decoder byte vectors", () => {
  // id 0x123, len 3, AA BB CC
  const std3 = bytes(0x00, 0x00, 0x01, 0x23, 0x03, 0xaa, 0xbb, 0xcc);

  test("standard data frame", () => {
    const { frames, violation } = decodeAll(std3);
    expect(violation).toBeNull();
    expect(frames).toEqual([dataFrame(0x123, [0xaa, 0xbb, 0xcc])]);
  });

  test("frame split in two chunks", () => {
    const { frames } = decodeAll(std3.subarray(0, 3), std3.subarray(3));
    expect(frames).toEqual([dataFrame(0x123, [0xaa, 0xbb, 0xcc])]);
  });

  test("length byte in its own chunk", () => {
    const { frames } = decodeAll(std3.subarray(0, 4), std3.subarray(4, 5), std3.subarray(5));
    expect(frames).toEqual([dataFrame(0x123, [0xaa, 0xbb, 0xcc])]);
  });

  test("two frames and a half in one chunk, rest later", () => {
    const wire = new Uint8Array([...std3, ...std3, ...std3]);
    const a = decodeAll(wire.subarray(0, 20));
    expect(a.frames.length).toBe(2);
    const b = decodeAll(wire.subarray(0, 20), wire.subarray(20));
    expect(b.frames.length).toBe(3);
  });

  test("extended id keeps the EFF flag in can_id", () => {
    // 0x80 | id 0x1ABCDE0F, len 1, 0x42
    const { frames } = decodeAll(bytes(0x9a, 0xbc, 0xde, 0x0f, 0x01, 0x42));
    expect(frames).toEqual([dataFrame(0x1abcde0f, [0x42], true)]);
  });

  test("zero-length data frame", () => {
    const { frames } = decodeAll(bytes(0x00, 0x00, 0x07, 0xff, 0x00));
    expect(frames).toEqual([dataFrame(0x7ff, [])]);
  });

  test("RTR carries no data bytes: len is the DLC, next frame follows at once", () => {
    const wire = bytes(
      0x40, 0x00, 0x01, 0x23, 0x04, // RTR | 0x123, DLC 4, no data
      0x00, 0x00, 0x01, 0x24, 0x01, 0x55, // 0x124, len 1, 55
    );
    const { frames, violation } = decodeAll(wire);
    expect(violation).toBeNull();
    expect(frames).toEqual([remoteFrame(0x123, 4), dataFrame(0x124, [0x55])]);
  });

  test("FD length 12 with flags", () => {
    const data = Array.from({ length: 12 }, (_, i) => i);
    // id 0x321, len 0x80|12, flags BRS|ESI, 12 data bytes
    const { frames, violation } = decodeAll(bytes(0x00, 0x00, 0x03, 0x21, 0x8c, 0x03, ...data));
    expect(violation).toBeNull();
    expect(frames).toEqual([fdFrame(0x321, data, CANFD_BRS | CANFD_ESI)]);
  });

  test("FD flags byte: FDF and unknown bits are dropped, BRS kept", () => {
    const { frames } = decodeAll(bytes(0x00, 0x00, 0x00, 0x01, 0x80, 0xf5));
    expect(frames).toEqual([fdFrame(0x1, [], CANFD_BRS)]);
  });

  test("FD frame split between length byte and flags byte", () => {
    const wire = bytes(0x00, 0x00, 0x03, 0x21, 0x81, 0x01, 0x99);
    const { frames } = decodeAll(wire.subarray(0, 5), wire.subarray(5, 6), wire.subarray(6));
    expect(frames).toEqual([fdFrame(0x321, [0x99], CANFD_BRS)]);
  });

  test("FD frame with 64 bytes, one byte at a time", () => {
    const data = Array.from({ length: 64 }, (_, i) => 255 - i);
    const wire = bytes(0x80, 0x00, 0x00, 0x10, 0xc0, 0x00, ...data);
    const chunks = Array.from(wire, (b) => bytes(b));
    const { frames } = decodeAll(...chunks);
    expect(frames).toEqual([fdFrame(0x10, data, 0, true)]);
  });

  test("len 9 classic is a violation", () => {
    const { frames, violation } = decodeAll(bytes(0x00, 0x00, 0x01, 0x23, 0x09, ...new Array(9).fill(0)));
    expect(frames).toEqual([]);
    expect(violation).toContain("length 9");
  });

  test("violation is reported from the header alone, before any data arrives", () => {
    expect(decodeAll(bytes(0x00, 0x00, 0x01, 0x23, 0x7f)).violation).not.toBeNull();
  });

  test("FD length 9 is a violation", () => {
    expect(decodeAll(bytes(0x00, 0x00, 0x01, 0x23, 0x89, 0x00)).violation).toContain("invalid CAN FD length 9");
  });

  test("FD length above 64 is a violation", () => {
    expect(decodeAll(bytes(0x00, 0x00, 0x01, 0x23, 0xc1)).violation).toContain("invalid CAN FD length 65");
  });

  test("FD with the RTR flag is a violation", () => {
    expect(decodeAll(bytes(0x40, 0x00, 0x01, 0x23, 0x80, 0x00)).violation).toContain("RTR");
  });

  test("standard id above 0x7FF (no EFF flag) is a violation", () => {
    expect(decodeAll(bytes(0x00, 0x00, 0x08, 0x00, 0x00)).violation).toContain("above 0x7FF");
  });

  test("error frame keeps its id word", () => {
    const { frames, violation } = decodeAll(bytes(0x20, 0x00, 0x00, 0x04, 0x08, 0, 0, 0, 0, 0, 0, 0, 0));
    expect(violation).toBeNull();
    expect(frames[0]!.canId).toBe((CAN_ERR_FLAG | 4) >>> 0);
  });

  test("frames before a violation are delivered, nothing after", () => {
    const { frames, violation } = decodeAll(bytes(0x00, 0x00, 0x01, 0x23, 0x00, 0x00, 0x00, 0x01, 0x23, 0x0a, 0x00, 0x00, 0x01, 0x23, 0x00));
    expect(frames.length).toBe(1);
    expect(violation).not.toBeNull();
  });

  test("decoded frames own their data (the chunk may be reused)", () => {
    const chunk = std3.slice();
    const { frames } = decodeAll(chunk);
    chunk.fill(0);
    expect(Array.from(frames[0]!.data)).toEqual([0xaa, 0xbb, 0xcc]);
  });

  test("every decoded frame is a valid CAN frame", () => {
    const rng = new Rng(5);
    for (let i = 0; i < 300; i++) {
      const dec = new CannelloniDecoder((f) => expect(frameProblem(f)).toBeNull());
      dec.push(rng.bytes(64));
    }
  });
});

/**
 * An independent decoder written from §2 for the cross-check (shares no code with src): reads
 * can_id BE, len, optional flags, then data unless RTR. Returns [canId, len, flags|-1, data[]].
 */
function referenceDecode(wire: Uint8Array): [number, number, number, number[]][] {
  const out: [number, number, number, number[]][] = [];
  const dv = new DataView(wire.buffer, wire.byteOffset, wire.byteLength);
  let p = 0;
  while (p < wire.length) {
    const id = dv.getUint32(p);
    const l = wire[p + 4]!;
    p += 5;
    let flags = -1;
    if (l >= 0x80) flags = wire[p++]!;
    const n = id & 0x40000000 ? 0 : l & 0x7f;
    out.push([id, l, flags, Array.from(wire.subarray(p, p + n))]);
    p += n;
  }
  return out;
}

describe("cannelloni encoder byte vectors", () => {
  test("standard, extended, RTR, FD in one batch", () => {
    const frames = [
      dataFrame(0x123, [0xaa, 0xbb, 0xcc]),
      dataFrame(0x1abcde0f, [0x42], true),
      remoteFrame(0x7ff, 5),
      fdFrame(0x321, new Array(12).fill(0x11), CANFD_BRS),
    ];
    const wire = encodeCannelloni(frames, frames.length, { fd: true });
    expect(Array.from(wire)).toEqual([
      0x00, 0x00, 0x01, 0x23, 0x03, 0xaa, 0xbb, 0xcc, // std 0x123 len 3
      0x9a, 0xbc, 0xde, 0x0f, 0x01, 0x42, // EFF 0x1ABCDE0F len 1
      0x40, 0x00, 0x07, 0xff, 0x00, // RTR 0x7FF: len 0, no data (DLC 5 is lost)
      0x00, 0x00, 0x03, 0x21, 0x8c, 0x01, ...new Array(12).fill(0x11), // FD len 12, flags BRS
    ]);
    expect(referenceDecode(wire)).toEqual([
      [0x123, 3, -1, [0xaa, 0xbb, 0xcc]],
      [(CAN_EFF_FLAG | 0x1abcde0f) >>> 0, 1, -1, [0x42]],
      [(CAN_RTR_FLAG | 0x7ff) >>> 0, 0, -1, []],
      [0x321, 0x8c, 1, new Array(12).fill(0x11)],
    ]);
  });

  test("FD frames are skipped when FD is off", () => {
    const frames = [fdFrame(0x1, [1]), dataFrame(0x2, [2])];
    expect(Array.from(encodeCannelloni(frames, 2, { fd: false }))).toEqual([0, 0, 0, 2, 1, 2]);
  });

  test("only frames[0..count) are encoded", () => {
    const frames = [dataFrame(0x1, [1]), dataFrame(0x2, [2])];
    expect(Array.from(encodeCannelloni(frames, 1, { fd: false }))).toEqual([0, 0, 0, 1, 1, 1]);
  });

  test("random batches agree with the independent decoder", () => {
    const rng = new Rng(31337);
    for (let round = 0; round < 50; round++) {
      const frames = Array.from({ length: 1 + rng.int(30) }, () => genCannelloniFrame(rng));
      const ref = referenceDecode(encodeCannelloni(frames, frames.length, { fd: true }));
      expect(ref.length).toBe(frames.length);
      ref.forEach(([id, l, flags, data], i) => {
        const f = frames[i]!;
        expect(id).toBe(f.canId);
        expect(l & 0x7f).toBe(f.canId & CAN_RTR_FLAG ? 0 : f.len);
        expect(l >= 0x80).toBe(f.fd);
        expect(flags).toBe(f.fd ? f.fdFlags : -1);
        expect(data).toEqual(Array.from(f.data));
      });
    }
  });
});

describe("cannelloni hello", () => {
  test("exact hello in one chunk", () => {
    const s = stepHello(0, CANNELLONI_HELLO);
    expect(s.kind).toBe("done");
    if (s.kind === "done") expect(s.rest.length).toBe(0);
  });

  test("hello one byte at a time", () => {
    let matched = 0;
    for (let i = 0; i < 11; i++) {
      const s = stepHello(matched, CANNELLONI_HELLO.subarray(i, i + 1));
      expect(s).toEqual({ kind: "need-more", matched: i + 1 });
      matched = i + 1;
    }
    expect(stepHello(matched, CANNELLONI_HELLO.subarray(11)).kind).toBe("done");
  });

  test("hello and first frame in one chunk: the frame bytes are handed back", () => {
    const chunk = new Uint8Array([...CANNELLONI_HELLO, 0, 0, 1, 0x23, 0]);
    const s = stepHello(0, chunk);
    expect(s.kind).toBe("done");
    if (s.kind === "done") expect(Array.from(s.rest)).toEqual([0, 0, 1, 0x23, 0]);
  });

  test("wrong byte fails at once, without waiting for 12 bytes", () => {
    expect(stepHello(0, new TextEncoder().encode("GET")).kind).toBe("error");
    expect(stepHello(0, new TextEncoder().encode("CANNELLONIv2")).kind).toBe("error");
  });

  test("lower-case hello is rejected", () => {
    expect(stepHello(0, new TextEncoder().encode("cannelloniv1")).kind).toBe("error");
  });
});

interface Recorded {
  frames: CanFrame[];
  replies: Uint8Array[];
  ready: number;
  fails: [string, string][];
  log: string[];
}

function recorder(): { events: WireSessionEvents; rec: Recorded } {
  const rec: Recorded = { frames: [], replies: [], ready: 0, fails: [], log: [] };
  const events: WireSessionEvents = {
    frame: (f) => {
      rec.frames.push(f);
      rec.log.push("frame");
    },
    rejected: (reason) => rec.log.push(`rejected ${reason}`),
    reply: (b) => {
      rec.replies.push(b);
      rec.log.push("reply");
    },
    ready: () => {
      rec.ready++;
      rec.log.push("ready");
    },
    fail: (kind, reason) => {
      rec.fails.push([kind, reason]);
      rec.log.push("fail");
    },
  };
  return { events, rec };
}

describe("cannelloni session", () => {
  const opts = { fd: false, busName: "can0" };
  const hello = CANNELLONI_HELLO;
  const frameBytes = bytes(0x00, 0x00, 0x01, 0x23, 0x01, 0x77);

  test("protocol identity", () => {
    expect(cannelloni.name).toBe("cannelloni");
    expect(cannelloni.defaultPort).toBe(20000);
  });

  test("start sends the hello before reading anything", () => {
    const { events, rec } = recorder();
    cannelloni.open(events, opts).start();
    expect(rec.replies.map((r) => new TextDecoder().decode(r))).toEqual(["CANNELLONIv1"]);
    expect(rec.ready).toBe(0);
  });

  test("hello and first frame in one chunk", () => {
    const { events, rec } = recorder();
    const s = cannelloni.open(events, opts);
    s.start();
    s.receive(new Uint8Array([...hello, ...frameBytes]));
    expect(rec.log).toEqual(["reply", "ready", "frame"]);
    expect(rec.frames).toEqual([dataFrame(0x123, [0x77])]);
  });

  test("hello and frames split at random points", () => {
    const rng = new Rng(8);
    const wire = new Uint8Array([...hello, ...frameBytes, ...frameBytes, ...frameBytes]);
    for (let round = 0; round < 30; round++) {
      const { events, rec } = recorder();
      const s = cannelloni.open(events, opts);
      s.start();
      for (const c of randomChunks(rng, wire, 8)) s.receive(c);
      expect(rec.ready).toBe(1);
      expect(rec.frames.length).toBe(3);
      expect(rec.fails).toEqual([]);
    }
  });

  test("bad hello fails the handshake once and ignores further input", () => {
    const { events, rec } = recorder();
    const s = cannelloni.open(events, opts);
    s.start();
    s.receive(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
    s.receive(new Uint8Array([...hello, ...frameBytes]));
    expect(rec.fails.length).toBe(1);
    expect(rec.fails[0]![0]).toBe("handshake");
    expect(rec.ready).toBe(0);
    expect(rec.frames).toEqual([]);
  });

  test("frame violation fails as malformed once and ignores further input", () => {
    const { events, rec } = recorder();
    const s = cannelloni.open(events, opts);
    s.start();
    s.receive(hello);
    s.receive(bytes(0x00, 0x00, 0x01, 0x23, 0x09));
    s.receive(frameBytes);
    expect(rec.fails).toEqual([["malformed", "classic frame length 9 above 8"]]);
    expect(rec.frames).toEqual([]);
  });

  test("accepts FD frames only when FD is enabled", () => {
    const fd = fdFrame(0x1, [1, 2]);
    const classic = dataFrame(0x1, [1, 2]);
    const off = cannelloni.open(recorder().events, { fd: false, busName: "" });
    const on = cannelloni.open(recorder().events, { fd: true, busName: "" });
    expect(off.accepts(fd)).toBe(false);
    expect(off.accepts(classic)).toBe(true);
    expect(on.accepts(fd)).toBe(true);
    expect(Array.from(on.encode([stamped(fd)], 1))).toEqual([0, 0, 0, 1, 0x82, 0, 1, 2]);
  });
});
