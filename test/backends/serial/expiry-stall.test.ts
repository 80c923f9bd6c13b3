/**
 * Found in review: frames already moved into the serial write batch were never expired while the
 * tty stayed stalled (EAGAIN), and went out long after -tx-max-age once it drained. Now every
 * frame whose first byte has not reached the tty expires on time; only a frame already partly on
 * the line (at most one) completes, since cutting it would corrupt the UART stream.
 */
import { afterEach, expect, test } from "bun:test";
import fs from "node:fs";
import { dataFrame } from "../../../src/can/frame.ts";
import { SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { RecordedTx } from "../../helpers/tx-request.ts";
import { PtyScope } from "./harness.ts";

const scope = new PtyScope();
afterEach(() => scope.release());

test("a stalled tty: frames waiting in the write batch expire on time, none is sent late (but a partly written one)", async () => {
  const pair = await scope.pty("stall-expiry");
  const stats = new Stats();
  const { log } = memoryLogger("info");
  const backend = new SerialBackend({ path: pair.deviceA, baud: 115200, stats, log });
  scope.defer(() => backend.stop());
  await backend.start({ frame() {}, state() {}, txReady() {} });
  const deadline = performance.now() + 5000;
  while (!backend.up && performance.now() < deadline) await Bun.sleep(5);
  const reqs: RecordedTx[] = [];
  // Nobody reads the adapter end: fill until the backend has stayed full for 300 ms (bounded: 8 s).
  const t0 = performance.now();
  let fullSince = -1;
  while (performance.now() - t0 < 8000) {
    if (backend.txPending >= 64) {
      if (fullSince < 0) fullSince = performance.now();
      else if (performance.now() - fullSince > 300) break;
    } else fullSince = -1;
    for (let k = 0; k < 64; k++) {
      const r = new RecordedTx(dataFrame(0x100 + (reqs.length % 0x600), [1, 2, 3, 4, 5, 6, 7, 8], true), performance.now() + 300);
      if (backend.send(r) !== "accepted") break;
      reqs.push(r);
    }
    await Bun.sleep(0);
  }
  expect(backend.txRetries).toBeGreaterThan(0);
  await Bun.sleep(1500); // every waiting frame is now far past its expiresAt
  expect(reqs.filter((r) => r.outcome === "pending").length).toBeLessThanOrEqual(1);
  // The adapter starts reading: nothing but a partly written frame may go out now.
  const fd = fs.openSync(pair.deviceB, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  scope.defer(() => fs.closeSync(fd));
  const buf = Buffer.alloc(1 << 16);
  const until = performance.now() + 1000;
  while (performance.now() < until) {
    try {
      fs.readSync(fd, buf);
    } catch {
      // EAGAIN: nothing to read yet
    }
    await Bun.sleep(2);
  }
  const late = reqs.filter((r) => r.outcome === "sent" && r.reportedAt > r.expiresAt + 500);
  expect(late.length).toBeLessThanOrEqual(1);
  expect(reqs.filter((r) => r.outcome === "expired").length).toBeGreaterThan(30);
  expect(reqs.every((r) => r.calls <= 1)).toBe(true);
}, 20_000);
