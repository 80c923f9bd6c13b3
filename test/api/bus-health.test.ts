/**
 * What a backend reports of its controller's health reaches GET /api/v1/buses/{bus}: error state,
 * counters, and the bit rate it really runs at (used for the load unless -bitrate says otherwise).
 * No backend on this machine can report a controller (SocketCAN health needs a real can-dev
 * device; vcan has none), so a virtual backend that also reports a fixed BusHealth stands in for
 * one — a test double, said so here; the rest (gateway, HTTP endpoint, API) is real.
 */
import { afterEach, expect, test } from "bun:test";
import type { BusHealth } from "../../src/backends/backend.ts";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startOperations, type Operations } from "../../src/ops/operations.ts";
import { Stats } from "../../src/ops/stats.ts";
import { apiClient } from "../helpers/api-client.ts";

class ReportingBackend extends VirtualBackend {
  report: BusHealth | null = null;
  health(): BusHealth | null {
    return this.report;
  }
}

let stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.reverse()) await s();
  stops = [];
});

async function start(overrides: Partial<Config>): Promise<{ backend: ReportingBackend; call: ReturnType<typeof apiClient> }> {
  const config: Config = { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", metricsAddr: "127.0.0.1:0", ...overrides };
  const stats = new Stats();
  const { log } = memoryLogger("info");
  const backend = new ReportingBackend({ stats, log, fd: false });
  const gateway: Gateway = await startGateway(config, { stats, log, backend });
  stops.push(() => gateway.shutdown(200));
  const ops: Operations = await startOperations(config, { gateway, stats, log, build: buildInfo(), counters: new ConsumerCounters() });
  stops.push(() => ops.stop());
  const doc = (await (await fetch(`http://127.0.0.1:${ops.httpPort}/api/v1/openapi.json`)).json()) as Record<string, unknown>;
  return { backend, call: apiClient(ops.httpPort!, () => doc) };
}

test("a backend's health report: error state, counters, the controller's bit rate", async () => {
  const { backend, call } = await start({});
  expect((await call("GET", "/api/v1/buses/can0")).body).toMatchObject({ error_state: null, health: null, bitrate: 1_000_000, bitrate_source: "assumed" });
  backend.report = { state: "error-passive", txErrors: 128, rxErrors: 3, restarts: 1, busOff: 1, errorFrames: { ack: 40 }, bitrate: 50_000 };
  const b = (await call("GET", "/api/v1/buses/can0")).body;
  expect(b).toMatchObject({
    error_state: "error-passive",
    health: { state: "error-passive", tx_errors: 128, rx_errors: 3, restarts: 1, bus_off: 1, error_frames: { ack: 40 } , bitrate: 50_000 },
    bitrate: 50_000,
    bitrate_source: "controller",
  });
  const list = (await call("GET", "/api/v1/buses")).body as { buses: { error_state: string }[] };
  expect(list.buses[0]!.error_state).toBe("error-passive");
});

test("-bitrate wins over what the controller reports", async () => {
  const { backend, call } = await start({ bitrate: 125_000 });
  backend.report = { state: "error-active", bitrate: 50_000 };
  expect((await call("GET", "/api/v1/buses/can0")).body).toMatchObject({ error_state: "error-active", bitrate: 125_000, bitrate_source: "configured" });
});
