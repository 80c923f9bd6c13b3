/**
 * Routes between buses (issue 19 item 3), the cangw model: the filter and rewrite rules as pure
 * functions, then two virtual buses in one real gateway — isolated without a route, a route with
 * filter, id rewrite and hop limit, two opposite routes that do not loop, client frames routed,
 * the route's own rate, and route_frames_total.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame, formatFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import type { Config } from "../../src/cli/config.ts";
import { startGateway, type BusSpec, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { Stats } from "../../src/ops/stats.ts";
import { parseRouteFilter, rewriteId, routeAccepts, type RouteConfig, type RouteFilter } from "../../src/route/route.ts";
import { filterText } from "../../src/route/describe.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { waitFor } from "../helpers/gateway.ts";

const f = (t: string): RouteFilter => {
  const r = parseRouteFilter(t);
  if (typeof r === "string") throw new Error(r);
  return r;
};

describe("route model", () => {
  test("filters: candump ID/MASK (or ID:MASK); 3 digits standard, 8 digits or > 0x7FF extended", () => {
    expect(f("100/700")).toEqual({ id: 0x100, mask: 0x700, extended: false });
    expect(f("1D4C/FFFF")).toEqual({ id: 0x1d4c, mask: 0xffff, extended: true });
    expect(f("00000100:1FFFFFFF")).toEqual({ id: 0x100, mask: 0x1fffffff, extended: true });
    expect(f("123")).toEqual({ id: 0x123, mask: 0x7ff, extended: false });
    expect(parseRouteFilter("zz")).toMatch(/is not ID\/MASK/);
    const std = [f("100/700")];
    expect(routeAccepts(std, dataFrame(0x1ab, []))).toBe(true);
    expect(routeAccepts(std, dataFrame(0x2ab, []))).toBe(false);
    expect(routeAccepts(std, dataFrame(0x100, [], true))).toBe(false); // extended 0x100 is another frame
    expect(routeAccepts([], dataFrame(0x7ff, []))).toBe(true);
    expect(routeAccepts([], { canId: 0x20000004, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toBe(false); // error frames never route
  });

  test("rewrite: AND, OR, XOR, then SET, as cangw; kind and RTR kept", () => {
    expect(formatFrame(rewriteId(dataFrame(0x1d4c, [1], true), { and: 0x1fffff00, or: 0x5 }))).toBe("00001D05#01");
    expect(formatFrame(rewriteId(dataFrame(0x123, [1]), { xor: 0x700 }))).toBe("623#01");
    expect(formatFrame(rewriteId(dataFrame(0x123, [1]), { set: 0x7ff, xor: 0x1 }))).toBe("7FF#01");
    expect(formatFrame(rewriteId(remoteFrame(0x123, 2), { or: 0x800 }))).toBe("123#R2"); // stays 11 bits
  });
});

let gw: Gateway | null = null;
const clients: CannelloniTestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await gw?.shutdown(200);
  gw = null;
});

function route(over: Partial<RouteConfig> & { from: string; to: string }): RouteConfig {
  return { name: `${over.from}->${over.to}`, filters: [], rewrite: null, hopLimit: 1, rate: 0, ...over };
}

async function twoBuses(routes: RouteConfig[], over: Partial<Config> = {}): Promise<{ g: Gateway; backends: VirtualBackend[]; onBus: string[][] }> {
  const base: Config = { ...defaultConfig(), backend: "virtual", clientTxRate: 0, ...over };
  const { log } = memoryLogger("warn");
  const stats = new Stats();
  const backends: VirtualBackend[] = [];
  const onBus: string[][] = [[], []];
  const specs: BusSpec[] = ["a", "b"].map((name, i) => {
    const s = i === 0 ? stats : new Stats();
    const backend = new VirtualBackend({ stats: s, log, fd: false });
    backend.observe((fr) => onBus[i]!.push(formatFrame(fr)));
    backends.push(backend);
    return { name, config: { ...base, socketcandBus: name, listen: "127.0.0.1:0" }, backend, stats: s };
  });
  gw = await startGateway(base, { stats, log, buses: specs, routes });
  return { g: gw, backends, onBus };
}

describe("routes between two virtual buses", () => {
  test("without a route the buses are isolated", async () => {
    const { g, backends, onBus } = await twoBuses([]);
    const cb = await CannelloniTestClient.connect(g.bus("b")!.port("cannelloni")!);
    clients.push(cb);
    await cb.handshake();
    await waitFor(() => g.bus("b")!.hub.size === 1, "client on b");
    for (let i = 0; i < 50; i++) backends[0]!.inject(dataFrame(0x100 + i, [i]));
    backends[1]!.inject(dataFrame(0x7ff, [0xff]));
    await cb.waitFrames(1);
    await Bun.sleep(50);
    expect(cb.frames.map(formatFrame)).toEqual(["7FF#FF"]);
    expect(onBus[1]).toEqual([]);
  });

  test("a route with filter, id rewrite and hop limit; receivers on the destination see the routed frames", async () => {
    const r = route({ from: "a", to: "b", filters: [f("100/700"), f("1D4C/FFFF")], rewrite: { or: 0x10000000 } });
    const { g, backends, onBus } = await twoBuses([r]);
    const cb = await CannelloniTestClient.connect(g.bus("b")!.port("cannelloni")!);
    clients.push(cb);
    await cb.handshake();
    await waitFor(() => g.bus("b")!.hub.size === 1, "client on b"); // routes attach to their source bus only
    backends[0]!.inject(dataFrame(0x123, [1])); // passes 100/700
    backends[0]!.inject(dataFrame(0x223, [2])); // does not
    backends[0]!.inject(dataFrame(0x1d4c, [3], true)); // passes 1D4C/FFFF
    backends[0]!.inject(dataFrame(0x11d4c, [4], true)); // passes too (mask FFFF)
    await waitFor(() => onBus[1]!.length >= 3, "3 routed frames on b");
    // or 0x10000000: on a standard id the bits above 0x7FF are cut, on an extended id it sets bit 28
    expect(onBus[1]!.slice(0, 3)).toEqual(["123#01", "10001D4C#03", "10011D4C#04"]);
    await cb.waitFrames(3);
    expect(cb.frames.slice(0, 3).map(formatFrame)).toEqual(["123#01", "10001D4C#03", "10011D4C#04"]);
    expect(g.routes[0]!.results()).toMatchObject({ routed: 3, sent: 3, dropped: 0, hop_limit: 0 });
  });

  test("two opposite routes do not loop (hop limit 1); hop limit 2 allows one bounce", async () => {
    const { g, backends, onBus } = await twoBuses([route({ from: "a", to: "b" }), route({ from: "b", to: "a" })]);
    backends[0]!.inject(dataFrame(0x10, [1]));
    backends[1]!.inject(dataFrame(0x20, [2]));
    await waitFor(() => onBus[0]!.length === 1 && onBus[1]!.length === 1, "one frame each way");
    await Bun.sleep(100);
    expect(onBus[0]).toEqual(["020#02"]);
    expect(onBus[1]).toEqual(["010#01"]);
    const [ab, ba] = g.routes;
    expect(ab!.results()).toMatchObject({ routed: 1, sent: 1, hop_limit: 1 });
    expect(ba!.results()).toMatchObject({ routed: 1, sent: 1, hop_limit: 1 });
    await gw!.shutdown(100);
    gw = null;
    const two = await twoBuses([route({ from: "a", to: "b", hopLimit: 2 }), route({ from: "b", to: "a", hopLimit: 2 })]);
    two.backends[0]!.inject(dataFrame(0x30, [3]));
    await waitFor(() => two.onBus[0]!.length === 1, "the bounce back onto a");
    await Bun.sleep(100);
    expect(two.onBus[1]).toEqual(["030#03"]);
    expect(two.onBus[0]).toEqual(["030#03"]); // back once, then the hop limit stops it
  });

  test("client frames sent on the source bus are routed too; the route's rate is its own (counted)", async () => {
    const { g, onBus } = await twoBuses([route({ from: "a", to: "b", rate: 1 })]);
    const ca = await CannelloniTestClient.connect(g.bus("a")!.port("cannelloni")!);
    clients.push(ca);
    await ca.handshake();
    await waitFor(() => g.bus("a")!.hub.size === 2, "client on a");
    ca.send(...Array.from({ length: 5 }, (_, i): CanFrame => dataFrame(0x40 + i, [i])));
    await waitFor(() => (g.routes[0]!.results().rate_limited ?? 0) >= 4, "rate limited frames");
    expect(onBus[1]).toEqual(["040#00"]); // burst of 1 at 1 frame/s
    const m = createMetrics({ stats: new Stats(), build: buildInfo(), hubGauges: () => ({ activeClients: 0, queueDepthMax: 0, queueDepthAvg: 0 }), routes: g.routes, processMetrics: false });
    const text = await m.render();
    expect(text).toContain('route_frames_total{route="a->b",result="routed"} 1');
    expect(text).toContain('route_frames_total{route="a->b",result="rate_limited"} 4');
  });
});

describe("describeRoute's words (the dashboard and GET /api/v1/routes)", () => {
  test("filters as candump ID/MASK: 3 hex digits standard, 8 extended; rewrite parts in hex", () => {
    const std = parseRouteFilter("100/700") as RouteFilter;
    const ext = parseRouteFilter("1D4C/FFFF") as RouteFilter;
    expect(filterText(std)).toBe("100/700");
    expect(filterText(ext)).toBe("00001D4C/0000FFFF");
    // what the text says parses back to the same filter
    expect(parseRouteFilter(filterText(ext))).toEqual(ext);
    expect(parseRouteFilter(filterText(std))).toEqual(std);
  });
});
