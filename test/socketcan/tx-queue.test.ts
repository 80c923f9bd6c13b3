/**
 * The transmit queue's behaviour when the device queue is full, and its transmit confirmations.
 * Host unit tests (no kernel): a real vcan never reports a full queue (its transmit is
 * synchronous) and always confirms, and an MCP2515 is not available to tests, so the device write
 * is the one scripted part here — a function returning the errno a real send() would — and the
 * kernel's MSG_CONFIRM copies are handed to confirm() by the test (or withheld: a bus that never
 * acknowledges). The timers and everything else are real. Outcomes are recorded with TxRequests
 * (helpers/tx-request); the real-kernel side is tx-confirm.test.ts.
 */
import { describe, expect, spyOn, test } from "bun:test";
import { decodeCanStruct } from "../../src/backends/socketcan/can-struct.ts";
import { ERRNO } from "../../src/backends/socketcan/ffi.ts";
import { TxQueue, type TxQueueOptions } from "../../src/backends/socketcan/tx-queue.ts";
import { dataFrame, fdFrame, formatFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";
import { TxScheduler } from "../../src/hub/tx-scheduler.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { TxLog } from "../helpers/tx-request.ts";

/** A device that refuses writes while `full` is true and records what it accepted. */
function device() {
  const accepted: string[] = [];
  const failures: number[] = [];
  const d = {
    full: false,
    /** While full: how many more frames it still takes before refusing again (a draining queue). */
    credit: 0,
    nextError: 0,
    accepted,
    failures,
    ready: 0,
    write(struct: Uint8Array, length: number): number {
      if (d.full) {
        if (d.credit === 0) return ERRNO.ENOBUFS;
        d.credit--;
      }
      if (d.nextError !== 0) {
        const e = d.nextError;
        d.nextError = 0;
        return e;
      }
      accepted.push(formatFrame(decodeCanStruct(struct, 0, length)!));
      return 0;
    },
  };
  return d;
}

function queue(dev: ReturnType<typeof device>, limit: number, stats = new Stats(), extra: Partial<TxQueueOptions> = {}): TxQueue {
  return new TxQueue({
    write: dev.write,
    failed: (e) => dev.failures.push(e),
    ready: () => dev.ready++,
    limit,
    stats,
    log: memoryLogger("debug").log,
    ...extra,
  });
}

const frame = (i: number): CanFrame => dataFrame(0x100 + i, [i & 0xff]);

async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

describe("TxQueue", () => {
  test("writes at once while the device takes frames, reporting each sent before send() returns", () => {
    const stats = new Stats();
    const dev = device();
    const q = queue(dev, 4, stats);
    const log = new TxLog();
    const a = log.request(frame(1));
    expect(q.send(a)).toBe("accepted");
    expect(a.outcome).toBe("sent");
    expect(q.send(log.request(frame(2)))).toBe("accepted");
    expect(dev.accepted).toEqual(["101#01", "102#02"]);
    expect(log.with("sent")).toHaveLength(2);
    expect(stats.socketcanTxFrames).toBe(2);
    expect(q.pending).toBe(0);
  });

  test("a full device queue parks frames (accepted, not sent) and retries them in order", async () => {
    const stats = new Stats();
    const dev = device();
    const q = queue(dev, 10, stats);
    const log = new TxLog();
    q.send(log.request(frame(1)));
    dev.full = true;
    for (let i = 2; i <= 5; i++) expect(q.send(log.request(frame(i)))).toBe("accepted");
    expect(q.pending).toBe(4);
    await Bun.sleep(20); // several retries while still full
    expect(dev.accepted).toEqual(["101#01"]);
    expect(log.with("pending")).toHaveLength(4);
    dev.full = false;
    // A frame sent while others wait goes behind them.
    q.send(log.request(frame(6)));
    await until(() => q.pending === 0, "queue drained");
    expect(dev.accepted).toEqual(["101#01", "102#02", "103#03", "104#04", "105#05", "106#06"]);
    expect(log.reported.map((r) => formatFrame(r.frame))).toEqual(dev.accepted);
    expect(stats.socketcanTxFrames).toBe(6);
    expect(dev.ready).toBe(0); // never busy, so no txReady owed
    q.close();
  });

  test("at the limit send() answers busy (nothing queued, nothing counted), and ready() comes once it drains", async () => {
    const stats = new Stats();
    const dev = device();
    const q = queue(dev, 3, stats);
    const log = new TxLog();
    dev.full = true;
    const answers = [1, 2, 3, 4, 5, 6].map((i) => q.send(log.request(frame(i))));
    // The first write is tried at once (ENOBUFS parks it), then the queue holds 3.
    expect(answers).toEqual(["accepted", "accepted", "accepted", "busy", "busy", "busy"]);
    expect(q.pending).toBe(3);
    expect(stats.errors.get("socketcan_tx_overflow")).toBe(0);
    expect(stats.backendTxDropped).toBe(0);
    await Bun.sleep(20);
    expect(dev.ready).toBe(0);
    dev.full = false;
    await until(() => dev.ready === 1, "ready()");
    expect(q.pending).toBe(0);
    expect(dev.accepted).toEqual(["101#01", "102#02", "103#03"]);
    expect(log.requests.slice(3).map((r) => r.calls)).toEqual([0, 0, 0]);
    await Bun.sleep(20);
    expect(dev.ready).toBe(1);
    q.close();
  });

  test("waiting frames past expiresAt are lost(expired) while the device is still full, never written late", async () => {
    const dev = device();
    const q = queue(dev, 10);
    const log = new TxLog();
    dev.full = true;
    const keep = log.request(frame(1));
    const stale = [2, 3].map((i) => log.request(frame(i), 30));
    for (const r of [keep, ...stale]) q.send(r);
    await until(() => stale.every((r) => r.outcome === "expired"), "stale frames expired");
    for (const r of stale) expect(r.reportedAt).toBeGreaterThan(r.expiresAt);
    expect(keep.outcome).toBe("pending");
    dev.full = false;
    await until(() => q.pending === 0, "queue drained");
    expect(dev.accepted).toEqual(["101#01"]);
    expect(keep.outcome).toBe("sent");
    // A request already expired when offered is reported at once and never written.
    const late = log.request(frame(4), -1);
    expect(q.send(late)).toBe("accepted");
    expect(late.outcome).toBe("expired");
    expect(dev.accepted).toEqual(["101#01"]);
  });

  test("other errors lose the frame (write_failed), go to `failed`, and the queue moves on", async () => {
    const stats = new Stats();
    const dev = device();
    const q = queue(dev, 3, stats);
    const log = new TxLog();
    dev.nextError = ERRNO.EINVAL;
    const bad = log.request(frame(1));
    q.send(bad);
    q.send(log.request(frame(2)));
    expect(bad.outcome).toBe("write_failed");
    expect(dev.failures).toEqual([ERRNO.EINVAL]);
    expect(dev.accepted).toEqual(["102#02"]);
    expect(stats.socketcanTxFrames).toBe(1);
  });

  test("after a round that wrote frames the retry delay starts small again", async () => {
    // The delays asked of setTimeout are observed (the real timers still run): they are what
    // decides throughput when the device drains slowly, e.g. an MCP2515 at 50 kbit/s. Each delay
    // is recorded with how many frames the device had taken when it was scheduled, so the check
    // does not depend on when this test gets to look (a slow VM may run several retries first).
    const delays: { ms: number; written: number }[] = [];
    const dev = device();
    const realSetTimeout = globalThis.setTimeout;
    const spy = spyOn(globalThis, "setTimeout").mockImplementation(((fn: () => void, ms?: number) => {
      delays.push({ ms: ms ?? 0, written: dev.accepted.length });
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    const q = queue(dev, 10, new Stats(), { retry: { initialMs: 1, maxMs: 40, factor: 4 } });
    const log = new TxLog();
    try {
      dev.full = true;
      for (let i = 1; i <= 3; i++) q.send(log.request(frame(i)));
      await until(() => delays.some((d) => d.ms === 40), "the retry delay grown to its cap while the device is stuck");
      expect(delays.slice(0, 4).map((d) => d.ms)).toEqual([1, 4, 16, 40]);
      // The device drains one frame, then is full again: it is moving, so look again soon.
      dev.credit = 1;
      await until(() => delays.some((d) => d.written === 1), "one frame written and the next retry scheduled");
      const afterProgress = delays.filter((d) => d.written === 1);
      expect(afterProgress[0]!.ms).toBe(1);
      // ...and while stuck again it grows from there, not from where it was.
      expect(afterProgress.slice(0, 3).map((d) => d.ms)).toEqual([1, 4, 16].slice(0, Math.min(3, afterProgress.length)));
      dev.full = false;
      await until(() => q.pending === 0, "queue drained");
      expect(dev.accepted).toEqual(["101#01", "102#02", "103#03"]);
    } finally {
      q.close();
      spy.mockRestore();
    }
  });

  test("close() loses waiting frames (backend_down), stops retrying and refuses nothing silently", async () => {
    const stats = new Stats();
    const dev = device();
    const q = queue(dev, 5, stats);
    const log = new TxLog();
    dev.full = true;
    const waiting = [1, 2].map((i) => log.request(frame(i)));
    for (const r of waiting) q.send(r);
    expect(q.close()).toBe(2);
    expect(waiting.map((r) => r.outcome)).toEqual(["backend_down", "backend_down"]);
    expect(stats.backendTxDropped).toBe(0);
    dev.full = false;
    await Bun.sleep(20);
    const after = log.request(frame(3));
    expect(q.send(after)).toBe("accepted");
    expect(after.outcome).toBe("backend_down");
    expect(dev.accepted).toEqual([]);
    expect(log.overReported()).toEqual([]);
  });
});

/** A queue that waits for confirmations, on a device that takes every frame (like vcan). */
function confirmingQueue(limit: number, extra: Partial<TxQueueOptions> = {}) {
  const stats = new Stats();
  const dev = device();
  const { log, lines } = memoryLogger("debug");
  const q = new TxQueue({
    write: dev.write,
    failed: (e) => dev.failures.push(e),
    ready: () => dev.ready++,
    limit,
    stats,
    log,
    confirm: true,
    ...extra,
  });
  const events = (msg: string) => lines.map((l) => JSON.parse(l) as { msg: string; level: string; frames?: number }).filter((e) => e.msg === msg);
  return { q, dev, stats, events };
}

describe("TxQueue with transmit confirmations (unit tests: the confirmations are handed in by the test)", () => {
  test("a written frame is sent() only when its confirmation comes, and only then counted as on the bus", () => {
    const { q, dev, stats } = confirmingQueue(8);
    const log = new TxLog();
    const a = log.request(frame(1));
    expect(q.send(a)).toBe("accepted");
    expect(dev.accepted).toEqual(["101#01"]); // written at once...
    expect(a.outcome).toBe("pending"); // ...but not on the bus yet
    expect(q.awaitingConfirmation).toBe(1);
    expect(stats.socketcanTxFrames).toBe(0);
    expect(q.confirm(frame(1))).toBe(true);
    q.afterConfirmations();
    expect(a.outcome).toBe("sent");
    expect(q.awaitingConfirmation).toBe(0);
    expect(stats.socketcanTxFrames).toBe(1);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(0);
    q.close();
  });

  test("RTR, extended and CAN FD frames match their confirmation (id, flags and data compared)", () => {
    const { q, stats } = confirmingQueue(8);
    const log = new TxLog();
    const frames = [remoteFrame(0x321, 4), dataFrame(0x12345, [1, 2, 3], true), fdFrame(0x456, new Uint8Array(12).fill(7), 1)];
    for (const f of frames) q.send(log.request(f));
    // The same id with other data, or another FD flag, is not the same frame.
    expect(q.confirm(fdFrame(0x456, new Uint8Array(12).fill(7), 0))).toBe(false);
    for (const f of frames) expect(q.confirm(f)).toBe(true);
    expect(log.with("sent")).toHaveLength(3);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(1);
    expect(stats.socketcanTxFrames).toBe(4); // the unmatched one was our socket's frame too
  });

  test("written-unconfirmed frames count toward the limit: busy at the limit, ready() once a confirmation makes room", () => {
    const { q, dev } = confirmingQueue(3);
    const log = new TxLog();
    const answers = [1, 2, 3, 4].map((i) => q.send(log.request(frame(i))));
    expect(answers).toEqual(["accepted", "accepted", "accepted", "busy"]);
    expect(dev.accepted).toEqual(["101#01", "102#02", "103#03"]);
    expect(log.requests[3]!.calls).toBe(0); // "busy" is not an acceptance: the hub keeps it
    q.confirm(frame(1));
    expect(dev.ready).toBe(0); // not inside the batch...
    q.afterConfirmations();
    expect(dev.ready).toBe(1); // ...once after it
    expect(q.send(log.request(frame(4)))).toBe("accepted");
    expect(q.send(log.request(frame(5)))).toBe("busy");
    for (const i of [2, 3, 4]) q.confirm(frame(i));
    q.afterConfirmations();
    expect(dev.ready).toBe(2);
    expect(log.with("sent").map((r) => formatFrame(r.frame))).toEqual(["101#01", "102#02", "103#03", "104#04"]);
    expect(log.overReported()).toEqual([]);
  });

  test("frames waiting to be written and frames waiting for confirmation share the limit", async () => {
    const { q, dev } = confirmingQueue(4);
    const log = new TxLog();
    q.send(log.request(frame(1)));
    q.send(log.request(frame(2))); // two written, unconfirmed
    dev.full = true;
    expect(q.send(log.request(frame(3)))).toBe("accepted"); // parked (ENOBUFS)
    expect(q.send(log.request(frame(4)))).toBe("accepted");
    expect([q.awaitingConfirmation, q.pending]).toEqual([2, 2]);
    expect(q.send(log.request(frame(5)))).toBe("busy");
    dev.full = false;
    await until(() => q.pending === 0, "parked frames written");
    expect(q.awaitingConfirmation).toBe(4);
    expect(dev.ready).toBe(0); // still no room: written, not confirmed
    for (let i = 1; i <= 4; i++) q.confirm(frame(i));
    q.afterConfirmations();
    expect(dev.ready).toBe(1);
    expect(log.with("sent")).toHaveLength(4);
    q.close();
  });

  test("a bus that never confirms: frames are lost(\"unconfirmed\") after the timeout, counted, warned once; back-pressure holds meanwhile", async () => {
    const { q, dev, stats, events } = confirmingQueue(4, { confirmTimeoutMs: 80 });
    const log = new TxLog();
    const first = [1, 2, 3, 4].map((i) => log.request(frame(i)));
    const writtenAt = performance.now();
    for (const r of first) expect(q.send(r)).toBe("accepted");
    expect(q.send(log.request(frame(5)))).toBe("busy");
    await Bun.sleep(40);
    expect(first.map((r) => r.outcome)).toEqual(["pending", "pending", "pending", "pending"]);
    expect(q.send(log.request(frame(5)))).toBe("busy"); // a dead bus stops accepting
    await until(() => first.every((r) => r.outcome !== "pending"), "the unconfirmed frames reported");
    expect(first.map((r) => r.outcome)).toEqual(["unconfirmed", "unconfirmed", "unconfirmed", "unconfirmed"]);
    for (const r of first) expect(r.reportedAt - writtenAt).toBeGreaterThanOrEqual(79); // the timeout after the write
    expect(dev.ready).toBe(1); // the room they held is free again
    expect(stats.socketcanTxFrames).toBe(0); // none of them is known to be on the bus
    // Warned once (frames written within a millisecond or so may time out in separate rounds).
    const warned = () => events("socketcan_tx_unconfirmed");
    expect(warned()[0]!.level).toBe("warn");
    expect(warned().reduce((n, e) => n + e.frames!, 0)).toBe(4);
    // Now the queue probes: one frame in flight until the bus confirms again.
    expect(q.probingBus).toBe(true);
    const second = [6, 7].map((i) => log.request(frame(i)));
    expect(q.send(second[0]!)).toBe("accepted");
    expect(q.send(second[1]!)).toBe("busy");
    await until(() => second[0]!.outcome === "unconfirmed", "the probe given up");
    expect(q.send(second[1]!)).toBe("accepted");
    await until(() => second[1]!.outcome === "unconfirmed", "the next probe given up");
    // Lost the same way, logged at debug only.
    expect(warned().slice(1).every((e) => e.level === "debug")).toBe(true);
    expect(warned().reduce((n, e) => n + e.frames!, 0)).toBe(6);
    expect(q.givenUpFrames).toBe(6);
    // A confirmation that comes after its frame was given up: not reported a second time, and
    // the caller is told no request was settled (it is not delivered as a bus frame either).
    expect(q.confirm(frame(1))).toBe(false);
    expect(first[0]!.calls).toBe(1);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(1);
    expect(stats.socketcanTxFrames).toBe(1); // it did go out, late
    expect(q.probingBus).toBe(false); // the bus confirmed something: full window again
    expect(log.overReported()).toEqual([]);
  });

  test("the timeout is counted from the write, not from expiresAt: a frame written just before it expires still gets its window", async () => {
    const { q } = confirmingQueue(4, { confirmTimeoutMs: 100 });
    const log = new TxLog();
    const late = log.request(frame(1), 10); // expires 10 ms from now, written now
    q.send(late);
    await Bun.sleep(50);
    expect(late.outcome).toBe("pending"); // past expiresAt, but written: it may still go out
    q.confirm(frame(1));
    expect(late.outcome).toBe("sent");
  });

  test("out of order: a confirmation for a later frame settles that frame (counted), earlier ones keep waiting for theirs", () => {
    const { q, stats, events } = confirmingQueue(8);
    const log = new TxLog();
    const [a, b, c] = [1, 2, 3].map((i) => log.request(frame(i)));
    for (const r of [a!, b!, c!]) q.send(r);
    expect(q.confirm(frame(2))).toBe(true);
    expect([a!.outcome, b!.outcome, c!.outcome]).toEqual(["pending", "sent", "pending"]);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(1);
    expect(events("socketcan_tx_confirm_mismatch").map((e) => e.level)).toEqual(["warn"]);
    expect(q.confirm(frame(1))).toBe(true); // the head again: no mismatch
    expect(q.confirm(frame(3))).toBe(true);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(1);
    expect(log.reported.map((r) => formatFrame(r.frame))).toEqual(["102#02", "101#01", "103#03"]);
    // A confirmation nothing waits for is unmatched (and logged at debug from now on).
    expect(q.confirm(frame(9))).toBe(false);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(2);
    expect(events("socketcan_tx_confirm_mismatch").map((e) => e.level)).toEqual(["warn", "debug"]);
  });

  test("identical frames are confirmed oldest first", () => {
    const { q } = confirmingQueue(8);
    const log = new TxLog();
    const same = [log.request(frame(1)), log.request(frame(1))];
    for (const r of same) q.send(r);
    q.confirm(frame(1));
    expect(same.map((r) => r.outcome)).toEqual(["sent", "pending"]);
    q.confirm(frame(1));
    expect(same.map((r) => r.outcome)).toEqual(["sent", "sent"]);
    expect(log.reported).toEqual(same);
  });

  test("halt() loses frames not yet written; written ones can still be confirmed until close() loses them (backend_down)", () => {
    const { q, dev } = confirmingQueue(8);
    const log = new TxLog();
    const written = [1, 2, 3].map((i) => log.request(frame(i)));
    for (const r of written) q.send(r);
    dev.full = true;
    const parked = log.request(frame(4));
    q.send(parked);
    expect(q.halt()).toBe(1);
    expect(parked.outcome).toBe("backend_down");
    const after = log.request(frame(5));
    expect(q.send(after)).toBe("accepted");
    expect(after.outcome).toBe("backend_down");
    expect(q.confirm(frame(1))).toBe(true); // it did go out before the socket closed
    expect(q.close()).toBe(2);
    expect(written.map((r) => r.outcome)).toEqual(["sent", "backend_down", "backend_down"]);
    expect(dev.accepted).toEqual(["101#01", "102#02", "103#03"]);
    expect(log.overReported()).toEqual([]);
  });

  test("without `confirm` (the kernel refused CAN_RAW_RECV_OWN_MSGS) a frame is sent() once written, as before", () => {
    const stats = new Stats();
    const q = queue(device(), 2, stats);
    const log = new TxLog();
    for (let i = 1; i <= 5; i++) expect(q.send(log.request(frame(i)))).toBe("accepted");
    expect(log.with("sent")).toHaveLength(5);
    expect(q.awaitingConfirmation).toBe(0);
    expect(stats.socketcanTxFrames).toBe(5);
  });

  test("through the hub's TxScheduler: every frame is settled once — sent and echoed on confirmation, unconfirmed ones dropped with their reason", async () => {
    const stats = new Stats();
    const { log } = memoryLogger("debug");
    const echoed: string[] = [];
    const scheduler = new TxScheduler({ rate: 0, burst: 1, maxAgeMs: 5000, queueFrames: 256 }, stats, log, (f) => echoed.push(formatFrame(f)));
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: () => {}, ready: () => scheduler.ready(), limit: 4, stats, log, confirm: true, confirmTimeoutMs: 60 });
    scheduler.connect({ up: true, txRefusal: () => null, send: (req) => q.send(req) });
    const lane = scheduler.openLane({ id: 1, protocol: "cannelloni", remote: "test" }, { readOnly: false });
    for (let i = 1; i <= 10; i++) expect(lane.send(frame(i))).toBe(true);
    // 4 written and waiting for confirmation, 6 held in the client's lane (back-pressure).
    expect(dev.accepted).toHaveLength(4);
    expect(lane.inflight).toBe(4);
    expect(lane.queue.length).toBe(6);
    expect(echoed).toEqual([]);
    // The bus confirms the first two; the scheduler refills the room they leave.
    q.confirm(frame(1));
    q.confirm(frame(2));
    q.afterConfirmations();
    expect(echoed).toEqual(["101#01", "102#02"]);
    expect(dev.accepted).toHaveLength(6);
    // Then the bus goes silent: what was written times out, the rest follows as room frees.
    await until(() => lane.inflight === 0 && lane.queue.length === 0, "every frame settled");
    expect(lane.sent).toBe(2);
    expect(stats.clientTxSent).toBe(2);
    expect(lane.dropped.get("unconfirmed")).toBe(8);
    expect(stats.txDropped.get("unconfirmed")).toBe(8);
    expect(stats.backendTxDropped).toBe(8);
    expect(lane.sent + (lane.dropped.get("unconfirmed") ?? 0)).toBe(10);
    expect(echoed).toEqual(["101#01", "102#02"]); // never echoed: nobody knows they were on the bus
    q.close();
  });

  test("a dead bus (in-memory fake that never confirms; vcan always confirms, so this case exists only here): after a timeout at most one frame in flight, not 64 per timeout", async () => {
    const { q, dev } = confirmingQueue(64, { confirmTimeoutMs: 50 });
    const log = new TxLog();
    // A hub that offers a frame whenever the queue takes one, for 600 ms (12 timeouts).
    const t0 = performance.now();
    let offered = 0;
    while (performance.now() - t0 < 600) {
      while (q.send(log.request(frame(offered & 0xff))) === "accepted") offered++;
      await Bun.sleep(5);
    }
    // Before: 64 more per timeout (843 frames in 1 s with a 50 ms timeout). Now: the first 64,
    // then one probe per timeout round.
    expect(dev.accepted.length).toBeGreaterThanOrEqual(64);
    expect(dev.accepted.length).toBeLessThanOrEqual(64 + 600 / 50 + 2);
    expect(q.awaitingConfirmation).toBeLessThanOrEqual(1);
    q.close();
    expect(log.overReported()).toEqual([]);
  });

  test("the late confirmation of a given-up frame matches it, never a newer identical frame", async () => {
    const { q, stats } = confirmingQueue(8, { confirmTimeoutMs: 30 });
    const log = new TxLog();
    const a = log.request(frame(1));
    q.send(a);
    await until(() => a.outcome === "unconfirmed", "A given up");
    const b = log.request(frame(1)); // the same command again: the probe
    expect(q.send(b)).toBe("accepted");
    // The bus recovers: A (still in the kernel's queue) goes out first, then B.
    expect(q.confirm(frame(1))).toBe(false);
    expect(b.outcome).toBe("pending"); // A's confirmation did not settle B
    expect(q.confirm(frame(1))).toBe(true);
    expect(b.outcome).toBe("sent");
    expect([a.calls, b.calls]).toEqual([1, 1]);
    expect(stats.socketcanTxFrames).toBe(2);
    expect(stats.errors.get("socketcan_tx_confirm_mismatch")).toBe(1); // A's, late
  });

  test("a given-up frame the kernel dropped does not take every later identical frame's confirmation: the frame it shadowed is sent at its timeout", async () => {
    const { q, stats } = confirmingQueue(8, { confirmTimeoutMs: 30 });
    const log = new TxLog();
    // A periodic command (the same frame each time, slower than the timeout); A's confirmation is
    // lost (a receive overflow, or the kernel dropped A).
    const a = log.request(frame(1));
    q.send(a);
    await until(() => a.outcome === "unconfirmed", "A given up");
    const b = log.request(frame(1));
    q.send(b);
    // The one confirmation that comes: A's (late) or B's — cannot be told yet.
    expect(q.confirm(frame(1))).toBe(false);
    expect(b.outcome).toBe("pending");
    // None follows: it was B's. B is on the bus, not lost, and not remembered as given up (before:
    // lost as unconfirmed, and the next identical frame's confirmation taken for B's, and so on).
    await until(() => b.outcome !== "pending", "B settled");
    expect(b.outcome).toBe("sent");
    expect(q.givenUpFrames).toBe(0);
    expect(q.probingBus).toBe(false);
    const c = log.request(frame(1));
    q.send(c);
    expect(q.confirm(frame(1))).toBe(true); // C's own, at once
    expect(c.outcome).toBe("sent");
    expect(stats.socketcanTxFrames).toBe(2); // two confirmations, two frames on the bus
    expect(log.with("sent")).toHaveLength(2);
    expect(log.overReported()).toEqual([]);
  });

  test("the doubt moves along identical frames in flight: the last of a burst whose given-up twin was gone is sent at its timeout", async () => {
    const { q } = confirmingQueue(8, { confirmTimeoutMs: 30 });
    const log = new TxLog();
    const a = log.request(frame(1));
    q.send(a);
    await until(() => a.outcome === "unconfirmed", "A given up");
    const b = log.request(frame(1));
    q.send(b);
    expect(q.confirm(frame(1))).toBe(false); // A's or B's
    const c = log.request(frame(1));
    q.send(c);
    expect(q.confirm(frame(1))).toBe(true); // B's or C's: settles B
    expect(b.outcome).toBe("sent");
    // No third confirmation: A was gone, the two were B's and C's.
    await until(() => c.outcome !== "pending", "C settled");
    expect(c.outcome).toBe("sent");
    expect(q.givenUpFrames).toBe(0);
    expect(log.overReported()).toEqual([]);
  });

  test("a confirmation of a newer frame forgets given-up frames written before it (the kernel dropped them)", async () => {
    const { q } = confirmingQueue(8, { confirmTimeoutMs: 30 });
    const log = new TxLog();
    const a = log.request(frame(1));
    q.send(a);
    await until(() => a.outcome === "unconfirmed", "A given up");
    const b = log.request(frame(2));
    q.send(b);
    expect(q.confirm(frame(2))).toBe(true); // B's confirmation: A's would have come first
    expect(q.givenUpFrames).toBe(0);
    const c = log.request(frame(1));
    q.send(c);
    expect(q.confirm(frame(1))).toBe(true); // C's own, not A's
    expect(c.outcome).toBe("sent");
  });
});
