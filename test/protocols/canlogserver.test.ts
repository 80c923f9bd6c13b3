/**
 * canlogserver stream (docs/protocols.md §9): the shared conformance suite over the log lines the
 * session writes (decoded with the candump log reader, as a consumer would), named line vectors,
 * and the read-only session.
 */
import { describe, expect, test } from "bun:test";
import { CandumpLogReader } from "../../src/can/candump-log.ts";
import { CAN_ERR_FLAG, type CanFrame, CANFD_BRS, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import { CANLOGSERVER_DEFAULT_PORT, CANLOGSERVER_NAME, encodeCanlogserverLines, open } from "../../src/protocols/canlogserver/protocol.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import { Rng, runCodecConformance } from "./conformance.ts";
import { allAt } from "../helpers/stamped.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const NOW_US = 1_700_000_000_123_456; // arrival time, µs

function genFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  const k = rng.int(8);
  if (k === 0) return remoteFrame(id, rng.int(9), ext);
  if (k === 1) return fdFrame(id, rng.bytes(rng.pick([0, 3, 8, 12, 20, 64])), rng.int(4), ext);
  if (k === 2) return { canId: (CAN_ERR_FLAG | rng.int(0x400)) >>> 0, len: 8, data: rng.bytes(8), fd: false, fdFlags: 0 };
  return dataFrame(id, rng.bytes(rng.int(9)), ext);
}

runCodecConformance({
  name: "canlogserver lines",
  encode: (frames) => encodeCanlogserverLines(allAt(NOW_US, frames), frames.length, "can0", true),
  makeDecoder(onFrame) {
    let errors = 0;
    const r = new CandumpLogReader({ record: (rec) => onFrame(rec.frame), error: () => errors++ });
    return { push: (c) => (r.push(c), null), buffered: () => r.buffered, rejected: () => errors };
  },
  genFrame,
  maxBuffered: 512,
  // a line that starts like a record but has no frame
  malformed: new TextEncoder().encode("(1.000000) can0\n"),
});

function recorder() {
  const rec = { ready: 0, replies: 0, rejected: [] as string[], fails: 0, frames: 0 };
  const events: WireSessionEvents = {
    frame: () => rec.frames++,
    reply: () => rec.replies++,
    ready: () => rec.ready++,
    rejected: (r) => rec.rejected.push(r),
    fail: () => rec.fails++,
  };
  return { events, rec };
}

describe("canlogserver session", () => {
  test("identity", () => {
    expect(CANLOGSERVER_NAME).toBe("canlogserver");
    expect(CANLOGSERVER_DEFAULT_PORT).toBe(28700);
  });

  test("ready on accept, says nothing itself", () => {
    const { events, rec } = recorder();
    open(events, { fd: false, busName: "can0" }).start();
    expect(rec).toMatchObject({ ready: 1, replies: 0 });
  });

  test("one line per frame: (sec.usec) IFACE FRAME\\n, interface unpadded, same time per batch", () => {
    const { events } = recorder();
    const s = open(events, { fd: true, busName: "can0", iface: "vcan0" });
    const out = text(s.encode(allAt(NOW_US, [dataFrame(0x123, [0xde, 0xad]), dataFrame(0x1abcde0f, [], true), remoteFrame(0x7ff, 2), fdFrame(0x10, [1, 2, 3], CANFD_BRS)]), 4));
    expect(out).toBe(
      "(1700000000.123456) vcan0 123#DEAD\n" +
        "(1700000000.123456) vcan0 1ABCDE0F#\n" +
        "(1700000000.123456) vcan0 7FF#R2\n" +
        "(1700000000.123456) vcan0 010##5010203\n",
    );
    // SavvyCAN's CANLOGSERVER client: exactly three space-separated tokens per line
    for (const line of out.trimEnd().split("\n")) expect(line.split(" ").length).toBe(3);
  });

  test("interface name defaults to busName and is made safe", () => {
    const { events } = recorder();
    expect(text(open(events, { fd: false, busName: "can1" }).encode(allAt(0, [dataFrame(1, [])]), 1))).toBe("(0.000000) can1 001#\n");
    expect(text(open(events, { fd: false, busName: "x", iface: "my bus" }).encode(allAt(0, [dataFrame(1, [])]), 1))).toBe("(0.000000) my_bus 001#\n");
  });

  test("FD frames only with fd", () => {
    const { events } = recorder();
    const s = open(events, { fd: false, busName: "can0" });
    expect(s.accepts(fdFrame(1, [1]))).toBe(false);
    expect(s.accepts(dataFrame(1, [1]))).toBe(true);
    expect(s.encode(allAt(0, [fdFrame(1, [1])]), 1).length).toBe(0);
  });

  test("read-only: client bytes are ignored, counted, reported as rejected, never fatal", () => {
    const { events, rec } = recorder();
    const s = open(events, { fd: false, busName: "can0" });
    s.start();
    s.receive(new TextEncoder().encode("(1.000000) can0 123#00\n"));
    s.receive(new Uint8Array(0));
    s.receive(new Uint8Array(100));
    expect(rec.frames).toBe(0);
    expect(rec.fails).toBe(0);
    expect(rec.rejected.length).toBe(2);
    expect(s.ignoredBytes).toBe(123);
  });
});
