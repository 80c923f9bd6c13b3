/**
 * The transmit queue's behaviour when the device queue is full. A real vcan never reports a full
 * queue (its transmit is synchronous), and an MCP2515 is not available to tests, so the device
 * write is the one scripted part here: a function returning the errno a real send() would. The
 * timers and everything else are real. Outcomes are recorded with TxRequests (helpers/tx-request).
 */
import { describe, expect, spyOn, test } from "bun:test";
import { decodeCanStruct } from "../../src/backends/socketcan/can-struct.ts";
import { ERRNO } from "../../src/backends/socketcan/ffi.ts";
import { TxQueue, type TxQueueOptions } from "../../src/backends/socketcan/tx-queue.ts";
import { dataFrame, formatFrame, type CanFrame } from "../../src/can/frame.ts";
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
