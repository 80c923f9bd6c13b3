/**
 * The SocketCAN backend runs the backend transmit contract on a real kernel (`npm run
 * test:socketcan`): its own vcan interface, created here and taken down and up with iproute2 to
 * unplug and replug it, and candump as the independent other end of the bus. A vcan takes every
 * frame synchronously and never pushes back, so the stall cases (busy, expiry, frames waiting
 * when the link goes) are not run here: tx-queue.test.ts covers them with a scripted device.
 * Needs root inside the VM (link changes); skipped, with a notice, elsewhere.
 */
import { afterAll, beforeAll } from "bun:test";
import { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { formatFrame } from "../../src/can/frame.ts";
import { type RecordingListener, recordingListener } from "../helpers/tx-request.ts";
import { type BackendFixture, FILLER_ID_BASE, isFiller, runBackendContract } from "../backends/contract.ts";
import { CAN_MANAGE_LINKS, Candump, cansend, noteSkipped, run, until } from "./vcan.ts";

noteSkipped();

const IFACE = "vcan3";
const open: { backend: SocketCanBackend; dumps: Candump[] }[] = [];

/** Resolves once the backend's receive worker delivers frames (a filler frame sent with cansend). */
async function workerRunning(listener: RecordingListener): Promise<void> {
  const probe = `${(FILLER_ID_BASE + 1).toString(16).toUpperCase()}#01`;
  const seen = () => listener.frames.some((f) => formatFrame(f) === probe);
  const deadline = Date.now() + 10_000;
  while (!seen()) {
    if (Date.now() > deadline) throw new Error("the receive worker never delivered the probe frame");
    cansend(IFACE, probe);
    await Bun.sleep(50);
  }
}

if (CAN_MANAGE_LINKS) {
  beforeAll(() => {
    Bun.spawnSync(["ip", "link", "del", IFACE], { stderr: "ignore" });
    run("ip", "link", "add", "dev", IFACE, "type", "vcan");
    run("ip", "link", "set", IFACE, "mtu", "72", "up");
  });
  afterAll(() => {
    Bun.spawnSync(["ip", "link", "del", IFACE], { stderr: "ignore" });
  });

  runBackendContract({
    name: "socketcan (vcan, real kernel)",
    carries: { rtr: true, fd: true },
    settleMs: 100,
    canStall: false,
    async open({ fd }): Promise<BackendFixture> {
      run("ip", "link", "set", IFACE, "up");
      // candump exits when the link goes down: a new one is started after each replug.
      const dumps = [await Candump.start(IFACE)];
      const backend = new SocketCanBackend({
        iface: IFACE,
        fd,
        stats: new Stats(),
        log: memoryLogger("debug").log,
        reconnect: { initialMs: 20, maxMs: 100, factor: 2 },
      });
      open.push({ backend, dumps });
      const listener = recordingListener();
      await backend.start(listener);
      // sent() waits for the kernel's transmit confirmation, which the receive worker brings in:
      // make sure it runs (a slow VM takes a while to start it) before frames are timed against
      // candump. A filler frame from cansend is left out of busFrames().
      await workerRunning(listener);
      return {
        backend,
        listener,
        busFrames: () => dumps.flatMap((d) => d.frames()).filter((f) => !isFiller(f)),
        unplug: async () => {
          run("ip", "link", "set", IFACE, "down");
          await until(() => !backend.up, "backend down");
        },
        replug: async () => {
          run("ip", "link", "set", IFACE, "up");
          await until(() => backend.up, "backend up");
          dumps.push(await Candump.start(IFACE));
          await workerRunning(listener);
        },
      };
    },
    async release() {
      for (const { backend, dumps } of open.splice(0)) {
        await backend.stop();
        for (const d of dumps) d.stop();
      }
    },
  });
}
