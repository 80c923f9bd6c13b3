/**
 * The virtual bus runs the backend transmit contract in memory: the bus's own observer is the
 * other end, stop()/start() take it away and bring it back. It never pushes back (a frame is on
 * the bus the moment it is sent), so the stall cases do not apply to it.
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import type { CanFrame } from "../../src/can/frame.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { recordingListener } from "../helpers/tx-request.ts";
import { type BackendFixture, isFiller, runBackendContract } from "./contract.ts";

const open: VirtualBackend[] = [];

runBackendContract({
  name: "virtual",
  carries: { rtr: true, fd: true },
  settleMs: 0,
  canStall: false,
  async open({ fd }): Promise<BackendFixture> {
    const stats = new Stats();
    const backend = new VirtualBackend({ stats, log: memoryLogger("debug").log, fd });
    open.push(backend);
    const bus: CanFrame[] = [];
    const listener = recordingListener();
    // The observer sees a frame before the backend reports it sent: the write comes first.
    backend.observe((f) => bus.push(f));
    await backend.start(listener);
    return {
      backend,
      listener,
      busFrames: () => bus.filter((f) => !isFiller(f)),
      unplug: () => backend.stop(),
      replug: () => backend.start(listener),
    };
  },
  async release() {
    for (const b of open.splice(0)) await b.stop();
  },
});
