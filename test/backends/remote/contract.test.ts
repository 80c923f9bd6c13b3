/**
 * The remote backends (cannelloni-client, socketcand-client) run the backend transmit contract
 * against a real far end: a can-server process (`bun src/main.ts -backend virtual`) serving its
 * virtual bus on its cannelloni and socketcand listeners. What reached the far bus is read by an
 * independent cannelloni client on the far gateway (test/helpers/cannelloni-client.ts: the far
 * gateway echoes every frame from the tunnel to its other clients). Unplugging kills the far
 * process; replugging starts it again on the same ports. The stall cases (TCP pushing back) run in
 * contract-stall.test.ts, against a far end that can stop reading.
 */
import { RemoteBackend, type RemoteWire } from "../../../src/backends/remote/remote-backend.ts";
import { cannelloniClientWire } from "../../../src/backends/remote/cannelloni-wire.ts";
import { socketcandClientWire } from "../../../src/backends/remote/socketcand-wire.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { CannelloniTestClient } from "../../helpers/cannelloni-client.ts";
import { type GatewayProcess, startGatewayProcess } from "../../helpers/gateway-process.ts";
import { waitFor } from "../../helpers/pty.ts";
import { recordingListener } from "../../helpers/tx-request.ts";
import { type BackendFixture, isFiller, runBackendContract } from "../contract.ts";

const cleanups: (() => Promise<unknown> | void)[] = [];

async function farGateway(ports?: { cannelloni: number; socketcand: number }): Promise<GatewayProcess> {
  const g = await startGatewayProcess([
    "-fd",
    "-listen",
    `127.0.0.1:${ports?.cannelloni ?? 0}`,
    "-socketcand-listen",
    `127.0.0.1:${ports?.socketcand ?? 0}`,
    "-socketcand-bus",
    "far0",
    // The tunnel is one client of the far gateway: no per-client rate limit in the way of the suite.
    "-client-tx-rate",
    "0",
  ]);
  return g;
}

/** The far gateway has taken both the observer and the tunnel as ready clients (frames reach the observer). */
async function bothReady(far: GatewayProcess): Promise<void> {
  await waitFor(() => far.lines.filter((l) => l.msg === "client_ready").length >= 2, 10_000, "observer and tunnel ready on the far gateway");
}

function remoteContract(name: string, wire: (stats: Stats) => RemoteWire, port: (g: GatewayProcess) => number, carries: { rtr: boolean; fd: boolean }): void {
  runBackendContract({
    name,
    carries,
    settleMs: 50,
    canStall: false,
    async open({ fd }): Promise<BackendFixture> {
      let far = await farGateway();
      const ports = { cannelloni: far.ports.cannelloni!, socketcand: far.ports.socketcand! };
      let observer = await CannelloniTestClient.connect(ports.cannelloni);
      await observer.handshake();
      const seen = observer.frames;
      const stats = new Stats();
      const backend = new RemoteBackend({
        host: "127.0.0.1",
        port: port(far),
        wire: wire(stats),
        fd,
        stats,
        log: memoryLogger("debug").log,
        reconnect: { initialMs: 20, maxMs: 200, factor: 2 },
      });
      const listener = recordingListener();
      await backend.start(listener);
      cleanups.push(async () => {
        await backend.stop();
        observer.close();
        await far.stop();
      });
      await waitFor(() => backend.up, 10_000, "backend up");
      await bothReady(far);
      return {
        backend,
        listener,
        busFrames: () => seen.filter((f) => !isFiller(f)),
        unplug: async () => {
          observer.close();
          await far.stop();
          await waitFor(() => !backend.up, 10_000, "backend down");
        },
        replug: async () => {
          far = await farGateway(ports);
          observer = await CannelloniTestClient.connect(ports.cannelloni);
          await observer.handshake();
          // The suite reads one list of bus frames across the replug.
          observer.onReceive = (frames) => {
            seen.push(...frames);
            frames.length = 0;
          };
          await waitFor(() => backend.up, 10_000, "backend up");
          await bothReady(far);
        },
      };
    },
    async release() {
      for (const c of cleanups.splice(0).reverse()) await c();
    },
  });
}

remoteContract("cannelloni-client (far can-server over loopback)", () => cannelloniClientWire, (g) => g.ports.cannelloni!, { rtr: false, fd: true });
remoteContract("socketcand-client (far can-server's socketcand listener over loopback)", (stats) => socketcandClientWire("far0", stats), (g) => g.ports.socketcand!, { rtr: false, fd: false });
