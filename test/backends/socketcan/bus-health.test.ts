/**
 * Bus health, pure parts: error frames read by class (linux/can/error.h layouts), the state
 * machine driven by them and by netlink facts (logged once per change), the RTM_GETLINK request
 * and the reply matching (on the real captured replies of test/fixtures/netlink/). The socket
 * part runs in the VM (test/socketcan/bus-health.test.ts).
 */
import { describe, expect, test } from "bun:test";
import type { CanFrame } from "../../../src/can/frame.ts";
import { BusHealthTracker as BusHealth } from "../../../src/backends/bus-health.ts";
import { isErrorFrame, readErrorFrame } from "../../../src/backends/socketcan/error-frames.ts";
import { bytesFromHex, LinkInfoError, parseLinkMessage } from "../../../src/backends/socketcan/link-info.ts";
import { getLinkRequest, linkReply } from "../../../src/backends/socketcan/netlink.ts";
import { memoryLogger } from "../../../src/ops/log.ts";

const ERR = 0x20000000;
function errFrame(classes: number, data: number[] = [0, 0, 0, 0, 0, 0, 0, 0]): CanFrame {
  return { canId: (ERR | classes) >>> 0, len: 8, data: Uint8Array.from(data), fd: false, fdFlags: 0 };
}

describe("error frames", () => {
  test("classes, controller details and counters", () => {
    expect(isErrorFrame(errFrame(0x4))).toBe(true);
    expect(isErrorFrame({ canId: 0x123, len: 0, data: new Uint8Array(), fd: false, fdFlags: 0 })).toBe(false);
    // CRTL with TX_WARNING, counters 100/5, CAN_ERR_CNT.
    const warn = readErrorFrame(errFrame(0x4 | 0x200, [0, 0x08, 0, 0, 0, 0, 100, 5]));
    expect(warn).toEqual({ classes: ["crtl_warning"], state: "error-warning", counters: { tx: 100, rx: 5 } });
    const passive = readErrorFrame(errFrame(0x4, [0, 0x20 | 0x04, 0, 0, 0, 0, 130, 0]));
    expect(passive.classes).toEqual(["crtl_warning", "crtl_passive"]);
    expect(passive.state).toBe("error-passive");
    expect(readErrorFrame(errFrame(0x4, [0, 0x01])).classes).toEqual(["crtl_overflow"]);
    expect(readErrorFrame(errFrame(0x4, [0, 0x01])).state).toBeNull();
    expect(readErrorFrame(errFrame(0x4, [0, 0x40])).state).toBe("error-active");
    const off = readErrorFrame(errFrame(0x40 | 0x20 | 0x8));
    expect(off.classes).toEqual(["prot", "ack", "busoff"]);
    expect(off.state).toBe("bus-off");
    expect(off.counters).toBeNull();
    expect(readErrorFrame(errFrame(0x100)).state).toBe("error-active");
    expect(readErrorFrame(errFrame(0x1 | 0x2 | 0x10 | 0x80)).classes).toEqual(["tx_timeout", "lostarb", "trx", "buserror"]);
    // A short frame: no counters, no out-of-range reads.
    expect(readErrorFrame({ canId: (ERR | 0x4) >>> 0, len: 2, data: Uint8Array.from([0, 0x10]), fd: false, fdFlags: 0 })).toEqual({ classes: ["crtl_passive"], state: "error-passive", counters: null });
  });
});

describe("state machine", () => {
  test("warning, passive, bus-off and back: counts, restarts, one log line per change", () => {
    const { log, lines } = memoryLogger("info");
    const h = new BusHealth(log);
    expect(h.snapshot().state).toBe("unknown");
    expect(h.snapshot().stateValue).toBe(-1);
    const warn = errFrame(0x4 | 0x200, [0, 0x08, 0, 0, 0, 0, 96, 0]);
    h.errorFrame(readErrorFrame(warn));
    h.errorFrame(readErrorFrame(warn)); // same state: counted, not logged again
    expect(h.state).toBe("error-warning");
    h.errorFrame(readErrorFrame(errFrame(0x4 | 0x200, [0, 0x20, 0, 0, 0, 0, 128, 0])));
    expect(h.state).toBe("error-passive");
    h.errorFrame(readErrorFrame(errFrame(0x40)));
    expect(h.state).toBe("bus-off");
    expect(h.snapshot().stateValue).toBe(3);
    h.errorFrame(readErrorFrame(errFrame(0x100)));
    const s = h.snapshot();
    expect(s.state).toBe("error-active");
    expect(s.restarts).toBe(1);
    expect(s.busOffs).toBe(1);
    expect(s.errorFrames).toBe(5);
    expect(s.errors.crtl_warning).toBe(2);
    expect(s.errors.crtl_passive).toBe(1);
    expect(s.errors.busoff).toBe(1);
    expect(s.errors.restarted).toBe(1);
    expect(s.errors.ack).toBe(0);
    expect(s.txErrors).toBe(128);
    expect(s.source).toBe("error-frame");
    const changes = lines.filter((l) => l.includes("can_bus_state"));
    expect(changes.length).toBe(4);
    expect(changes[0]).toContain("error-warning");
    expect(changes[2]).toContain("bus-off");
    expect(changes[3]).toContain("error-active");
  });

  test("netlink facts set the state and the counters; vcan (no CAN facts) changes nothing", async () => {
    const { log } = memoryLogger("info");
    const h = new BusHealth(log);
    const vcan = parseLinkMessage(bytesFromHex(await Bun.file(new URL("../../fixtures/netlink/vcan0.hex", import.meta.url)).text()));
    h.linkInfo(vcan.can);
    expect(h.state).toBe("unknown");
    const slcan = parseLinkMessage(bytesFromHex(await Bun.file(new URL("../../fixtures/netlink/slcan0-up-125k.hex", import.meta.url)).text()));
    h.linkInfo(slcan.can);
    expect(h.state).toBe("error-active");
    expect(h.snapshot().source).toBe("netlink");
    h.linkInfo({ ...slcan.can!, state: "bus-off", berr: { tx: 256, rx: 3 } });
    expect(h.snapshot()).toMatchObject({ state: "bus-off", txErrors: 256, rxErrors: 3, busOffs: 1 });
    h.linkInfo({ ...slcan.can!, state: "error-active", berr: { tx: 0, rx: 0 } });
    expect(h.snapshot()).toMatchObject({ state: "error-active", restarts: 1, txErrors: 0 });
  });
});

describe("netlink request and reply", () => {
  test("RTM_GETLINK by name, as iproute2 sends it", () => {
    const req = getLinkRequest("can0", 7);
    const v = new DataView(req.buffer);
    expect(req.length).toBe(16 + 16 + 12 + 8);
    expect(v.getUint32(0, true)).toBe(req.length);
    expect(v.getUint16(4, true)).toBe(18); // RTM_GETLINK
    expect(v.getUint16(6, true)).toBe(1); // NLM_F_REQUEST
    expect(v.getUint32(8, true)).toBe(7);
    expect(v.getInt32(20, true)).toBe(0); // ifi_index 0: by name
    expect(v.getUint16(32, true)).toBe(9); // IFLA_IFNAME attr: 4 + "can0\0"
    expect(v.getUint16(34, true)).toBe(3);
    expect(new TextDecoder().decode(req.subarray(36, 40))).toBe("can0");
    expect(req[40]).toBe(0);
    expect(v.getUint16(44, true)).toBe(8);
    expect(v.getUint16(46, true)).toBe(29); // IFLA_EXT_MASK
    expect(v.getUint32(48, true)).toBe(1); // RTEXT_FILTER_VF
    expect(() => getLinkRequest("", 1)).toThrow(RangeError);
    expect(() => getLinkRequest("a-very-long-name0", 1)).toThrow(RangeError);
  });

  test("the reply to our sequence number is found and parsed; others are skipped; errors say so", async () => {
    const reply = bytesFromHex(await Bun.file(new URL("../../fixtures/netlink/slcan0-up-125k.hex", import.meta.url)).text());
    const seq = new DataView(reply.buffer).getUint32(8, true);
    expect(linkReply(reply, seq)?.can?.bitTiming?.bitrate).toBe(125000);
    expect(linkReply(reply, seq + 1)).toBeNull();
    // An NLMSG_ERROR (ENODEV) answering our request.
    const err = new Uint8Array(36);
    const v = new DataView(err.buffer);
    v.setUint32(0, 36, true);
    v.setUint16(4, 2, true);
    v.setUint32(8, 5, true);
    v.setInt32(16, -19, true);
    expect(() => linkReply(err, 5)).toThrow("no such interface (ENODEV)");
    v.setInt32(16, -13, true);
    expect(() => linkReply(err, 5)).toThrow("EACCES");
    expect(() => linkReply(err.subarray(0, 20), 5)).toThrow(LinkInfoError);
  });
});
