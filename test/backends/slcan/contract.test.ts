/**
 * The slcan backend runs the backend transmit contract over real kernel ttys: a socat pty pair,
 * end `a` for the backend, end `b` played by a scripted Lawicel adapter
 * (test/helpers/lawicel-device.ts: answers commands, acknowledges frames, parses frame lines
 * with its own parser). Stalling is real back-pressure: the adapter stops reading, fillers fill
 * the pty and socat buffers until fs.writeSync hits EAGAIN. Unplugging kills socat.
 */
import { createSlcanBackend } from "../../../src/backends/slcan/slcan-backend.ts";
import { LawicelDevice } from "../../helpers/lawicel-device.ts";
import { runBackendContract } from "../contract.ts";
import { PtyScope, ptyContractFixture } from "../serial/harness.ts";

const scope = new PtyScope();

runBackendContract({
  name: "slcan (pty, scripted Lawicel adapter)",
  carries: { rtr: true, fd: false },
  settleMs: 50,
  canStall: true,
  open: () =>
    ptyContractFixture(scope, {
      name: "slcan-contract",
      backend: (o) => createSlcanBackend({ ...o, baud: 115200, bitrate: 500_000 }),
      adapter: (fd) => new LawicelDevice(fd),
      adapterOpen: (device) => device.open,
    }),
  release: () => scope.release(),
});
