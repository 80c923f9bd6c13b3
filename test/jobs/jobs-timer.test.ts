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

test("a job's frame held up by a stalled backend is not sent late when the backend recovers", async () => {
  tg = await startTestGateway();
  const { log } = memoryLogger("info");
  const gw = tg.gateway;
  const backend = tg.backend;
  jobs = new Jobs({ buses: gw.buses, log, stateDir: "", allocateId: () => gw.registry.allocateId() });
  // 64 distinct frames: the frame a transmission carries names its number (mod 64).
  const frames = Array.from({ length: 64 }, (_, i) => dataFrame(0x14, [i]));
  const p = 50;
  // The virtual backend stands in for a congested controller or adapter (no real one here): it
  // answers "busy" while `stalled`, as SocketCAN does on ENOBUFS and serial on a full write buffer.
  let stalled = false;
  const lateness: number[] = [];
  const send = backend.send.bind(backend);
  let job: ReturnType<Jobs["create"]> | null = null;
  backend.send = (req) => {
    if (stalled) return "busy";
    const j = job;
    if (j !== null && req.frame.canId === 0x14) {
      const now = performance.now();
      const idx = req.frame.data[0]!;
      // The latest transmission number carrying this frame that was already due (a wake may
      // send up to SLACK_MS early).
      let k = Math.floor((now - j.start + 2) / p);
      while (k >= 0 && k % 64 !== idx) k--;
      lateness.push(now - (j.start + k * p));
    }
    return send(req);
  };
  job = jobs.create("can0", { frames, periodMs: p, count: null, startAt: null, name: "" });
  const j = job;
  const { waitFor } = await import("../helpers/gateway.ts");
  await waitFor(() => j.sent >= 3, "a few transmissions");
  stalled = true;
  await Bun.sleep(800);
  stalled = false;
  gw.buses[0]!.hub.busReady();
  const sentAtRelease = j.sent;
  await waitFor(() => j.sent >= sentAtRelease + 3, "transmissions after the stall");
  // Due times are met within the job's own lateness allowance (half a period here), whatever
  // waited during the stall: it is skipped and counted, not sent 800 ms late.
  expect(Math.max(...lateness)).toBeLessThan(p);
  expect(j.skipped.get("expired") ?? 0).toBeGreaterThanOrEqual(1);
});
