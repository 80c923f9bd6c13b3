/**
 * The shared link-state machine (src/backends/link-state.ts) on its own: one down report per
 * outage, reconnects counted, the backoff reset only after a stable-up window, the busy → txReady
 * latch, and outcome reports that survive a throwing callback. The backends that use it run the
 * contract suite (test/backends/contract.ts) on real devices; this pins the rules themselves.
 */
import { describe, expect, test } from "bun:test";
import { LinkState } from "../../src/backends/link-state.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { recordingListener, TxLog } from "../helpers/tx-request.ts";

function machine(stableUpMs = 1000) {
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const link = new LinkState({ reconnect: { initialMs: 10, maxMs: 80, factor: 2 }, stableUpMs, stats, log, name: "test" });
  const listener = recordingListener();
  link.attach(listener);
  return { link, stats, listener, lines };
}

describe("LinkState", () => {
  test("an outage is reported once; later failures only update the reason; up again counts a reconnect", () => {
    const { link, stats, listener } = machine();
    expect(link.up).toBe(false);
    expect(link.downReason).toBe("not started");
    expect(link.wentDown("no device")).toBe(true);
    expect(link.wentDown("still no device")).toBe(false);
    expect(link.downReason).toBe("still no device");
    expect(listener.states).toEqual([{ up: false, reason: "no device" }]);
    const first = link.wentUp();
    expect(first).toEqual({ reconnect: false, outageReported: true, lastDownReason: "still no device" });
    expect(link.reconnects).toBe(0);
    expect(stats.backendUp).toBe(true);
    expect(link.downReason).toBe("");
    expect(link.wentDown("unplugged")).toBe(true);
    expect(stats.backendUp).toBe(false);
    expect(link.wentUp().reconnect).toBe(true);
    expect(link.reconnects).toBe(1);
    expect(listener.states.map((s) => s.up)).toEqual([false, true, false, true]);
  });

  test("stillDown() changes the reason without telling the listener", () => {
    const { link, listener } = machine();
    link.stillDown("ENOENT");
    expect(link.downReason).toBe("ENOENT");
    expect(listener.states).toEqual([]);
  });

  test("the backoff grows while the link fails at once, and starts small again after a stable-up window", async () => {
    const { link } = machine(30);
    link.wentUp();
    link.wentDown("a");
    expect(link.nextDelay()).toBe(10);
    link.wentUp();
    link.wentDown("b"); // at once: not stable, keeps growing
    expect(link.nextDelay()).toBe(20);
    link.wentUp();
    await Bun.sleep(40);
    link.wentDown("c"); // stayed up past stableUpMs
    expect(link.nextDelay()).toBe(10);
  });

  test("scheduleRetry runs once, never twice at a time, never after stop()", async () => {
    const { link } = machine();
    let runs = 0;
    link.scheduleRetry(() => runs++, 5);
    link.scheduleRetry(() => runs++, 5);
    expect(link.retryPending).toBe(true);
    await Bun.sleep(20);
    expect(runs).toBe(1);
    link.scheduleRetry(() => runs++, 5);
    link.stop();
    await Bun.sleep(20);
    expect(runs).toBe(1);
    expect(link.downReason).toBe("stopped");
    link.scheduleRetry(() => runs++, 1);
    await Bun.sleep(10);
    expect(runs).toBe(1);
  });

  test("txReady is owed once per busy, and only when there is room", () => {
    const { link, listener } = machine();
    link.txReady();
    expect(listener.txReadyCalls).toBe(0);
    link.markBusy();
    link.txReady(false);
    expect(listener.txReadyCalls).toBe(0);
    link.txReady(true);
    link.txReady(true);
    expect(listener.txReadyCalls).toBe(1);
  });

  test("a throwing outcome callback is logged and the other requests are still reported", () => {
    const { link, lines } = machine();
    const log = new TxLog();
    const a = log.request(dataFrame(1, []));
    const b = log.request(dataFrame(2, []));
    const boom = { frame: dataFrame(3, []), expiresAt: 0, sent: () => { throw new Error("boom"); }, lost: () => { throw new Error("boom"); } };
    link.report([a, boom, b], "sent");
    link.report([boom], "backend_down");
    expect(a.outcome).toBe("sent");
    expect(b.outcome).toBe("sent");
    expect(lines.filter((l) => l.includes("test_tx_callback_failed")).length).toBe(2);
  });
});
