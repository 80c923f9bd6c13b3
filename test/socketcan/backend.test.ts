/**
 * SocketCanBackend against a real kernel (vcan in ../shared/vmcan; `npm run test:socketcan`).
 * The other end is always an independent tool: cansend/cangen write frames the backend must
 * receive exactly, candump shows what the backend sent, iproute2 takes the link down and up.
 * Skipped, with a notice, on a kernel without AF_CAN or without vcan0.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { formatFrame, parseFrame } from "../../src/can/frame.ts";
import { TxLog } from "../helpers/tx-request.ts";
import { CAN_MANAGE_LINKS, Candump, cansend, HAVE_VCAN, IFACE, noteSkipped, recorder, run, TestBackends, until } from "./vcan.ts";

noteSkipped();

const backends = new TestBackends();
const backend = backends.create;
const dumps: Candump[] = [];

async function candump(iface = IFACE): Promise<Candump> {
  const d = await Candump.start(iface);
  dumps.push(d);
  return d;
}

afterEach(async () => {
  for (const d of dumps.splice(0)) d.stop();
  await backends.stopAll();
});

describe.skipIf(!HAVE_VCAN)(`SocketCAN on ${IFACE} (real kernel)`, () => {
  test("classic frames from cansend arrive exactly: standard, extended, RTR, empty", async () => {
    const { backend: b, stats } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    expect(b.up).toBe(true);
    expect(b.kind).toBe("socketcan");
    expect(b.fdCapable).toBe(false);
    const sent = ["123#DEADBEEF", "12345678#0011223344556677", "123#R", "1FFFFFFF#R8", "000#", "7FF#01", "00000001#FF"];
    for (const t of sent) cansend(IFACE, t);
    await until(() => rec.frames.length >= sent.length, () => `frames (have ${rec.frames.map(formatFrame)})`);
    expect(rec.frames.map(formatFrame)).toEqual(sent);
    expect(stats.socketcanRxFrames).toBe(sent.length);
    // serial_rx_frames_total mirrors SocketCAN ingress (the seed's documented promise).
    expect(stats.serialRxFrames).toBe(sent.length);
  });

  test("with fd, CAN FD frames arrive with their flags and classic frames stay classic", async () => {
    const { backend: b } = backend({ fd: true });
    const rec = recorder();
    await b.start(rec.listener);
    expect(b.fdCapable).toBe(true);
    const sent = [
      "321##1AABBCCDDEEFF0011",
      `12345678##2${"5A".repeat(64)}`,
      "456##0",
      "123#11",
      `7FF##3${"01".repeat(12)}`,
    ];
    for (const t of sent) cansend(IFACE, t);
    await until(() => rec.frames.length >= sent.length, "FD frames");
    expect(rec.frames.map(formatFrame)).toEqual(sent);
    expect(rec.frames.map((f) => f.fd)).toEqual([true, true, true, false, true]);
  });

  test("without fd, FD frames never reach the listener", async () => {
    const { backend: b, stats } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    cansend(IFACE, "321##1AABBCCDDEEFF0011");
    cansend(IFACE, "555#01");
    await until(() => rec.frames.length >= 1, "the classic marker");
    await Bun.sleep(100);
    expect(rec.frames.map(formatFrame)).toEqual(["555#01"]);
    expect(stats.errors.get("socketcan_read")).toBe(0);
  });

  test("frames sent through the backend appear in candump exactly, and are sent() once the kernel confirms them", async () => {
    const { backend: b, stats } = backend({ fd: true });
    const rec = recorder();
    await b.start(rec.listener);
    const dump = await candump();
    const sent = ["123#DEADBEEF", "1ABCDEF0#0102030405060708", "321#R", "00000042#R2", "000#", "456##1AABB", `7AB##2${"C3".repeat(64)}`];
    const log = new TxLog();
    for (const t of sent) expect(b.send(log.request(parseFrame(t)))).toBe("accepted");
    // vcan takes every frame synchronously, but sent() waits for the kernel's confirmation
    // (MSG_CONFIRM), which the receive path brings after send() returned.
    expect(log.with("sent")).toHaveLength(0);
    const got = await dump.waitFrames(sent.length);
    expect(got.map(formatFrame)).toEqual(sent);
    await until(() => log.with("sent").length === sent.length, () => `all confirmed (have ${log.with("sent").length})`);
    expect(log.reported.map((r) => formatFrame(r.frame))).toEqual(sent);
    expect(stats.socketcanTxFrames).toBe(sent.length);
    expect(stats.backendTxDropped).toBe(0);
    // The confirmations are not bus frames: only candump's start-up sentinel reached the listener.
    expect(rec.frames.map(formatFrame).filter((t) => t !== "7FE#5E")).toEqual([]);
  });

  test("an FD frame on a classic backend and error frames are refused (never written), the next frame still goes", async () => {
    const { backend: b, stats } = backend({ fd: true });
    const classic = backend();
    await b.start(recorder().listener);
    await classic.backend.start(recorder().listener);
    const dump = await candump();
    const log = new TxLog();
    const fdFrame = parseFrame("456##1AABB");
    expect(classic.backend.txRefusal(fdFrame)).toContain("CAN FD");
    expect(classic.backend.send(log.request(fdFrame))).toBe("unsupported");
    // CAN_ERR_FLAG (0x20000000): a client must never be able to put error frames on the bus.
    for (const id of [0x20000004, 0xa0000080]) {
      const err = { canId: id, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
      expect(b.txRefusal(err)).toContain("error frames");
      expect(b.send(log.request(err))).toBe("unsupported");
      expect(classic.backend.send(log.request(err))).toBe("unsupported");
    }
    expect(classic.backend.send(log.request(parseFrame("123#01")))).toBe("accepted");
    expect((await dump.waitFrames(1)).map(formatFrame)).toEqual(["123#01"]);
    await Bun.sleep(100);
    expect(dump.frames().map(formatFrame)).toEqual(["123#01"]);
    expect(log.requests.map((r) => r.calls)).toEqual([0, 0, 0, 0, 0, 1]);
    // The hub counts refusals; the backend does not count them a second time.
    expect(classic.stats.errors.get("backend_unsupported_frame")).toBe(0);
    expect(stats.backendTxDropped + classic.stats.backendTxDropped).toBe(0);
    expect(classic.stats.socketcanTxFrames).toBe(1);
  });

  test("10,000 frames at a steady rate arrive complete and in order", async () => {
    const { backend: b, stats } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    const total = 10_000;
    // Bursts of 5 every millisecond (nominal 5,000 frames/s); -D i makes data a little-endian counter.
    const gen = Bun.spawn(["cangen", IFACE, "-g", "1", "-c", "5", "-I", "5A5", "-L", "8", "-D", "i", "-p", "10", "-n", String(total)], {
      stdout: "ignore",
      stderr: "pipe",
    });
    expect(await gen.exited).toBe(0);
    await until(() => rec.frames.length >= total, () => `${total} frames (have ${rec.frames.length})`, 20_000);
    let outOfOrder = 0;
    for (let i = 0; i < total; i++) {
      const f = rec.frames[i]!;
      const seq = f.data[0]! | (f.data[1]! << 8);
      if (seq !== i || f.canId !== 0x5a5 || f.len !== 8) outOfOrder++;
    }
    expect(outOfOrder).toBe(0);
    expect(rec.frames.length).toBe(total);
    expect(stats.socketcanRxFrames).toBe(total);
  }, 30_000);

  test("stop() closes the socket: the kernel drops its receiver", async () => {
    // Every bound CAN_RAW socket is one "raw" line for its device in the kernel's receive lists.
    const receivers = () => readFileSync("/proc/net/can/rcvlist_all", "utf8").split("\n").filter((l) => l.includes(IFACE) && l.includes("raw")).length;
    const before = receivers();
    const { backend: b } = backend();
    await b.start(recorder().listener);
    expect(receivers()).toBe(before + 1);
    await b.stop();
    expect(b.up).toBe(false);
    expect(receivers()).toBe(before);
  });
});

describe.skipIf(!CAN_MANAGE_LINKS)(`SocketCAN link changes on a real kernel`, () => {
  const SPARE = "vcan7";
  afterAll(() => {
    Bun.spawnSync(["ip", "link", "del", SPARE], { stderr: "ignore" });
    Bun.spawnSync(["ip", "link", "set", IFACE, "up"], { stderr: "ignore" });
  });

  test("ip link down then up: backend goes down once, recovers by itself, frames flow again", async () => {
    const { backend: b, stats, events } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    run("ip", "link", "set", IFACE, "down");
    await until(() => !b.up, "backend down");
    expect(b.downReason).toContain(IFACE);
    expect(b.downReason).toContain("down");
    expect(stats.backendUp).toBe(false);
    const down = new TxLog();
    expect(b.send(down.request(parseFrame("123#01")))).toBe("down");
    expect(stats.errors.get("backend_down_tx")).toBe(0); // the hub counts it
    await Bun.sleep(300); // several reopen attempts while the link stays down
    run("ip", "link", "set", IFACE, "up");
    await until(() => b.up, "backend back up");
    expect(b.reconnects).toBe(1);
    expect(stats.backendUp).toBe(true);
    cansend(IFACE, "124#02");
    await until(() => rec.frames.length >= 1, "a frame after recovery");
    expect(rec.frames.map(formatFrame)).toEqual(["124#02"]);
    expect(rec.states.map((s) => s.up)).toEqual([true, false, true]);
    // The outage is logged once, however many reopen attempts it took.
    expect(events().filter((e) => e.msg === "socketcan_down")).toHaveLength(1);
  });

  test("-fd on a classic-only interface (MTU 16): warned once, refused FD writes counted, classic frames still go", async () => {
    const CLASSIC = "vcan6";
    run("ip", "link", "add", "dev", CLASSIC, "type", "vcan");
    run("ip", "link", "set", CLASSIC, "mtu", "16", "up");
    try {
      const { backend: b, stats, events } = backend({ iface: CLASSIC, fd: true });
      await b.start(recorder().listener);
      expect(events().filter((e) => e.msg === "socketcan_not_fd_capable")).toHaveLength(1);
      const dump = await candump(CLASSIC);
      const log = new TxLog();
      const fd = log.request(parseFrame("456##1AABB"));
      expect(b.send(fd)).toBe("accepted");
      expect(b.send(log.request(parseFrame("123#01")))).toBe("accepted");
      expect((await dump.waitFrames(1)).map(formatFrame)).toEqual(["123#01"]);
      // The kernel refuses the FD struct on an MTU-16 interface: a hard write error.
      expect(fd.outcome).toBe("write_failed");
      expect(stats.errors.get("socketcan_write")).toBe(1);
      expect(stats.backendTxDropped).toBe(0);
      expect(b.up).toBe(true); // one refused frame is not an outage
      await b.stop();
    } finally {
      Bun.spawnSync(["ip", "link", "del", CLASSIC], { stderr: "ignore" });
    }
  });

  test("missing interface: clear error naming it, retries, comes up when the interface appears", async () => {
    const { backend: b, events } = backend({ iface: SPARE });
    const rec = recorder();
    await b.start(rec.listener);
    expect(b.up).toBe(false);
    expect(b.downReason).toContain(`CAN interface ${SPARE} does not exist`);
    const down = events().filter((e) => e.msg === "socketcan_down");
    expect(down).toHaveLength(1);
    expect(down[0]!.level).toBe("error");
    expect(String(down[0]!.reason)).toContain(SPARE);
    await Bun.sleep(200);
    run("ip", "link", "add", "dev", SPARE, "type", "vcan");
    await Bun.sleep(200);
    expect(b.up).toBe(false); // exists but still down
    run("ip", "link", "set", SPARE, "up");
    await until(() => b.up, "backend up on the new interface");
    cansend(SPARE, "321#CAFE");
    await until(() => rec.frames.length >= 1, "a frame on the new interface");
    expect(formatFrame(rec.frames[0]!)).toBe("321#CAFE");
    // The interface vanishing altogether is an outage too.
    run("ip", "link", "del", SPARE);
    await until(() => !b.up, "backend down after the interface was deleted");
    expect(b.downReason).toContain(SPARE);
  });
});
