/**
 * The jobs' one timer with a job far ahead: setTimeout takes at most 2^31-1 ms (24.8 days); a
 * longer delay is set to 1 ms (Node and Bun, with a TimeoutOverflowWarning), so a job with start_at
 * a month ahead woke the timer every millisecond, busy and flooding stderr, until then.
 */
import { afterEach, expect, test } from "bun:test";
import { dataFrame } from "../../src/can/frame.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Jobs } from "../../src/jobs/jobs.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";

let tg: TestGateway | null = null;
let jobs: Jobs | null = null;
afterEach(async () => {
  await jobs?.stop();
  await tg?.stop();
  jobs = null;
  tg = null;
});

test("a job starting 30 days ahead leaves the timer asleep (no 1 ms wake loop)", async () => {
  tg = await startTestGateway();
  const { log } = memoryLogger("info");
  const gw = tg.gateway;
  jobs = new Jobs({ buses: gw.buses, log, stateDir: "", allocateId: () => gw.registry.allocateId() });
  const self = jobs as unknown as { wake(): void };
  const wake = self.wake.bind(jobs);
  let wakes = 0;
  self.wake = () => {
    wakes++;
    wake();
  };
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  process.on("warning", onWarning);
  try {
    const job = jobs.create("can0", { frames: [dataFrame(0x13, [1])], periodMs: 1000, count: null, startAt: Date.now() + 30 * 86_400_000, name: "" });
    await Bun.sleep(300);
    expect(wakes).toBe(0);
    expect(warnings.filter((n) => n === "TimeoutOverflowWarning")).toEqual([]);
    expect(job.k).toBe(0);
    expect(job.state).toBe("scheduled");
  } finally {
    process.off("warning", onWarning);
  }
});
