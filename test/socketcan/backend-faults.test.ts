/**
 * SocketCanBackend under faults, against a real kernel (vcan/vxcan in ../shared/vmcan; `npm run
 * test:socketcan`): the kernel dropping frames because this thread fell behind, the last batch
 * before a receive failure, the receive worker dying, and an interface that is up without carrier
 * (what bus-off with restart-ms 0 looks like; a vxcan whose peer is down has exactly those flags).
 * To force an interleaving the listener blocks the main thread (Bun.spawnSync / Bun.sleepSync)
 * while the worker thread and the kernel carry on; the session's ring and worker are reached
 * through the private field, the only way to watch or end the real worker from outside.
 * Skipped, with a notice, on a kernel without AF_CAN or without vcan0.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import type { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import { H_STATE, H_WRITE, RX_RUNNING } from "../../src/backends/socketcan/rx-ring.ts";
import { formatFrame } from "../../src/can/frame.ts";
import { CAN_MANAGE_LINKS, cansend, HAVE_VCAN, IFACE, noteSkipped, recorder, run, TestBackends, until } from "./vcan.ts";

noteSkipped();

const backends = new TestBackends();
const backend = backends.create;

/** The live session's ring header and worker (private: see the module comment). */
function session(b: SocketCanBackend) {
  const s = b["session"];
  if (s === null) throw new Error("backend has no open session");
  return s;
}

/** Bound CAN_RAW sockets on `iface`: one "raw" line each in the kernel's receive lists. */
function receivers(iface = IFACE): number {
  return readFileSync("/proc/net/can/rcvlist_all", "utf8")
    .split("\n")
    .filter((l) => l.includes(` ${iface} `) && l.includes("raw")).length;
}

/** Blocks this thread until `cond` holds (the worker thread keeps running meanwhile). */
function spinUntil(cond: () => boolean, what: string, timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    Bun.sleepSync(5);
  }
}

afterEach(async () => {
  await backends.stopAll();
});

describe.skipIf(!HAVE_VCAN)(`SocketCAN faults on ${IFACE} (real kernel)`, () => {
  test("vcan0 up counts as up (IFF_RUNNING), also after the periodic link check", async () => {
    const { backend: b } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    expect(b.up).toBe(true);
    await Bun.sleep(1500); // past one idle wake-up, which looks at the interface flags
    expect(b.up).toBe(true);
    cansend(IFACE, "123#01");
    await until(() => rec.frames.length >= 1, "a frame");
    expect(rec.states.map((s) => s.up)).toEqual([true]);
  });

  test("a listener that falls behind: every frame the kernel drops is counted, warned once", async () => {
    // A 16-frame ring and the smallest socket buffer: while the listener blocks, the worker
    // fills the ring and stops reading, the socket buffer fills and the kernel drops the rest.
    const { backend: b, stats, events } = backend({ rxRingSlots: 16, rcvBufBytes: 4096 });
    const total = 1 + 2000;
    let got = 0;
    await b.start({
      frame: () => {
        got++;
        // Blocks this thread for as long as cangen runs: nothing is drained meanwhile.
        if (got === 1) expect(Bun.spawnSync(["cangen", IFACE, "-g", "0", "-n", "2000", "-I", "123", "-L", "8"]).exitCode).toBe(0);
      },
      state: () => {},
      txReady: () => {},
    });
    cansend(IFACE, "7FE#01");
    const overflow = () => stats.errors.get("socketcan_rx_overflow") ?? 0;
    await until(() => got + overflow() >= total, () => `received ${got} + dropped ${overflow()} = ${total}`, 20_000);
    await Bun.sleep(300); // nothing more may come in
    expect(overflow()).toBeGreaterThan(0);
    expect(got + overflow()).toBe(total);
    expect(stats.socketcanRxFrames).toBe(got);
    expect(events().filter((e) => e.msg === "socketcan_rx_overflow" && e.level === "warn")).toHaveLength(1);
    expect(b.up).toBe(true);
  }, 30_000);

  test("receive worker exits on its own: backend goes down, closes the socket, reopens", async () => {
    const before = receivers();
    const { backend: b, stats } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    expect(receivers()).toBe(before + 1);
    session(b).worker.terminate();
    await until(() => rec.states.length >= 3, () => `down and up again (states ${JSON.stringify(rec.states)})`);
    expect(rec.states.map((s) => s.up)).toEqual([true, false, true]);
    expect(rec.states[1]!.reason).toContain("receive worker exited");
    expect(stats.errors.get("socketcan_read")).toBe(1);
    // The old socket was closed, not leaked next to the new one.
    await until(() => receivers() === before + 1, () => `one receiver (have ${receivers() - before})`);
    cansend(IFACE, "321#AB");
    await until(() => rec.frames.length >= 1, "a frame after the worker was replaced");
    expect(rec.frames.map(formatFrame)).toEqual(["321#AB"]);
  });

  test("receive worker dies with an error: backend goes down, closes the socket, reopens", async () => {
    const before = receivers();
    const { backend: b, stats } = backend();
    const rec = recorder();
    await b.start(rec.listener);
    // An uncaught exception in the worker: its thread is gone without setting a final state,
    // and Bun reports "error" and "close" (the order varies). The thread is ended for real and
    // given ample time to leave its receive (100 ms timeout) before the error is delivered.
    const worker = session(b).worker;
    worker.terminate();
    Bun.sleepSync(1000);
    worker.dispatchEvent(new ErrorEvent("error", { message: "boom" }));
    await until(() => rec.states.length >= 3, () => `down and up again (states ${JSON.stringify(rec.states)})`);
    expect(rec.states.map((s) => s.up)).toEqual([true, false, true]);
    expect(rec.states[1]!.reason).toMatch(/^receive worker (failed: boom|exited unexpectedly)$/);
    expect(stats.errors.get("socketcan_read")).toBe(1);
    await until(() => receivers() === before + 1, () => `one receiver (have ${receivers() - before})`);
    cansend(IFACE, "322#CD");
    await until(() => rec.frames.length >= 1, "a frame after the worker was replaced");
    expect(rec.frames.map(formatFrame)).toEqual(["322#CD"]);
  });
});

describe.skipIf(!HAVE_VCAN)(`SocketCAN receive pump and reconnect pacing on ${IFACE} (real kernel)`, () => {
  test("a saturated receive path still yields to the event loop: timers keep firing while frames pour in", async () => {
    // The listener costs 50 µs a frame, so cangen -g 0 outruns this thread and the ring never
    // runs dry for seconds. A pump that loops while frames are waiting would run all that time
    // without letting a timer (or /metrics, or SIGTERM) in.
    const { backend: b, stats } = backend();
    let got = 0;
    await b.start({
      frame: () => {
        got++;
        const t = performance.now();
        while (performance.now() - t < 0.05) {
          // busy: a slow consumer
        }
      },
      state: () => {},
      txReady: () => {},
    });
    cansend(IFACE, "7FE#01");
    await until(() => got >= 1, "the warm-up frame");
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const started = performance.now();
    const gen = Bun.spawn(["cangen", IFACE, "-g", "0", "-n", "30000", "-I", "123", "-L", "8"], { stdout: "ignore", stderr: "ignore" });
    try {
      await gen.exited;
      // Until the backlog is drained: the frame count stands still.
      for (let last = -1; last !== got; ) {
        last = got;
        await Bun.sleep(300);
      }
    } finally {
      clearInterval(timer);
    }
    const busyMs = performance.now() - started;
    const delivered = got - 1;
    // Enough load to have starved the loop for well over a second without the yield.
    expect(delivered).toBeGreaterThan(10_000);
    expect(busyMs).toBeGreaterThan(1000);
    let maxGap = 0;
    for (let i = 1; i < ticks.length; i++) maxGap = Math.max(maxGap, ticks[i]! - ticks[i - 1]!);
    expect(ticks[0]! - started).toBeLessThan(300);
    expect(maxGap).toBeLessThan(300);
    expect(delivered + (stats.errors.get("socketcan_rx_overflow") ?? 0)).toBe(30_000);
  }, 60_000);

  test("a link that dies right after every open is reopened at a growing delay; a stable session starts the backoff over", async () => {
    const { backend: b } = backend({ reconnect: { initialMs: 20, maxMs: 320, factor: 2 } });
    const downAt: number[] = [];
    const gaps: number[] = [];
    let dying = true;
    const killSession = () => {
      const s = b["session"];
      s?.worker.terminate();
    };
    await b.start({
      frame: () => {},
      state: (up) => {
        const now = performance.now();
        if (!up) downAt.push(now);
        else if (downAt.length > 0) gaps.push(now - downAt[downAt.length - 1]!);
        // A dying adapter: the socket opens, then its receive fails at once.
        if (up && dying) setTimeout(killSession, 0);
      },
      txReady: () => {},
    });
    await until(() => gaps.length >= 5, () => `five reopens (gaps ${gaps.map(Math.round)})`, 30_000);
    dying = false;
    // 20, 40, 80, 160, 320 ms: without the stable-up window every gap would be the first delay.
    expect(gaps[4]!).toBeGreaterThanOrEqual(300);
    expect(gaps[4]!).toBeGreaterThan(gaps[0]! * 4);
    for (let i = 1; i < 5; i++) expect(gaps[i]!).toBeGreaterThan(gaps[i - 1]!);
    // Up for longer than the stable window (1 s): the next outage is retried at the first delay.
    // (The session that was up when `dying` was cleared may still have been killed: let the
    // reopen after it happen first.)
    await Bun.sleep(800);
    await until(() => b.up, "up again");
    const before = gaps.length;
    await Bun.sleep(1300);
    expect(gaps.length).toBe(before);
    killSession();
    await until(() => gaps.length > before, "reopened after the stable session failed", 10_000);
    expect(gaps[before]!).toBeLessThan(200);
  }, 60_000);
});

describe.skipIf(!CAN_MANAGE_LINKS)(`SocketCAN link faults on a real kernel`, () => {
  const VXA = "vxa0";
  const VXB = "vxb0";
  afterAll(() => {
    Bun.spawnSync(["ip", "link", "del", VXA], { stderr: "ignore" });
    Bun.spawnSync(["ip", "link", "set", IFACE, "up"], { stderr: "ignore" });
  });

  test("the last batch the worker read before the link failed is still delivered", async () => {
    const { backend: b } = backend();
    const rec = recorder();
    try {
      await b.start({
        frame: (f) => {
          rec.frames.push(f);
          if (rec.frames.length !== 1) return;
          // While this thread is busy with frame 1, the worker reads frame 2 and then fails.
          const h = session(b).ring.header;
          cansend(IFACE, "222#02");
          spinUntil(() => Atomics.load(h, H_WRITE) >= 2, "the worker to publish frame 2");
          run("ip", "link", "set", IFACE, "down");
          spinUntil(() => Atomics.load(h, H_STATE) !== RX_RUNNING, "the worker to fail");
        },
        state: (up, reason) => rec.states.push({ up, reason }),
        txReady: () => {},
      });
      cansend(IFACE, "111#01");
      await until(() => !b.up, "backend down");
      expect(rec.frames.map(formatFrame)).toEqual(["111#01", "222#02"]);
      expect(b.downReason).toContain("went down");
    } finally {
      run("ip", "link", "set", IFACE, "up");
    }
  });

  test("up without carrier (bus-off, restart-ms 0) is down with a reason; carrier back is up; carrier lost is noticed", async () => {
    // A vxcan end is IFF_UP but not IFF_RUNNING while its peer is down.
    run("ip", "link", "add", VXA, "type", "vxcan", "peer", "name", VXB);
    run("ip", "link", "set", VXA, "up");
    const { backend: b, events } = backend({ iface: VXA });
    const rec = recorder();
    await b.start(rec.listener);
    expect(b.up).toBe(false);
    expect(b.downReason).toContain("bus-off or no carrier");
    expect(b.downReason).toContain(VXA);
    run("ip", "link", "set", VXB, "up");
    await until(() => b.up, "backend up once the carrier is there");
    cansend(VXB, "123#0A");
    await until(() => rec.frames.length >= 1, "a frame through the vxcan pair");
    expect(rec.frames.map(formatFrame)).toEqual(["123#0A"]);
    // The carrier goes away while the socket stays fine: the periodic link check notices.
    run("ip", "link", "set", VXB, "down");
    await until(() => !b.up, "backend down after the carrier was lost");
    expect(b.downReason).toContain("bus-off or no carrier");
    run("ip", "link", "set", VXB, "up");
    await until(() => b.up, "backend up again");
    expect(rec.states.map((s) => s.up)).toEqual([false, true, false, true]);
    expect(events().filter((e) => e.msg === "socketcan_down")).toHaveLength(2);
  });
});
