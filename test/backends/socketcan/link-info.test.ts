/**
 * The netlink link-info parser (src/backends/socketcan/link-info.ts) on real RTM_NEWLINK replies
 * captured in the SocketCAN VM (test/fixtures/netlink/README.md says how and from what), checked
 * against `ip -details -statistics link show` of the same moment (the .ip.txt files). Error
 * counters, error-passive/bus-off and restarts never occur on slcan, so those are read from the
 * real message patched at the attribute's own offset, and from one message this test builds.
 */
import { describe, expect, test } from "bun:test";
import { bytesFromHex, type LinkInfo, LinkInfoError, parseLinkMessage } from "../../../src/backends/socketcan/link-info.ts";

const FIXTURES = new URL("../../fixtures/netlink/", import.meta.url);
async function fixture(name: string): Promise<Uint8Array> {
  return bytesFromHex(await Bun.file(new URL(`${name}.hex`, FIXTURES)).text());
}
async function ipText(name: string): Promise<string> {
  return Bun.file(new URL(`${name}.ip.txt`, FIXTURES)).text();
}

/** Offset of the payload of the first attribute `type` inside the nested IFLA_INFO_DATA of a fixture. */
function canAttrOffset(bytes: Uint8Array, type: number): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const walk = (from: number, to: number, want: number): number => {
    for (let p = from; p + 4 <= to; ) {
      const len = v.getUint16(p, true);
      if ((v.getUint16(p + 2, true) & 0x3fff) === want) return p;
      p += (len + 3) & ~3;
    }
    return -1;
  };
  const linkinfo = walk(32, v.getUint32(0, true), 18);
  const data = walk(linkinfo + 4, linkinfo + v.getUint16(linkinfo, true), 2);
  const attr = walk(data + 4, data + v.getUint16(data, true), type);
  if (attr < 0) throw new Error(`no CAN attribute ${type}`);
  return attr + 4;
}

describe("netlink link info (real replies from the VM)", () => {
  test("vcan0 is a link, not a CAN device: kind vcan, no CAN facts", async () => {
    const info = parseLinkMessage(await fixture("vcan0"));
    expect(info).toEqual({ ifindex: 2, name: "vcan0", flags: info.flags, kind: "vcan", can: null });
    expect(info.flags & 0x1).toBe(1); // IFF_UP
    expect(await ipText("vcan0")).toContain("vcan0: <NOARP,UP,LOWER_UP>");
  });

  test("slcan0 down: state stopped, no bit rate yet, its fixed bit-rate table, zero statistics", async () => {
    const info = parseLinkMessage(await fixture("slcan0-down"));
    expect([info.name, info.kind, info.flags & 0x1]).toEqual(["slcan0", "can", 0]);
    expect(info.can!.state).toBe("stopped");
    expect(info.can!.bitTiming).toBeNull();
    expect(info.can!.bitrateConst).toEqual([10000, 20000, 50000, 100000, 125000, 250000, 500000, 800000, 1000000]);
    expect(info.can!.stats).toEqual({ busError: 0, errorWarning: 0, errorPassive: 0, busOff: 0, arbitrationLost: 0, restarts: 0 });
    expect(info.can!.berr).toBeNull();
    expect(await ipText("slcan0-down")).toContain("can state STOPPED");
  });

  test("slcan0 up at 125 kbit/s: error-active, the bit rate the interface runs at, as ip shows", async () => {
    const info = parseLinkMessage(await fixture("slcan0-up-125k"));
    const text = await ipText("slcan0-up-125k");
    expect(text).toContain("can state ERROR-ACTIVE restart-ms 0");
    expect(text).toContain("bitrate 125000");
    expect(info.can!.state).toBe("error-active");
    expect(info.can!.bitTiming!.bitrate).toBe(125_000);
    expect(info.can!.restartMs).toBe(0);
    expect(info.can!.clockHz).toBe(0);
    // Up without a netlink bit rate (slcand set the adapter with S6): no bit timing to trust.
    expect(parseLinkMessage(await fixture("slcan0-up-500k")).can!.bitTiming).toBeNull();
    expect(await ipText("slcan0-up-500k")).toContain("bitrate 0");
  });

  test("state and restart-ms are read from their own fields (the real message, patched)", async () => {
    const bytes = await fixture("slcan0-up-125k");
    const v = new DataView(bytes.buffer);
    v.setUint32(canAttrOffset(bytes, 4), 3, true); // IFLA_CAN_STATE = CAN_STATE_BUS_OFF
    v.setUint32(canAttrOffset(bytes, 6), 100, true); // IFLA_CAN_RESTART_MS
    const info = parseLinkMessage(bytes);
    expect(info.can!.state).toBe("bus-off");
    expect(info.can!.restartMs).toBe(100);
    v.setUint32(canAttrOffset(bytes, 4), 2, true);
    expect(parseLinkMessage(bytes).can!.state).toBe("error-passive");
    v.setUint32(canAttrOffset(bytes, 4), 99, true);
    expect(parseLinkMessage(bytes).can!.state).toBe("unknown");
  });

  test("error counters, device statistics and a full bit timing (a message built here: slcan has none of them)", () => {
    const attr = (type: number, payload: Uint8Array): Uint8Array => {
      const len = 4 + payload.length;
      const out = new Uint8Array((len + 3) & ~3);
      new DataView(out.buffer).setUint16(0, len, true);
      new DataView(out.buffer).setUint16(2, type, true);
      out.set(payload, 4);
      return out;
    };
    const u32s = (...n: number[]) => new Uint8Array(Uint32Array.from(n).buffer);
    const cat = (...parts: Uint8Array[]) => {
      const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let p = 0;
      for (const x of parts) (out.set(x, p), (p += x.length));
      return out;
    };
    const data = cat(
      attr(1, u32s(500000, 875, 125, 6, 7, 2, 1, 1)),
      attr(3, u32s(8_000_000)),
      attr(4, u32s(1)),
      attr(8, new Uint8Array(Uint16Array.from([97, 5]).buffer)),
    );
    const linkinfo = cat(attr(1, new TextEncoder().encode("can\0")), attr(0x8000 | 2, data), attr(3, u32s(4, 3, 1, 1, 9, 1)));
    const body = cat(attr(3, new TextEncoder().encode("can0\0")), attr(0x8000 | 18, linkinfo));
    const msg = new Uint8Array(32 + body.length);
    const v = new DataView(msg.buffer);
    v.setUint32(0, msg.length, true);
    v.setUint16(4, 16, true);
    v.setInt32(20, 7, true);
    v.setUint32(24, 0x10041, true);
    msg.set(body, 32);
    const info: LinkInfo = parseLinkMessage(msg);
    expect(info.name).toBe("can0");
    expect(info.ifindex).toBe(7);
    expect(info.can).toEqual({
      state: "error-warning",
      bitTiming: { bitrate: 500000, samplePoint: 875, tq: 125, propSeg: 6, phaseSeg1: 7, phaseSeg2: 2, sjw: 1, brp: 1 },
      dataBitTiming: null,
      clockHz: 8_000_000,
      restartMs: null,
      berr: { tx: 97, rx: 5 },
      ctrlMode: null,
      bitrateConst: [],
      stats: { busError: 4, errorWarning: 3, errorPassive: 1, busOff: 1, arbitrationLost: 9, restarts: 1 },
    });
  });

  test("truncated, foreign and error messages are a LinkInfoError, never a crash", async () => {
    const real = await fixture("slcan0-up-125k");
    for (const cut of [0, 8, 20, 40, real.length - 3]) expect(() => parseLinkMessage(real.subarray(0, cut))).toThrow(LinkInfoError);
    const foreign = real.slice();
    new DataView(foreign.buffer).setUint16(4, 20, true); // RTM_NEWADDR
    expect(() => parseLinkMessage(foreign)).toThrow(/not RTM_NEWLINK/);
    const err = new Uint8Array(36);
    const ev = new DataView(err.buffer);
    ev.setUint32(0, 36, true);
    ev.setUint16(4, 2, true); // NLMSG_ERROR
    ev.setInt32(16, -19, true); // -ENODEV
    expect(() => parseLinkMessage(err)).toThrow(/errno 19/);
    const broken = real.slice();
    new DataView(broken.buffer).setUint16(32, 0xfff0, true); // first attribute claims more than there is
    expect(() => parseLinkMessage(broken)).toThrow(LinkInfoError);
    expect(() => bytesFromHex("abc")).toThrow(LinkInfoError);
  });
});
