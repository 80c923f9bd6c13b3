/**
 * Client protocols side by side in one run: bus → client latency (p50/p99) and delivered frames/s
 * for cannelloni TCP, slcan, GVRET, canlogserver and cannelloni UDP. For each scenario and
 * protocol a fresh gateway process (scripts/bench/protocols-gateway.ts, every listener on
 * loopback) injects stamped 8-byte frames on the virtual bus; ONE client of that protocol (the
 * test client libraries of test/helpers/, which decode the protocol independently) timestamps
 * each received chunk. Part of `npm run bench` (section "protocols" of BENCHMARKS.md); alone:
 *
 *   bun scripts/bench-protocols.ts [--quick] [--json]
 */
import type { CanFrame } from "../src/can/frame.ts";
import { CanlogserverTestClient } from "../test/helpers/canlogserver-client.ts";
import { CannelloniUdpPeer } from "../test/helpers/cannelloni-udp-peer.ts";
import { GvretTestClient } from "../test/helpers/gvret-client.ts";
import { SlcanTestClient } from "../test/helpers/slcan-client.ts";
import { GatewayChild } from "./bench/gateway-child.ts";
import { busScenarios, connectStampedClients, percentile, type Scenario, sortedLatencies } from "./bench/measure.ts";

const quick = process.argv.includes("--quick");
const json = process.argv.includes("--json");

export const BENCH_PROTOCOLS = ["cannelloni", "slcan", "gvret", "canlogserver", "cannelloni-udp"] as const;
type BenchProtocol = (typeof BENCH_PROTOCOLS)[number];

const SCENARIOS = busScenarios(quick);

export interface ProtocolRow {
  protocol: BenchProtocol;
  scenario: string;
  injected: number;
  delivered: number;
  deliveredPerSec: number;
  p50: number;
  p99: number;
  max: number;
  dropped: number;
  cpuPercent: number;
}

interface StampedClient {
  readonly frames: CanFrame[];
  readonly receipts: number[];
  close(): void;
}

async function connect(protocol: BenchProtocol, ports: Record<BenchProtocol, number>, peer: CannelloniUdpPeer): Promise<StampedClient> {
  switch (protocol) {
    case "cannelloni":
      return (await connectStampedClients(ports.cannelloni, 1))[0]!;
    case "slcan": {
      const c = await SlcanTestClient.connect(ports.slcan);
      await c.open(8);
      await Bun.sleep(100);
      c.stampReceipts = true;
      return c;
    }
    case "gvret": {
      const c = await GvretTestClient.connect(ports.gvret);
      await c.openLikeSavvyCan();
      await Bun.sleep(100);
      c.stampReceipts = true;
      return c;
    }
    case "canlogserver": {
      const c = await CanlogserverTestClient.connect(ports.canlogserver);
      await Bun.sleep(100);
      c.stampReceipts = true;
      return c;
    }
    case "cannelloni-udp":
      peer.stampReceipts = true;
      return peer;
  }
}

async function measure(protocol: BenchProtocol, sc: Scenario): Promise<ProtocolRow> {
  const peer = await CannelloniUdpPeer.bind();
  const child = new GatewayChild([process.execPath, "scripts/bench/protocols-gateway.ts", String(peer.port), "100000"]);
  try {
    const ports = JSON.parse(await child.next()) as Record<BenchProtocol, number>;
    const client = await connect(protocol, ports, peer);
    const t0 = performance.now();
    await child.ask(`run ${sc.rate} ${sc.count}`, 180_000);
    const deadline = Date.now() + 30_000;
    // UDP on loopback may lose datagrams at full speed: stop waiting once nothing more arrives.
    let last = -1;
    let still = 0;
    while (client.frames.length < sc.count && Date.now() < deadline && still < 200) {
      await Bun.sleep(5);
      still = client.frames.length === last ? still + 1 : 0;
      last = client.frames.length;
    }
    // Up to the last frame received (not the end of the wait, which may include the loss timeout).
    const lastAt = client.receipts.length ? client.receipts[client.receipts.length - 1]! - performance.timeOrigin : performance.now();
    const elapsed = (lastAt - t0) / 1000;
    const st = await child.stats<{ dropped: number; cpuPercent: number }>();
    client.close();
    if (client !== peer) peer.close();
    const sorted = sortedLatencies([client]);
    return {
      protocol,
      scenario: sc.name,
      injected: sc.count,
      delivered: client.frames.length,
      deliveredPerSec: client.frames.length / elapsed,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      dropped: st.dropped,
      cpuPercent: st.cpuPercent,
    };
  } finally {
    await child.stop();
  }
}

export function protocolsTable(rows: readonly ProtocolRow[]): string {
  return [
    "| scenario | protocol | delivered / injected | delivered frames/s | p50 ms | p99 ms | max ms | hub drops | gateway CPU % |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.protocol} | ${r.delivered} / ${r.injected} | ${Math.round(r.deliveredPerSec).toLocaleString("en-US")} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.max.toFixed(2)} | ${r.dropped} | ${r.cpuPercent.toFixed(0)} |`,
    ),
  ].join("\n");
}

if (import.meta.main) {
  const rows: ProtocolRow[] = [];
  for (const sc of SCENARIOS) {
    for (const p of BENCH_PROTOCOLS) {
      const r = await measure(p, sc);
      rows.push(r);
      process.stderr.write(
        `${sc.name.padEnd(32)} ${p.padEnd(15)} delivered=${r.delivered}/${r.injected} ${Math.round(r.deliveredPerSec)} f/s p50=${r.p50.toFixed(3)}ms p99=${r.p99.toFixed(3)}ms max=${r.max.toFixed(2)}ms cpu=${r.cpuPercent.toFixed(0)}%\n`,
      );
    }
  }
  if (json) console.log(JSON.stringify(rows));
  else console.log(protocolsTable(rows));
  process.exit(0);
}
