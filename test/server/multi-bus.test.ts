/**
 * Several buses in one gateway (issue 19 items 1, 2): the issue's example configuration composed
 * on this host with virtual buses (the VM test runs it on two vcan interfaces), buses isolated
 * from each other without a route, frames carrying their bus, per-bus readiness and metrics
 * with a `bus` label. Real listeners on loopback, real cannelloni clients.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame, type StampedFrame } from "../../src/can/frame.ts";
import { loadConfiguration } from "../../src/cli/config-file.ts";
import { startGateway, type BusSpec, type Gateway } from "../../src/gateway.ts";
import type { HubClient } from "../../src/hub/hub.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { Stats } from "../../src/ops/stats.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { frameText, waitFor } from "../helpers/gateway.ts";
import { ISSUE_EXAMPLE } from "../helpers/config-examples.ts";

/** The example with virtual backends and ephemeral loopback ports (the real ports may be taken here). */
const EXAMPLE_ON_HOST = ISSUE_EXAMPLE.replaceAll('backend = "socketcan"', 'backend = "virtual"')
  .replaceAll('metrics-addr = "127.0.0.1:9100"', 'metrics-addr = ""')
  .replace(/"(:\d+)"/g, '"127.0.0.1:0"');

/** A hub client that keeps every frame it is given. */
function collector(id: number): HubClient & { frames: StampedFrame[] } {
  const frames: StampedFrame[] = [];
  return { id, protocol: "test", remote: "test", receiving: true, queued: 0, dropped: 0, frames, accepts: () => true, enqueue: (f) => (frames.push(f), true), kick: () => {} };
}

let gw: Gateway | null = null;
const clients: CannelloniTestClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await gw?.shutdown(200);
  gw = null;
});

async function startFromFile(text: string): Promise<{ gateway: Gateway; backends: VirtualBackend[]; stats: Stats[]; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "multibus-"));
  const path = join(dir, "can-server.toml");
  writeFileSync(path, text);
  const conf = loadConfiguration(["-config", path], {});
  rmSync(dir, { recursive: true, force: true });
  const { log, lines } = memoryLogger("debug");
  const stats = new Stats();
  const backends: VirtualBackend[] = [];
  const specs: BusSpec[] = conf.buses.map((b, i) => {
    const s = i === 0 ? stats : new Stats();
    const backend = new VirtualBackend({ stats: s, log, fd: b.config.fd });
    backends.push(backend);
    return { name: b.name, config: b.config, backend, stats: s };
  });
  const gateway = await startGateway(conf.config, { stats, log, buses: specs });
  gw = gateway;
  return { gateway, backends, stats: specs.map((s) => s.stats), lines };
}

describe("several buses", () => {
  test("the issue's example composes: each bus its backend and listeners, socketcand once", async () => {
    const { gateway } = await startFromFile(EXAMPLE_ON_HOST);
    expect(gateway.buses.map((b) => [b.name, b.index, b.backend.kind])).toEqual([
      ["can0", 0, "virtual"],
      ["can1", 1, "virtual"],
    ]);
    expect(gateway.buses[0]!.listeners.map((l) => l.protocol.name).sort()).toEqual(["cannelloni", "socketcand", "waveshare"]);
    expect(gateway.buses[1]!.listeners.map((l) => l.protocol.name).sort()).toEqual(["cannelloni", "waveshare"]);
    expect(gateway.bus("can1")!.port("cannelloni")).toBeGreaterThan(0);
    expect(gateway.bus("can1")!.port("cannelloni")).not.toBe(gateway.bus("can0")!.port("cannelloni"));
    // the Ampio bus runs at its bit rate: TX limits follow it (50 kbit/s: 191 frames/s → 95)
    expect(gateway.buses[0]!.config.bitrate).toBe(50000);
    expect(gateway.readiness()).toEqual({ ready: true, reason: "" });
  });

  test("two buses are isolated: a frame on one never reaches the other's clients; frames carry their bus", async () => {
    const { gateway, backends } = await startFromFile(EXAMPLE_ON_HOST);
    const [b0, b1] = gateway.buses;
    const c0 = await CannelloniTestClient.connect(b0!.port("cannelloni")!);
    const c1 = await CannelloniTestClient.connect(b1!.port("cannelloni")!);
    clients.push(c0, c1);
    await c0.handshake();
    await c1.handshake();
    await waitFor(() => b0!.hub.size === 1 && b1!.hub.size === 1, "both clients attached");
    const k0 = collector(9000);
    const k1 = collector(9001);
    b0!.hub.attach(k0);
    b1!.hub.attach(k1);
    const onBus1: string[] = [];
    backends[1]!.observe((f) => onBus1.push(frameText([f])[0]!));
    const onBus0: string[] = [];
    backends[0]!.observe((f) => onBus0.push(frameText([f])[0]!));

    backends[0]!.inject(dataFrame(0x100, [1]));
    backends[1]!.inject(dataFrame(0x200, [2]));
    await c0.waitFrames(1);
    await c1.waitFrames(1);
    // a client frame goes to its own bus only
    c1.send(dataFrame(0x300, [3]));
    await waitFor(() => onBus1.length === 1, "the frame on bus can1");
    await Bun.sleep(50);
    expect(frameText(c0.frames)).toEqual(["100#01"]);
    expect(frameText(c1.frames)).toEqual(["200#02"]);
    expect(onBus0).toEqual([]);
    expect(onBus1).toEqual(["300#03"]);
    expect(k0.frames.map((f) => [frameText([f])[0], f.bus])).toEqual([["100#01", 0]]);
    expect(k1.frames.map((f) => [frameText([f])[0], f.bus])).toEqual([
      ["200#02", 1],
      ["300#03", 1], // the echo of c1's frame, to the other clients of can1
    ]);
  });

  test("/ready names the bus that is down; the other keeps working", async () => {
    const { gateway, backends } = await startFromFile(EXAMPLE_ON_HOST);
    await backends[1]!.stop();
    expect(gateway.readiness()).toEqual({ ready: false, reason: "bus can1: backend virtual down: virtual bus stopped" });
    expect(gateway.buses[0]!.readiness().ready).toBe(true);
  });

  test("metrics: one series per bus with a bus label; process-wide series once", async () => {
    const { gateway, backends, stats } = await startFromFile(EXAMPLE_ON_HOST);
    backends[0]!.inject(dataFrame(0x1, [1]));
    backends[0]!.inject(dataFrame(0x2, [1]));
    backends[1]!.inject(dataFrame(0x3, [1]));
    await backends[1]!.stop();
    const m = createMetrics({
      stats: stats[0]!,
      build: buildInfo(),
      hubGauges: () => ({ activeClients: 0, queueDepthMax: 0, queueDepthAvg: 0 }),
      buses: gateway.buses.map((b) => ({ name: b.name, stats: b.stats, hubGauges: () => ({ activeClients: b.hub.size, queueDepthMax: 0, queueDepthAvg: 0 }) })),
      processMetrics: false,
    });
    const text = await m.render();
    expect(text).toContain('virtual_rx_frames_total{bus="can0"} 2');
    expect(text).toContain('virtual_rx_frames_total{bus="can1"} 1');
    expect(text).toContain('backend_up{bus="can0"} 1');
    expect(text).toContain('backend_up{bus="can1"} 0');
    expect(text).toContain('client_tx_dropped_total{bus="can1",reason="rate_limited"} 0');
    expect(text).toContain('protocol_clients{bus="can0",protocol="cannelloni"} 0');
    expect(text).toMatch(/\nhttp_rejected_requests_total 0\n/);
    expect(text).toContain('clients_rejected_total{reason="max_clients"} 0');
  });

  test("one bus: the series are go-ampio-server's, without a bus label", async () => {
    const stats = new Stats();
    stats.backendUp = true;
    stats.socketcanRxFrames = 5;
    const m = createMetrics({ stats, build: buildInfo(), hubGauges: () => ({ activeClients: 3, queueDepthMax: 1, queueDepthAvg: 0.5 }), processMetrics: false });
    const text = await m.render();
    expect(text).toMatch(/\nsocketcan_rx_frames_total 5\n/);
    expect(text).toMatch(/\nbackend_up 1\n/);
    expect(text).toMatch(/\nhub_active_clients 3\n/);
    expect(text).toContain('errors_total{where="tcp_read"} 0');
    expect(text).not.toContain("bus=");
  });

  test("a bus that cannot start stops the buses already started", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const free = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const freePort = free.port;
    free.stop(true);
    try {
      const text = EXAMPLE_ON_HOST.replace('listen = "127.0.0.1:0"', `listen = "127.0.0.1:${freePort}"`).replace('listen = "127.0.0.1:0"\nwaveshare-listen = "127.0.0.1:0"\n\n[[route]]', `listen = "127.0.0.1:${taken.port}"\nwaveshare-listen = "127.0.0.1:0"\n\n[[route]]`);
      await expect(startFromFile(text)).rejects.toThrow();
      gw = null;
      // bus can0's listener was closed again: its port can be bound
      const again = Bun.listen({ hostname: "127.0.0.1", port: freePort, socket: { data() {} } });
      again.stop(true);
    } finally {
      taken.stop(true);
    }
  });
});
