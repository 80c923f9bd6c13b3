/**
 * The kernel frame structs (spec §1): named byte vectors for can_frame (16 bytes) and
 * canfd_frame (72 bytes), little-endian host order. Pure, runs on any host.
 */
import { describe, expect, test } from "bun:test";
import { CANFD_FRAME_SIZE, CAN_FRAME_SIZE, decodeCanStruct, encodeCanStruct } from "../../src/backends/socketcan/can-struct.ts";
import { dataFrame, fdFrame, framesEqual, parseFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";

function struct(size: number, head: number[], data: number[] = []): Uint8Array {
  const b = new Uint8Array(size);
  b.set(head);
  b.set(data, 8);
  return b;
}

// can_id 0x123 LE | len 4 | pad | res0 | len8_dlc | DE AD BE EF
const STD_DEADBEEF = struct(16, [0x23, 0x01, 0x00, 0x00, 4, 0, 0, 0], [0xde, 0xad, 0xbe, 0xef]);
// can_id 0x12345678 | EFF (0x80000000) = 0x92345678 LE | len 8
const EXT_8 = struct(16, [0x78, 0x56, 0x34, 0x92, 8, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7, 8]);
// 0x7FF | RTR (0x40000000) = 0x400007FF LE | len (DLC) 3, no data
const STD_RTR3 = struct(16, [0xff, 0x07, 0x00, 0x40, 3, 0, 0, 0]);
// canfd_frame: 0x321 | len 12 | flags BRS|FDF (0x05) | res0 | res1 | 12 bytes
const FD_BRS_12 = struct(72, [0x21, 0x03, 0x00, 0x00, 12, 0x05, 0, 0], [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);

describe("decodeCanStruct", () => {
  const cases: [string, Uint8Array, CanFrame][] = [
    ["standard data frame", STD_DEADBEEF, dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef])],
    ["extended 8-byte frame", EXT_8, dataFrame(0x12345678, [1, 2, 3, 4, 5, 6, 7, 8], true)],
    ["remote request keeps its DLC, no data", STD_RTR3, remoteFrame(0x7ff, 3, false)],
    ["FD frame: FDF is implied, BRS kept", FD_BRS_12, parseFrame("321##1AABBCCDDEEFF001122334455")],
  ];
  for (const [name, bytes, want] of cases) {
    test(name, () => {
      const got = decodeCanStruct(bytes, 0, bytes.length);
      expect(got).not.toBeNull();
      expect(framesEqual(got!, want)).toBe(true);
    });
  }

  test("reads at an offset and copies the data (the ring slot is reused)", () => {
    const buf = new Uint8Array(8 + 16);
    buf.set(STD_DEADBEEF, 8);
    const got = decodeCanStruct(buf, 8, CAN_FRAME_SIZE)!;
    buf.fill(0);
    expect([...got.data]).toEqual([0xde, 0xad, 0xbe, 0xef]);
  });

  test("rejects other sizes and impossible lengths", () => {
    expect(decodeCanStruct(new Uint8Array(72), 0, 20)).toBeNull();
    expect(decodeCanStruct(struct(16, [1, 0, 0, 0, 9]), 0, 16)).toBeNull();
    expect(decodeCanStruct(struct(72, [1, 0, 0, 0, 65]), 0, 72)).toBeNull();
  });
});

describe("encodeCanStruct", () => {
  test("byte-exact structs, unused bytes zero", () => {
    const out = new Uint8Array(72).fill(0x5a);
    expect(encodeCanStruct(dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]), out)).toBe(CAN_FRAME_SIZE);
    expect([...out.subarray(0, 16)]).toEqual([...STD_DEADBEEF]);
    expect(encodeCanStruct(remoteFrame(0x7ff, 3, false), out)).toBe(CAN_FRAME_SIZE);
    expect([...out.subarray(0, 16)]).toEqual([...STD_RTR3]);
    expect(encodeCanStruct(fdFrame(0x321, FD_BRS_12.subarray(8, 20), 1), out)).toBe(CANFD_FRAME_SIZE);
    expect([...out]).toEqual([...FD_BRS_12]);
  });

  test("round trip through the struct for every classic length and every FD length", () => {
    const out = new Uint8Array(72);
    for (let len = 0; len <= 8; len++) {
      const f = dataFrame(0x1abcdef0 & 0x1fffffff, Array.from({ length: len }, (_, i) => i * 17), true);
      const n = encodeCanStruct(f, out);
      expect(framesEqual(decodeCanStruct(out, 0, n)!, f)).toBe(true);
    }
    for (const len of [0, 1, 8, 12, 16, 20, 24, 32, 48, 64]) {
      const f = fdFrame(0x55, Array.from({ length: len }, (_, i) => 255 - i), 3);
      const n = encodeCanStruct(f, out);
      expect(framesEqual(decodeCanStruct(out, 0, n)!, f)).toBe(true);
    }
  });
});
