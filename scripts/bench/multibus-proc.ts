/**
 * Benchmark harness, gateway side, for several buses (issue 19): a gateway with N virtual buses
 * in its own process, one cannelloni listener per bus, and optionally one route from bus a to
 * bus b passing 1/16 of the frames (filter 000/00F: ids ending in 0, of ids cycling 0x100..0x6ff) — the rest of the
 * protocol is gateway-harness.ts's: `run RATE COUNT` injects COUNT stamped frames at RATE on
 * every bus at once, `stats` answers a JSON line. Prints "ports P1 P2 …" once listening.
 *   bun scripts/bench/multibus-proc.ts BUSES [--route]
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { startGateway, type BusSpec } from "../../src/gateway.ts";
import { parseRouteFilter, type RouteConfig, type RouteFilter } from "../../src/route/route.ts";
import { Stats } from "../../src/ops/stats.ts";
import { benchConfig, benchRig, driveFromStdin } from "./gateway-harness.ts";

const n = Math.max(1, Number(process.argv[2] ?? 2));
const withRoute = process.argv.includes("--route") && n >= 2;
const { stats, log, backend } = benchRig();
const names = Array.from({ length: n }, (_, i) => `bus${i}`);
const backends: VirtualBackend[] = [backend];
const specs: BusSpec[] = names.map((name, i) => {
  const s = i === 0 ? stats : new Stats();
  const b = i === 0 ? backend : new VirtualBackend({ stats: s, log, fd: false });
  if (i > 0) backends.push(b);
  return { name, config: benchConfig({ socketcandBus: name }), backend: b, stats: s };
});
const filter = parseRouteFilter("000/00F") as RouteFilter;
const routes: RouteConfig[] = withRoute ? [{ name: "bus0->bus1", from: "bus0", to: "bus1", filters: [filter], rewrite: null, hopLimit: 1, rate: 0 }] : [];
const gateway = await startGateway(specs[0]!.config, { stats, log, buses: specs, routes });
process.stdout.write(`ports ${gateway.buses.map((b) => b.port("cannelloni")).join(" ")}\n`);

// Every bus gets the same frames at the same time: each `run` injects on all of them.
const everyBus = { inject: (f: Parameters<VirtualBackend["inject"]>[0]): void => backends.forEach((b) => b.inject(f)) };
await driveFromStdin(everyBus, () => ({
  dropped: gateway.buses.reduce((a, b) => a + b.stats.hubDroppedFrames, 0),
  tx: gateway.buses.reduce((a, b) => a + b.stats.tcpTxFrames, 0),
  clients: gateway.buses.reduce((a, b) => a + b.hub.size, 0),
  routed: gateway.routes.reduce((a, r) => a + r.results().sent, 0),
  routeDropped: gateway.routes.reduce((a, r) => a + r.results().dropped, 0),
  route: gateway.routes[0]?.results(),
  bus1TxDropped: gateway.buses[1] ? Object.fromEntries(gateway.buses[1].stats.txDropped) : null,
}));
await gateway.shutdown(200);
process.exit(0);
