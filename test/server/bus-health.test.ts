/**
 * Bus health through the gateway, on the host: the bit rate source (-bitrate, the interface's, the
 * backend's default) with the auto TX rate that follows, and a bus-off shown in metrics and
 * readiness as distinct from a lost link. The host kernel has no AF_CAN, so the backend here is
 * the virtual bus with a stand-in for what a can-dev interface reports over netlink (that path runs
 * for real in the VM: test/socketcan/bus-health.test.ts).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { BusHealthTracker as BusHealth } from "../../src/backends/bus-health.ts";
import { readErrorFrame } from "../../src/backends/socketcan/error-frames.ts";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { Stats } from "../../src/ops/stats.ts";
import { PROTOCOLS } from "../../src/protocols/registry.ts";

/** A virtual bus that answers interfaceBitrate() as a SocketCAN can-dev interface would. */
class InterfaceBus extends VirtualBackend {
  constructor(
    stats: Stats,
    private readonly rate: number | null,
  ) {
    super({ stats, fd: false, log: memoryLogger("info").log });
  }
  interfaceBitrate(): { bitrate: number | null; detail: string } {
    return this.rate === null ? { bitrate: null, detail: "interface kind vcan has no CAN bit timing" } : { bitrate: this.rate, detail: `ip link: ${this.rate} bit/s` };
  }
}

function quietConfig(over: Partial<Config>): Config {
  const c = { ...defaultConfig(), ...over } as Config;
  const r = c as unknown as Record<string, unknown>;
  for (const p of PROTOCOLS) r[p.configKey] = "";
  return { ...c, backend: "socketcan" } as Config;
}

let gateway: Gateway | null = null;
afterEach(async () => {
  await gateway?.shutdown(100);
  gateway = null;
});

async function start(config: Config, rate: number | null) {
  const stats = new Stats();
  const { log, lines } = memoryLogger("info");
  gateway = await startGateway(config, { stats, log, backend: new InterfaceBus(stats, rate) });
  const field = (event: string, key: string): string | undefined => {
    const line = lines.find((l) => l.includes(`"${event}"`));
    const v = line === undefined ? undefined : (JSON.parse(line) as Record<string, unknown>)[key];
    return v === undefined ? undefined : String(v);
  };
  return { stats, lines, field, gateway };
}

describe("bit rate source", () => {
  test("the interface's rate: an Ampio bus at 50 kbit/s gets its auto TX rate, not 500 kbit/s's", async () => {
    const { field, gateway: g } = await start(quietConfig({ bitrate: 0 }), 50_000);
    expect(field("bus_bitrate", "source")).toBe("interface");
    expect(field("bus_bitrate", "bitrate")).toBe("50000");
    expect(field("client_limits", "client_tx_rate")).toBe("190");
    expect(g.buses[0]!.bitrateSource).toBe("interface");
    expect(g.buses[0]!.config.bitrate).toBe(50_000);
  });

  test("-bitrate overrides the interface", async () => {
    const { field } = await start(quietConfig({ bitrate: 125_000 }), 50_000);
    expect(field("bus_bitrate", "source")).toBe("flag");
    expect(field("client_limits", "client_tx_rate")).toBe(String(Math.floor(Math.floor(125_000 / 131) / 2)));
  });

  test("no CAN bit timing (vcan): the backend's default, and the log says why", async () => {
    const { field, lines, gateway: g } = await start(quietConfig({ bitrate: 0 }), null);
    expect(field("bus_bitrate", "source")).toBe("default");
    expect(field("bus_bitrate", "bitrate")).toBe("500000");
    expect(lines.find((l) => l.includes("bus_bitrate"))).toContain("vcan");
    expect(field("client_limits", "client_tx_rate")).toBe("1908");
    expect(g.buses[0]!.bitrateSource).toBe("default");
  });
});

describe("bus-off in metrics and readiness", () => {
  test("a bus-off is not ready with its own reason; metrics carry state, classes, counters, restarts", async () => {
    const { stats, gateway: g } = await start(quietConfig({ bitrate: 0 }), null);
    const { log } = memoryLogger("info");
    // As the SocketCAN backend does in its constructor (before the metrics are created).
    const health = new BusHealth(log);
    stats.busHealth = health;
    // …and reports it as Backend.health() (what readiness, the API and the dashboard read).
    Object.assign(g.backend, { health: () => ({ state: health.state }) });
    const err = (cls: number, d: number[]) => readErrorFrame({ canId: (0x20000000 | cls) >>> 0, len: 8, data: Uint8Array.from(d), fd: false, fdFlags: 0 });
    const metrics = createMetrics({ stats, build: buildInfo(), hubGauges: () => ({ activeClients: 0, queueDepthMax: 0, queueDepthAvg: 0 }), processMetrics: false });
    expect(g.readiness().ready).toBe(true);
    health.errorFrame(err(0x4 | 0x200, [0, 0x20, 0, 0, 0, 0, 140, 7]));
    let text = await metrics.render();
    expect(text).toContain("can_bus_state 2");
    expect(text).toContain("can_bus_tx_errors 140");
    expect(text).toContain("can_bus_rx_errors 7");
    expect(text).toContain('can_bus_errors_total{class="crtl_passive"} 1');
    health.errorFrame(err(0x40, [0, 0, 0, 0, 0, 0, 0, 0]));
    text = await metrics.render();
    expect(text).toContain("can_bus_state 3");
    expect(text).toContain('can_bus_errors_total{class="busoff"} 1');
    const r = g.readiness();
    expect(r.ready).toBe(false);
    expect(r.reason).toContain("bus-off");
    expect(r.reason).not.toContain("down");
    health.errorFrame(err(0x100, [0, 0, 0, 0, 0, 0, 0, 0]));
    text = await metrics.render();
    expect(text).toContain("can_bus_state 0");
    expect(text).toContain("can_bus_restarts_total 1");
    expect(g.readiness().ready).toBe(true);
  });

  test("a backend without health exports no can_bus_* series", async () => {
    const stats = new Stats();
    const metrics = createMetrics({ stats, build: buildInfo(), hubGauges: () => ({ activeClients: 0, queueDepthMax: 0, queueDepthAvg: 0 }), processMetrics: false });
    expect(await metrics.render()).not.toMatch(/^can_bus_state /m);
  });
});
