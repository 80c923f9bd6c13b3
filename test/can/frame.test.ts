/** The frame model: candump/cansend text both ways, id flags and masks, validation rules. */
import { describe, expect, test } from "bun:test";
import {
  CAN_EFF_FLAG,
  CAN_ERR_FLAG,
  CAN_RTR_FLAG,
  FrameSyntaxError,
  arbitrationId,
  dataFrame,
  fdFrame,
  formatFrame,
  frameProblem,
  isExtended,
  isRemote,
  parseFrame,
  remoteFrame,
} from "../../src/can/frame.ts";

describe("candump text syntax", () => {
  const roundTrip = ["123#DEADBEEF", "1ABCDE0F#", "123#R4", "123#R", "7FF#0011223344556677", "00000001#AA", "123##1AABB", "0001FFFF##0" + "00".repeat(12), "20000080#0000000000000000"];
  for (const t of roundTrip) {
    test(`round trip ${t}`, () => {
      expect(formatFrame(parseFrame(t))).toBe(t);
    });
  }

  test("fields of parsed frames", () => {
    const ext = parseFrame("1ABCDE0F#");
    expect(ext.canId).toBe((0x1abcde0f | CAN_EFF_FLAG) >>> 0);
    expect(isExtended(ext)).toBe(true);
    expect(ext.len).toBe(0);
    const rtr = parseFrame("123#R4");
    expect(isRemote(rtr)).toBe(true);
    expect(rtr.len).toBe(4);
    expect(rtr.data.length).toBe(0);
    const fd = parseFrame("123##1AABB");
    expect(fd.fd).toBe(true);
    expect(fd.fdFlags).toBe(1);
    expect([...fd.data]).toEqual([0xaa, 0xbb]);
    const err = parseFrame("20000080#0000000000000000");
    expect(err.canId).toBe((CAN_ERR_FLAG | 0x80) >>> 0);
    expect(parseFrame("123#DE.AD.BE.EF").data.length).toBe(4);
  });

  const bad = ["123", "12#00", "800#00", "123#0", "123#XYZW", "123#000102030405060708", "123#R9", "123##", "123##1" + "00".repeat(9), "3FFFFFFFF#00", "40000000#00"];
  for (const t of bad) {
    test(`rejects ${JSON.stringify(t)}`, () => {
      expect(() => parseFrame(t)).toThrow(FrameSyntaxError);
    });
  }
});

describe("validation", () => {
  test("valid frames", () => {
    expect(frameProblem(dataFrame(0x7ff, [1, 2, 3, 4, 5, 6, 7, 8]))).toBeNull();
    expect(frameProblem(remoteFrame(0x1, 8))).toBeNull();
    expect(frameProblem(fdFrame(0x1, new Uint8Array(64)))).toBeNull();
  });
  test("invalid frames say why", () => {
    expect(frameProblem({ canId: 0x800, len: 0, data: new Uint8Array(0), fd: false, fdFlags: 0 })).toMatch(/above 0x7FF/);
    expect(frameProblem({ canId: 1, len: 9, data: new Uint8Array(9), fd: false, fdFlags: 0 })).toMatch(/classic length 9/);
    expect(frameProblem({ canId: 1, len: 13, data: new Uint8Array(13), fd: true, fdFlags: 0 })).toMatch(/FD length 13/);
    expect(frameProblem({ canId: (1 | CAN_RTR_FLAG) >>> 0, len: 2, data: new Uint8Array(2), fd: false, fdFlags: 0 })).toMatch(/remote frame carries data/);
    expect(frameProblem({ canId: (1 | CAN_RTR_FLAG) >>> 0, len: 0, data: new Uint8Array(0), fd: true, fdFlags: 0 })).toMatch(/cannot be remote/);
    expect(frameProblem({ canId: 1, len: 2, data: new Uint8Array(1), fd: false, fdFlags: 0 })).toMatch(/does not match/);
  });
  test("arbitration id masks flag bits", () => {
    expect(arbitrationId(dataFrame(0x1fffffff, [], true))).toBe(0x1fffffff);
    expect(arbitrationId(remoteFrame(0x123, 1))).toBe(0x123);
  });
});
