/**
 * SerialBackend on real kernel ttys (socat pty pairs, end `a` for the backend, end `b` playing
 * the adapter): a hostile 20,000-frame RX stream delivered exactly, TX bytes exactly as spec §4,
 * a TX flood answered "busy" past the short queue and survived, refused frames never written,
 * hot-plug (the pair killed mid-traffic and recreated at the same path) recovered without a
 * restart, a device missing at start-up picked up when it appears, stop() releasing everything
 * (the fd closed only after its reader ended), and a frame listener that throws costing no
 * frames. The transmit contract itself is test/backends/contract.ts, run in contract.test.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { DEFAULT_SERIAL_TX_QUEUE_LIMIT, SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { type CanFrame, dataFrame, fdFrame, formatFrame, remoteFrame } from "../../../src/can/frame.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { encodeAmpioRx, encodeAmpioTx } from "../../../src/protocols/ampio-serial/codec.ts";
import { hostileStream, prng, randomChunks } from "../../fixtures/ampio-stream.ts";
import { TX_SPEC_EXAMPLE } from "../../fixtures/ampio-vectors.ts";
import { drainPeer, readBytes, waitFor, writeAll } from "../../helpers/pty.ts";
import { type RecordingListener, recordingListener, TxLog } from "../../helpers/tx-request.ts";
import { expectSameFrames, PtyScope } from "./harness.ts";

interface Harness {
  backend: SerialBackend;
  stats: Stats;
  lines: string[];
  frames: CanFrame[];
  states: { up: boolean; reason: string }[];
  listener: RecordingListener;
  tx: TxLog;
  /** Offers a frame (expiring in a minute) and returns the backend's answer. */
  send(frame: CanFrame): string;
  events(msg: string): Record<string, unknown>[];
}

const scope = new PtyScope();
const { pty, peer } = scope;
afterEach(() => scope.release());

async function startBackend(device: string, txQueueLimit?: number): Promise<Harness> {
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const backend = new SerialBackend({ path: device, baud: 115200, stats, log, txQueueLimit });
  const listener = recordingListener();
  const tx = new TxLog();
  const h: Harness = {
    backend,
    stats,
    lines,
    frames: listener.frames,
    states: listener.states,
    listener,
    tx,
    send: (frame) => backend.send(tx.request(frame)),
    events: (msg) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === msg),
  };
  await backend.start(listener);
  scope.defer(() => backend.stop());
  return h;
}

/** Nothing beyond what was expected reaches the adapter end. */
async function expectNothingMore(fd: number): Promise<void> {
  await Bun.sleep(30);
  expect(drainPeer(fd)).toBe(0);
}

describe("SerialBackend RX", () => {
  test("20,000 frames with garbage and corrupted frames in random chunks arrive exactly, in order", async () => {
    const pair = await pty("rx");
    const h = await startBackend(pair.deviceA);
    expect(h.backend.up).toBe(true);
    const adapter = peer(pair.deviceB);
    const stream = hostileStream({ seed: 20_000, frames: 19_999 });
    expect(stream.expected.length).toBe(20_000);
    const rnd = prng(77);
    for (const chunk of randomChunks(stream.bytes, rnd)) await writeAll(adapter, chunk);
    await waitFor(() => h.frames.length >= stream.expected.length, 30_000, "all frames at the backend");
    await Bun.sleep(50); // nothing extra may trail in
    expectSameFrames(h.frames, stream.expected);
    expect(h.stats.serialRxFrames).toBe(20_000);
    expect(h.stats.malformedFrames).toBe(stream.rejects);
    expect(h.stats.errors.get("serial_read")).toBe(0);
    expect(h.states).toEqual([{ up: true, reason: "" }]);
  }, 60_000);
});

describe("SerialBackend RX with a faulty listener", () => {
  test("a frame listener that throws is logged, and the frames behind it in the same read still arrive", async () => {
    const pair = await pty("rx-throw");
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const backend = new SerialBackend({ path: pair.deviceA, baud: 115200, stats, log });
    const frames: CanFrame[] = [];
    await backend.start(
      recordingListener((f) => {
        frames.push(f);
        if (frames.length === 1) throw new Error("listener fault");
      }),
    );
    scope.defer(() => backend.stop());
    const adapter = peer(pair.deviceB);
    // One write, no more bytes after it: a decoder that stopped at the throw would keep the
    // last two frames until a next chunk that never comes.
    await writeAll(adapter, Uint8Array.from([...encodeAmpioRx(1, [1]), ...encodeAmpioRx(2, [2]), ...encodeAmpioRx(3, [3])]));
    await waitFor(() => frames.length >= 3, 5000, "three frames at the listener");
    expect(frames.map(formatFrame)).toEqual(["00000001#01", "00000002#02", "00000003#03"]);
    expect(stats.serialRxFrames).toBe(3);
    expect(lines.some((l) => l.includes("serial_rx_dispatch_failed") && l.includes("listener fault"))).toBe(true);
    expect(backend.up).toBe(true);
  });
});

describe("SerialBackend TX", () => {
  test("frames appear on the adapter end as the exact bytes of spec §4, in order, each reported sent once", async () => {
    const pair = await pty("tx");
    const h = await startBackend(pair.deviceA);
    const adapter = peer(pair.deviceB);
    const frames = [dataFrame(0x123, [0xaa, 0xbb, 0xcc])];
    for (let dlc = 0; dlc <= 8; dlc++) frames.push(dataFrame(0x1000000 + dlc, Array.from({ length: dlc }, (_, i) => 0x2d + i), true));
    for (const f of frames) expect(h.send(f)).toBe("accepted");
    const want = frames.map((f) => [...encodeAmpioTx(f)!]).flat();
    const got = await readBytes(adapter, want.length, 2000);
    expect([...got.subarray(0, TX_SPEC_EXAMPLE.length)]).toEqual([...TX_SPEC_EXAMPLE]);
    expect([...got]).toEqual(want);
    await expectNothingMore(adapter);
    expect(h.tx.with("sent")).toHaveLength(frames.length);
    expect(h.tx.overReported()).toEqual([]);
    expect(h.stats.serialTxFrames).toBe(frames.length);
    expect(h.backend.txPending).toBe(0);
  });

  test("RTR, CAN FD and error frames are refused (\"unsupported\"), not sent; the hub counts them, not the backend", async () => {
    const pair = await pty("txref");
    const h = await startBackend(pair.deviceA);
    const adapter = peer(pair.deviceB);
    const refused = [remoteFrame(0x123, 2), fdFrame(0x123, new Uint8Array(16)), { canId: 0x20000004, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 }];
    for (const f of refused) {
      expect(h.backend.txRefusal(f)).not.toBeNull();
      expect(h.send(f)).toBe("unsupported");
    }
    expect(h.backend.txRefusal(refused[0]!)).toContain("RTR");
    expect(h.backend.txRefusal(refused[2]!)).toContain("error frames");
    expect(h.send(dataFrame(0x7, [1]))).toBe("accepted");
    const want = [...encodeAmpioTx(dataFrame(0x7, [1]))!];
    expect([...(await readBytes(adapter, want.length, 2000))]).toEqual(want);
    await expectNothingMore(adapter);
    expect(h.tx.requests.slice(0, 3).map((r) => r.calls)).toEqual([0, 0, 0]);
    expect(h.stats.errors.get("backend_unsupported_frame")).toBe(0);
    expect(h.stats.backendTxDropped).toBe(0);
  });

  test("a burst beyond the short TX queue is answered \"busy\", the accepted frames go out intact, RX keeps working", async () => {
    const pair = await pty("flood");
    const h = await startBackend(pair.deviceA);
    const adapter = peer(pair.deviceB);
    const flood: CanFrame[] = [];
    for (let i = 0; i < 10_000; i++) flood.push(dataFrame(0x100000 + i, [i & 0xff, (i >> 8) & 0xff, 1, 2, 3, 4, 5, 6], true));
    const answers = flood.map((f) => h.send(f)); // one tick: the queue takes its limit, the rest is busy
    expect(answers.filter((a) => a === "accepted")).toHaveLength(DEFAULT_SERIAL_TX_QUEUE_LIMIT);
    expect(answers.slice(DEFAULT_SERIAL_TX_QUEUE_LIMIT).every((a) => a === "busy")).toBe(true);
    const want = flood.slice(0, DEFAULT_SERIAL_TX_QUEUE_LIMIT).map((f) => [...encodeAmpioTx(f)!]).flat();
    const got = await readBytes(adapter, want.length, 10_000);
    expect([...got]).toEqual(want);
    await expectNothingMore(adapter);
    await waitFor(() => h.tx.with("sent").length === DEFAULT_SERIAL_TX_QUEUE_LIMIT, 2000, "sent reports");
    expect(h.stats.serialTxFrames).toBe(DEFAULT_SERIAL_TX_QUEUE_LIMIT);
    expect(h.listener.txReadyCalls).toBe(1);
    expect(h.stats.errors.get("serial_tx_overflow")).toBe(0);
    expect(h.stats.backendTxDropped).toBe(0);
    expect(h.backend.up).toBe(true);
    await writeAll(adapter, encodeAmpioRx(0x42, [9]));
    await waitFor(() => h.frames.length === 1, 2000, "RX after the flood");
    expect(formatFrame(h.frames[0]!)).toBe("00000042#09");
  }, 20_000);

  test("a sustained flood into a tty nobody reads never blocks: EAGAIN is waited out on a timer, busy until there is room", async () => {
    const pair = await pty("eagain");
    const h = await startBackend(pair.deviceA);
    const adapter = peer(pair.deviceB);
    let offered = 0;
    let busy = 0;
    // Nobody reads the adapter end: the pty fills and writes hit EAGAIN. The loop keeps running.
    for (let round = 0; round < 200 && h.backend.txRetries === 0; round++) {
      for (let i = 0; i < 64; i++) if (h.send(dataFrame(0x200000 + offered++, [1, 2, 3, 4, 5, 6, 7, 8], true)) === "busy") busy++;
      await Bun.sleep(1);
    }
    for (let i = 0; i < 64; i++) if (h.send(dataFrame(0x200000 + offered++, [1, 2, 3, 4, 5, 6, 7, 8], true)) === "busy") busy++;
    const accepted = offered - busy;
    expect(h.backend.txRetries).toBeGreaterThan(0);
    expect(busy).toBeGreaterThan(0);
    expect(h.tx.with("pending").length).toBeGreaterThan(0);
    expect(h.backend.txPending).toBeLessThanOrEqual(DEFAULT_SERIAL_TX_QUEUE_LIMIT);
    expect(h.stats.errors.get("serial_write")).toBe(0);
    expect(h.backend.up).toBe(true);
    // Once the adapter end reads, every accepted frame arrives and is reported sent.
    const deadline = Date.now() + 10_000;
    let received = 0;
    while (received < accepted * 18 && Date.now() < deadline) {
      received += drainPeer(adapter);
      await Bun.sleep(2);
    }
    await waitFor(() => h.tx.with("sent").length === accepted, 5000, `sent ${h.tx.with("sent").length}/${accepted}`);
    expect(received).toBe(accepted * 18);
    expect(h.stats.serialTxFrames).toBe(accepted);
    await waitFor(() => h.listener.txReadyCalls > 0, 2000, "txReady after busy");
  }, 30_000);
});

describe("SerialBackend hot-plug", () => {
  test("the device vanishes mid-traffic and comes back at the same path: recovers by itself", async () => {
    const pair = await pty("hotplug");
    const h = await startBackend(pair.deviceA);
    let adapter = peer(pair.deviceB);
    for (let i = 0; i < 50; i++) await writeAll(adapter, encodeAmpioRx(0x1000 + i, [i]));
    await waitFor(() => h.frames.length === 50, 5000, "frames before the outage");

    // Unplug while the adapter is still sending.
    const sending = (async () => {
      for (let i = 0; i < 1000 && pair.alive; i++) {
        try {
          await writeAll(adapter, encodeAmpioRx(0x2000 + i, [1, 2]), 200);
        } catch {
          return;
        }
        await Bun.sleep(1);
      }
    })();
    await Bun.sleep(20);
    await pair.kill();
    await sending;
    await waitFor(() => !h.backend.up, 5000, "backend down");
    expect(h.stats.backendUp).toBe(false);
    expect(h.backend.downReason).toMatch(/device vanished/);

    // Client TX during the outage: answered "down" (the hub counts it), never thrown.
    expect(h.send(dataFrame(0x1, [1]))).toBe("down");
    expect(h.send(dataFrame(0x2, [2]))).toBe("down");
    expect(h.stats.backendTxDropped).toBe(0);
    expect(h.stats.errors.get("backend_down_tx")).toBe(0);

    // Several reopen attempts fail (ENOENT) while the pair is gone: retried, logged at debug only.
    await Bun.sleep(300);
    expect(h.events("serial_open_retry").length).toBeGreaterThanOrEqual(2);
    expect(h.backend.downReason).toMatch(/^device vanished: .*; reopening: serial device .* does not exist/);
    await pair.recreate();
    await waitFor(() => h.backend.up, 5000, "backend up again");
    adapter = peer(pair.deviceB);
    const before = h.frames.length;
    await writeAll(adapter, encodeAmpioRx(0x3000, [7, 7]));
    await waitFor(() => h.frames.length === before + 1, 5000, "frame after recovery");
    expect(formatFrame(h.frames[before]!)).toBe("00003000#0707");
    expect(h.send(dataFrame(0x123, [0xaa, 0xbb, 0xcc]))).toBe("accepted");
    expect([...(await readBytes(adapter, TX_SPEC_EXAMPLE.length, 1000))]).toEqual([...TX_SPEC_EXAMPLE]);

    // The outage is visible once in logs and states, however many retries it took.
    expect(h.events("serial_down")).toHaveLength(1);
    expect(h.events("serial_open_failed").length).toBeLessThanOrEqual(1);
    expect(h.events("serial_up")).toHaveLength(2);
    expect(h.states.map((s) => s.up)).toEqual([true, false, true]);
    expect(h.states[1]!.reason).toMatch(/device vanished/);
    expect(h.stats.backendUp).toBe(true);
    expect(h.backend.reconnects).toBe(1);
  }, 30_000);

  test("unplugged during a TX flood: every accepted frame is either sent or lost(\"backend_down\"), nothing throws, TX resumes after replug", async () => {
    const pair = await pty("txplug");
    const h = await startBackend(pair.deviceA);
    peer(pair.deviceB); // opened, never read: the tty fills up and writes wait on EAGAIN
    let sent = 0;
    for (let round = 0; round < 200 && h.backend.txRetries === 0; round++) {
      for (let i = 0; i < 32; i++) h.send(dataFrame(0x300000 + sent++, [1, 2, 3, 4, 5, 6, 7, 8], true));
      await Bun.sleep(1);
    }
    expect(h.backend.txRetries).toBeGreaterThan(0);
    for (let i = 0; i < 32; i++) h.send(dataFrame(0x300000 + sent++, [1, 2, 3, 4, 5, 6, 7, 8], true));
    const accepted = h.tx.requests.length - h.tx.with("pending").length + h.backend.txPending;
    expect(h.backend.txPending).toBeGreaterThan(0);
    await pair.kill();
    await waitFor(() => !h.backend.up, 5000, "backend down");
    // Every accepted frame is written or lost with the device — as backend_down, or write_failed
    // when the hang-up surfaced as a failed write of the batch on the line; busy ones were never accepted.
    expect(h.backend.txPending).toBe(0);
    expect(h.tx.with("sent").length + h.tx.with("backend_down").length + h.tx.with("write_failed").length).toBe(accepted);
    expect(h.tx.with("backend_down").length).toBeGreaterThan(0);
    expect(h.stats.serialTxFrames).toBe(h.tx.with("sent").length);
    expect(h.tx.overReported()).toEqual([]);
    expect(h.stats.backendTxDropped).toBe(0);
    await pair.recreate();
    await waitFor(() => h.backend.up, 5000, "backend up again");
    const adapter = peer(pair.deviceB);
    expect(h.send(dataFrame(0x123, [0xaa, 0xbb, 0xcc]))).toBe("accepted");
    expect([...(await readBytes(adapter, TX_SPEC_EXAMPLE.length, 2000))]).toEqual([...TX_SPEC_EXAMPLE]);
  }, 20_000);

  test("a device missing at start-up: start() resolves, logs clearly, and picks the device up when it appears", async () => {
    const pair = await pty("late", false);
    const h = await startBackend(pair.deviceA);
    expect(h.backend.up).toBe(false);
    expect(h.backend.downReason).toMatch(/does not exist/);
    const failed = h.events("serial_open_failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]!.level).toBe("error");
    expect(String(failed[0]!.error)).toContain(pair.deviceA);
    expect(h.send(dataFrame(0x1, [1]))).toBe("down");

    await Bun.sleep(150); // a few retries, logged once
    expect(h.events("serial_open_failed")).toHaveLength(1);
    await pair.recreate();
    await waitFor(() => h.backend.up, 5000, "backend up");
    const adapter = peer(pair.deviceB);
    await writeAll(adapter, encodeAmpioRx(0x55, []));
    await waitFor(() => h.frames.length === 1, 5000, "first frame");
    expect(formatFrame(h.frames[0]!)).toBe("00000055#");
    expect(h.states).toEqual([{ up: true, reason: "" }]);
  }, 20_000);

  test("stop() during traffic releases the device and ends the read loop", async () => {
    const pair = await pty("stop");
    const h = await startBackend(pair.deviceA);
    const adapter = peer(pair.deviceB);
    await writeAll(adapter, encodeAmpioRx(0x1, [1]));
    await waitFor(() => h.frames.length === 1, 2000, "a frame");
    await h.backend.stop();
    expect(h.backend.up).toBe(false);
    expect(h.stats.backendUp).toBe(false);
    await writeAll(adapter, encodeAmpioRx(0x2, [2]));
    await Bun.sleep(50);
    expect(h.frames).toHaveLength(1);
    // The tty is free again: another backend can take it.
    const h2 = await startBackend(pair.deviceA);
    expect(h2.backend.up).toBe(true);
    expect(h.events("serial_down")).toHaveLength(0);
  });

  test("the fd is closed only after its read loop ended, so a reopened device on the same fd number gets every byte", async () => {
    // Closing first would leave the old stream's read in flight on a number the next open()
    // reuses (the replugged adapter, or another backend here): bytes read by a dead loop are lost.
    const first = await pty("reuse-1");
    const second = await pty("reuse-2");
    const a = await startBackend(first.deviceA);
    const fdOf = (h: Harness) => h.events("serial_fd_closed").map((e) => e.fd);
    await a.backend.stop();
    const order = a.lines.map((l) => (JSON.parse(l) as { msg: string }).msg).filter((m) => m === "serial_reader_done" || m === "serial_fd_closed");
    expect(order).toEqual(["serial_reader_done", "serial_fd_closed"]);
    // The next open takes the lowest free number, the one just closed.
    const b = await startBackend(second.deviceA);
    const adapter = peer(second.deviceB);
    const frames = Array.from({ length: 200 }, (_, i) => encodeAmpioRx(0x4000 + i, [i & 0xff]));
    for (const f of frames) await writeAll(adapter, f);
    await waitFor(() => b.frames.length === frames.length, 5000, `all frames at the new backend (have ${b.frames.length})`);
    expect(fdOf(a)).toHaveLength(1);
    await b.backend.stop();
    expect(fdOf(b)).toEqual(fdOf(a));
  });

  test("after a hang-up the device is closed after its reader ended, then reopened", async () => {
    const pair = await pty("hangup-order");
    const h = await startBackend(pair.deviceA);
    await pair.kill();
    await waitFor(() => h.events("serial_open_failed").length + h.events("serial_open_retry").length > 0, 5000, "a reopen attempt");
    const msgs = h.lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs.indexOf("serial_reader_done")).toBeGreaterThan(-1);
    expect(msgs.indexOf("serial_reader_done")).toBeLessThan(msgs.indexOf("serial_fd_closed"));
    expect(msgs.indexOf("serial_down")).toBeLessThan(msgs.indexOf("serial_fd_closed"));
    // No reopen attempt before the close: the next open logs come after it.
    const firstRetry = msgs.findIndex((m, i) => i > msgs.indexOf("serial_down") && (m === "serial_open_failed" || m === "serial_open_retry" || m === "serial_up"));
    expect(firstRetry).toBeGreaterThan(msgs.indexOf("serial_fd_closed"));
  });
});
