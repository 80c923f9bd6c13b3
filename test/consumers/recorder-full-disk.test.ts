/**
 * `-record` on a full disk, on a real full file system: the test mounts a 256 KiB tmpfs (root
 * only; this machine's tests run as root), puts two earlier recordings on it, fills the rest, and
 * records into it. Nothing can be written, so nothing may be left behind either: before, every
 * retry left an empty file, and rotation counted those against the real recordings (deleting
 * them). Once space is freed, recording resumes and the earlier recordings are still there.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { Recorder } from "../../src/consumers/recorder.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startTestGateway } from "../helpers/gateway.ts";

const mnt = mkdtempSync(join(tmpdir(), "recorder-full-"));
const isRoot = process.getuid?.() === 0;
let mounted = false;
if (isRoot) mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs", mnt]).exitCode === 0;
afterAll(() => {
  if (mounted) Bun.spawnSync(["umount", mnt]);
  rmSync(mnt, { recursive: true, force: true });
});

/** Writes zeros until the file system says ENOSPC. */
function fillUp(file: string): void {
  const fd = openSync(file, "w");
  const block = new Uint8Array(4096);
  try {
    for (;;) writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  } finally {
    closeSync(fd);
  }
}

describe("recorder on a full disk (a 256 KiB tmpfs mounted by the test)", () => {
  test.skipIf(!mounted)("records nothing, leaves no file behind, keeps the earlier recordings; resumes once there is space", async () => {
    const dir = join(mnt, "rec");
    Bun.spawnSync(["mkdir", "-p", dir]);
    const earlier = ["can-server-20260101-000000-000.log", "can-server-20260101-010000-000.log"];
    for (const f of earlier) writeFileSync(join(dir, f), "(1767225600.000000) can0 123#11 R\n");
    fillUp(join(mnt, "filler"));
    const gw = await startTestGateway();
    const counters = new ConsumerCounters();
    const { log, lines } = memoryLogger("debug");
    const recorder = new Recorder({ id: gw.gateway.registry.allocateId(), dir, ifaces: ["can0"], maxBytes: 1 << 20, maxFiles: 3, maxAgeMs: 0, counters, log, flushMs: 10 });
    await recorder.start();
    gw.gateway.hub.attach(recorder);
    try {
      // Frames for 3.5 s: the first write and two retries (back-off 1 s, then 2 s) all fail.
      const t0 = Date.now();
      let sent = 0;
      while (Date.now() - t0 < 3500) {
        gw.backend.inject(dataFrame(0x100 + (sent++ % 0x100), [1, 2, 3, 4, 5, 6, 7, 8]));
        await Bun.sleep(20);
      }
      await Bun.sleep(100);
      const opened = lines.map((l) => JSON.parse(l) as { msg: string }).filter((e) => e.msg === "recorder_file").length;
      expect(opened).toBeGreaterThanOrEqual(2);
      // No litter: only the earlier recordings, untouched.
      expect(readdirSync(dir).sort()).toEqual(earlier);
      for (const f of earlier) expect(statSync(join(dir, f)).size).toBeGreaterThan(0);
      expect(counters.byKind.recorder.frames).toBe(0);
      expect(counters.byKind.recorder.dropped).toBe(sent);
      const errors = lines.map((l) => JSON.parse(l) as { msg: string; reason?: string }).filter((e) => e.msg === "recorder_error");
      expect(errors.map((e) => e.reason)).toEqual(["disk full"]);

      // Space again: after the back-off the next frames are written, beside the earlier files.
      rmSync(join(mnt, "filler"));
      const deadline = Date.now() + 8000;
      while (counters.byKind.recorder.frames < 5 && Date.now() < deadline) {
        gw.backend.inject(dataFrame(0x200, [2]));
        await Bun.sleep(50);
      }
      expect(counters.byKind.recorder.frames).toBeGreaterThanOrEqual(5);
      const now = readdirSync(dir).sort();
      expect(now.length).toBe(3);
      expect(now.slice(0, 2)).toEqual(earlier);
      expect(recorder.lastError).toBe("");
    } finally {
      gw.gateway.hub.detach(recorder);
      await recorder.stop();
      await gw.stop();
    }
  }, 20_000);
});
