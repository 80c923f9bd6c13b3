/**
 * The slcan backend runs the backend transmit contract over real kernel ttys: a socat pty pair,
 * end `a` for the backend, end `b` played by a scripted Lawicel adapter
 * (test/helpers/lawicel-device.ts: answers commands, acknowledges frames, parses frame lines
 * with its own parser). Stalling is real back-pressure: the adapter stops reading, fillers fill
 * the pty and socat buffers until fs.writeSync hits EAGAIN. Unplugging kills socat.
 */
import { createSlcanBackend } from "../../../src/backends/slcan/slcan-backend.ts";
import { dataFrame } from "../../../src/can/frame.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { LawicelDevice } from "../../helpers/lawicel-device.ts";
import { waitFor } from "../../helpers/pty.ts";
import { recordingListener, TxLog } from "../../helpers/tx-request.ts";
import { type BackendFixture, FILLER_ID_BASE, isFiller, runBackendContract } from "../contract.ts";
import { PtyScope } from "../serial/harness.ts";

const scope = new PtyScope();

runBackendContract({
  name: "slcan (pty, scripted Lawicel adapter)",
  carries: { rtr: true, fd: false },
  settleMs: 50,
  canStall: true,
  async open(): Promise<BackendFixture> {
    const pair = await scope.pty("slcan-contract");
    const stats = new Stats();
    const { log } = memoryLogger("debug");
    const backend = createSlcanBackend({ path: pair.deviceA, baud: 115200, bitrate: 500_000, stats, log, reconnect: { initialMs: 10, maxMs: 100, factor: 2 } });
    const device = new LawicelDevice(scope.peer(pair.deviceB));
    scope.defer(() => device.close());
    const listener = recordingListener();
    await backend.start(listener);
    scope.defer(() => backend.stop());
    await waitFor(() => device.open, 5000, "the adapter opened by the backend");
    let filler = 0;
    return {
      backend,
      listener,
      busFrames: () => {
        if (device.error) throw new Error(device.error);
        return device.frames.filter((f) => !isFiller(f));
      },
      unplug: async () => {
        await pair.kill();
        await waitFor(() => !backend.up, 5000, "backend down");
      },
      replug: async () => {
        await pair.recreate();
        device.reopen(scope.peer(pair.deviceB));
        await waitFor(() => backend.up && device.open, 5000, "backend up and the adapter opened again");
      },
      stall: async () => {
        device.paused = true;
        const fills = new TxLog();
        const deadline = Date.now() + 20_000;
        while (backend.txRetries === 0 || fills.with("pending").length === 0) {
          if (Date.now() > deadline) throw new Error("the pty never filled up");
          for (let i = 0; i < 8; i++) {
            if (backend.send(fills.request(dataFrame(FILLER_ID_BASE + (filler++ & 0xffff), [1, 2, 3, 4, 5, 6, 7, 8]))) !== "accepted") break;
          }
          await Bun.sleep(1);
        }
      },
      unstall: async () => {
        device.paused = false;
      },
    };
  },
  release: () => scope.release(),
});
