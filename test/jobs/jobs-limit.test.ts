/**
 * The jobs' bound (MAX_JOBS) on a real in-process gateway: finished jobs give up their place to new
 * ones, running ones do not (409); a job on a bus that went down skips as backend_down and leaves
 * nothing in the scheduler.
 */
import { afterEach, expect, test } from "bun:test";
import { dataFrame } from "../../src/can/frame.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Jobs, JobError, MAX_JOBS } from "../../src/jobs/jobs.ts";
import { startTestGateway, waitFor, type TestGateway } from "../helpers/gateway.ts";

let tg: TestGateway | null = null;
let jobs: Jobs | null = null;
afterEach(async () => {
  await jobs?.stop();
  await tg?.stop();
  jobs = null;
  tg = null;
});

async function setUp(): Promise<{ tg: TestGateway; jobs: Jobs }> {
  tg = await startTestGateway();
  const { log } = memoryLogger("info");
  jobs = new Jobs({ buses: tg.gateway.buses, log, stateDir: "", allocateId: () => tg!.gateway.registry.allocateId() });
  return { tg, jobs };
}

test("at MAX_JOBS a finished job makes room; with none finished a new job is refused (409)", async () => {
  const { jobs } = await setUp();
  const once = { frames: [dataFrame(0x10, [1])], periodMs: null, count: 1, startAt: null, name: "" };
  for (let i = 0; i < MAX_JOBS; i++) jobs.create("can0", once);
  await waitFor(() => jobs.list().every((j) => j.finished), "every one-shot job to finish");
  expect(jobs.list().reduce((n, j) => n + j.sent, 0)).toBe(MAX_JOBS);
  const daily = { frames: [dataFrame(0x11, [1])], periodMs: 86_400_000, count: null, startAt: Date.now() + 3_600_000, name: "" };
  for (let i = 0; i < MAX_JOBS; i++) jobs.create("can0", daily);
  expect(jobs.size).toBe(MAX_JOBS);
  expect(jobs.list().some((j) => j.finished)).toBe(false);
  let err: unknown = null;
  try {
    jobs.create("can0", daily);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(JobError);
  expect((err as JobError).status).toBe(409);
});

test("a job on a bus that goes down: skipped as backend_down, nothing waits in the scheduler", async () => {
  const { tg, jobs } = await setUp();
  const job = jobs.create("can0", { frames: [dataFrame(0x12, [1])], periodMs: 10, count: null, startAt: null, name: "" });
  await waitFor(() => job.sent >= 3, "a few transmissions");
  await tg.backend.stop();
  const sentAtDown = job.sent;
  await Bun.sleep(200);
  expect(job.sent).toBe(sentAtDown);
  expect(job.skipped.get("backend_down") ?? 0).toBeGreaterThanOrEqual(10);
  expect(tg.gateway.hub.txQueued).toBe(0);
  expect(jobs.totals.skipped.get("backend_down")).toBe(job.skipped.get("backend_down"));
});
