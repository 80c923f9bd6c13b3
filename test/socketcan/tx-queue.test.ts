/**
 * The transmit queue's behaviour when the device queue is full. A real vcan never reports a full
 * queue (its transmit is synchronous), and an MCP2515 is not available to tests, so the device
 * write is the one scripted part here: a function returning the errno a real send() would. The
 * timers and everything else are real.
 */
import { describe, expect, spyOn, test } from "bun:test";
import { decodeCanStruct } from "../../src/backends/socketcan/can-struct.ts";
import { ERRNO } from "../../src/backends/socketcan/ffi.ts";
import { TxQueue } from "../../src/backends/socketcan/tx-queue.ts";
import { dataFrame, formatFrame, type CanFrame } from "../../src/can/frame.ts";
import { Stats } from "../../src/ops/stats.ts";

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

const frame = (i: number): CanFrame => dataFrame(0x100 + i, [i & 0xff]);

async function until(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(2);
  }
}

describe("TxQueue", () => {
  test("writes at once while the device takes frames", () => {
    const stats = new Stats();
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: (e) => dev.failures.push(e), limit: 4, stats });
    q.send(frame(1));
    q.send(frame(2));
    expect(dev.accepted).toEqual(["101#01", "102#02"]);
    expect(stats.socketcanTxFrames).toBe(2);
    expect(q.pending).toBe(0);
  });

  test("a full device queue parks frames and retries them in order", async () => {
    const stats = new Stats();
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: (e) => dev.failures.push(e), limit: 10, stats });
    q.send(frame(1));
    dev.full = true;
    for (let i = 2; i <= 5; i++) q.send(frame(i));
    expect(q.pending).toBe(4);
    await Bun.sleep(20); // several retries while still full
    expect(dev.accepted).toEqual(["101#01"]);
    dev.full = false;
    // A frame sent while others wait goes behind them.
    q.send(frame(6));
    await until(() => q.pending === 0, "queue drained");
    expect(dev.accepted).toEqual(["101#01", "102#02", "103#03", "104#04", "105#05", "106#06"]);
    expect(stats.socketcanTxFrames).toBe(6);
    expect(stats.errors.get("socketcan_tx_overflow")).toBe(0);
    q.close();
  });

  test("beyond the limit frames are dropped and counted, never queued", async () => {
    const stats = new Stats();
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: (e) => dev.failures.push(e), limit: 3, stats });
    dev.full = true;
    for (let i = 1; i <= 8; i++) q.send(frame(i));
    expect(q.pending).toBe(3);
    expect(stats.errors.get("socketcan_tx_overflow")).toBe(5);
    expect(stats.backendTxDropped).toBe(5);
    dev.full = false;
    await until(() => q.pending === 0, "queue drained");
    expect(dev.accepted).toEqual(["101#01", "102#02", "103#03"]);
    q.close();
  });

  test("other errors go to `failed` and the queue moves on", async () => {
    const stats = new Stats();
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: (e) => dev.failures.push(e), limit: 3, stats });
    dev.nextError = ERRNO.EINVAL;
    q.send(frame(1));
    q.send(frame(2));
    expect(dev.failures).toEqual([ERRNO.EINVAL]);
    expect(dev.accepted).toEqual(["102#02"]);
  });

  test("after a round that wrote frames the retry delay starts small again", async () => {
    // The delays asked of setTimeout are observed (the real timers still run): they are what
    // decides throughput when the device drains slowly, e.g. an MCP2515 at 50 kbit/s.
    const delays: number[] = [];
    const realSetTimeout = globalThis.setTimeout;
    const spy = spyOn(globalThis, "setTimeout").mockImplementation(((fn: () => void, ms?: number) => {
      delays.push(ms ?? 0);
      return realSetTimeout(fn, ms);
    }) as typeof setTimeout);
    const stats = new Stats();
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: (e) => dev.failures.push(e), limit: 10, stats, retry: { initialMs: 1, maxMs: 40, factor: 4 } });
    try {
      dev.full = true;
      for (let i = 1; i <= 3; i++) q.send(frame(i));
      await until(() => delays.includes(40), "the retry delay grown to its cap while the device is stuck");
      expect(delays.slice(0, 4)).toEqual([1, 4, 16, 40]);
      // The device drains one frame, then is full again: it is moving, so look again soon.
      const before = delays.length;
      dev.credit = 1;
      await until(() => dev.accepted.length === 1 && delays.length > before, "one frame written and the next retry scheduled");
      expect(delays[delays.length - 1]).toBe(1);
      dev.full = false;
      await until(() => q.pending === 0, "queue drained");
      expect(dev.accepted).toEqual(["101#01", "102#02", "103#03"]);
    } finally {
      q.close();
      spy.mockRestore();
    }
  });

  test("close() drops waiting frames, counts them and stops retrying", async () => {
    const stats = new Stats();
    const dev = device();
    const q = new TxQueue({ write: dev.write, failed: (e) => dev.failures.push(e), limit: 5, stats });
    dev.full = true;
    q.send(frame(1));
    q.send(frame(2));
    expect(q.close()).toBe(2);
    expect(stats.backendTxDropped).toBe(2);
    dev.full = false;
    await Bun.sleep(20);
    q.send(frame(3));
    expect(dev.accepted).toEqual([]);
  });
});
