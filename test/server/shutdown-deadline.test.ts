/**
 * -shutdown-timeout holds even when everything is slow at once (found in review: the backend's
 * stop was given the deadline plus 250 ms): a client that never reads keeps its session
 * flushing, and the backend's stop() never resolves. shutdown(300) must return within the
 * deadline (plus scheduling slack), with the stuck session aborted and counted.
 */
import { expect, test } from "bun:test";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { startSlowClient } from "../helpers/slow-client.ts";

class StuckStopBackend extends VirtualBackend {
  override stop(): Promise<void> {
    return new Promise(() => {}); // never resolves: a wedged device
  }
}

test("shutdown returns within -shutdown-timeout with a never-reading client and a backend that never stops", async () => {
  const stats = new Stats();
  const { log } = memoryLogger("info");
  const backend = new StuckStopBackend({ stats, log, fd: false });
  const gateway = await startGateway({ ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", hubBuffer: 100_000 }, { stats, log, backend });
  const slow = await startSlowClient(gateway.port("cannelloni")!);
  await Bun.sleep(100);
  // Until the kernel's socket buffers are full and frames wait in the session's queue (bounded).
  for (let round = 0; round < 200 && gateway.hub.queueDepth().max < 1000; round++) {
    for (let i = 0; i < 20_000; i++) backend.inject(dataFrame(0x100 + (i % 0x600), [1, 2, 3, 4, 5, 6, 7, 8]));
    await Bun.sleep(5);
  }
  expect(gateway.hub.queueDepth().max).toBeGreaterThanOrEqual(1000);
  const t0 = performance.now();
  const summary = await gateway.shutdown(300);
  const took = performance.now() - t0;
  slow.kill();
  expect(took).toBeLessThan(300 + 150);
  expect(summary.abortedAtDeadline).toBe(1);
});
