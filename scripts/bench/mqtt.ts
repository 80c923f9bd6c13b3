/**
 * MQTT bridge benchmark: the same load with the bridge off and on, side by side. A real
 * Mosquitto on loopback (Debian's, as the tests use), a gateway in its own process (this file
 * with --gateway: virtual bus + consumers as main.ts wires them, driven by gateway-harness.ts),
 * one cannelloni client and one MQTT subscriber (mqtt.js, subscribed to <prefix>/raw/#) in this
 * process. Each frame carries
 * its injection time (stampSendTime), so latency is injection → the subscriber has the message
 * (and → the cannelloni client has the frame, to show the bridge does not slow TCP clients).
 * Rates: the Ampio bus maximum (382 frames/s) and a saturated 1 Mbit/s bus (~9,000 frames/s of
 * 8-byte extended frames). Every loop is bounded in count and time; the whole run is ~40 s.
 *
 *   bun scripts/bench/mqtt.ts            # prints the table
 *   bun scripts/bench/mqtt.ts --json     # rows as JSON (npm run bench uses this)
 */
import mqtt from "mqtt";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { createConsumers } from "../../src/consumers/consumers.ts";
import { startGateway } from "../../src/gateway.ts";
import { Mosquitto } from "../../test/consumers/harness.ts";
import { benchConfig, benchRig, driveFromStdin } from "./gateway-harness.ts";
import { GatewayChild } from "./gateway-child.ts";
import { connectStampedClients, nowMs, percentile, sentAt, sortedLatencies, stampSendTime } from "./measure.ts";

const PREFIX = "bench";

// --- Gateway side (--gateway URL|off) -----------------------------------------------------------

async function gatewayMain(url: string): Promise<void> {
  const { stats, log, backend } = benchRig();
  const config = benchConfig({ hubBuffer: 100_000, mqttUrl: url === "off" ? "" : url, mqttPrefix: PREFIX });
  const consumers = createConsumers(config, log);
  const gateway = await startGateway(config, { stats, log, backend, initialFrames: consumers.initialFrames });
  await consumers.start(gateway);
  const bridge = consumers.bridge();
  const deadline = Date.now() + 5000;
  while (bridge !== null && !bridge.connected && Date.now() < deadline) await Bun.sleep(10);
  process.stdout.write(`port ${gateway.port("cannelloni")}\n`);
  const frame = (seq: number): CanFrame => {
    const data = new Uint8Array(8);
    stampSendTime(data);
    return dataFrame(0x1000 + (seq % 64), data, true);
  };
  await driveFromStdin(
    backend,
    () => ({ hubDropped: stats.hubDroppedFrames, mqttPublished: bridge?.counters().published ?? 0, mqttDropped: bridge?.droppedTotal() ?? 0 }),
    { frame, maxRunMs: 60_000 },
  );
  await consumers.stop();
  await gateway.shutdown(200);
  process.exit(0);
}

// --- Driver -------------------------------------------------------------------------------------

export interface MqttBenchRow {
  scenario: string;
  bridge: "off" | "on";
  injected: number;
  tcpDelivered: number;
  tcpP50: number;
  tcpP99: number;
  mqttReceived: number;
  mqttPerSec: number;
  mqttP50: number;
  mqttP99: number;
  mqttDropped: number;
  hubDropped: number;
  cpuPercent: number;
  /** The gateway process's RssAnon (private memory), MiB. */
  anonMiB: number;
  /** The gateway process's RssFile (mapped binary and libraries), MiB. */
  fileMiB: number;
}

function stampOfHex(hex: string): number {
  const b = new Uint8Array(8);
  for (let i = 0; i < 8; i++) b[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return sentAt(b);
}

async function measure(broker: Mosquitto, scenario: string, rate: number, count: number, on: boolean): Promise<MqttBenchRow> {
  const child = new GatewayChild([process.execPath, import.meta.path, "--gateway", on ? broker.url : "off"]);
  const sub = mqtt.connect({ host: "127.0.0.1", port: broker.port, protocol: "mqtt", reconnectPeriod: 0, clientId: `bench-sub-${process.pid}` });
  const mqttLat: number[] = [];
  let mqttFirst = 0;
  let mqttLast = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      sub.once("connect", () => resolve());
      sub.once("error", reject);
    });
    sub.on("message", (_t, payload) => {
      const at = nowMs();
      const j = JSON.parse(payload.toString()) as { data: string };
      mqttLat.push(at - stampOfHex(j.data));
      if (mqttFirst === 0) mqttFirst = at;
      mqttLast = at;
    });
    await new Promise<void>((resolve, reject) => sub.subscribe(`${PREFIX}/raw/#`, { qos: 0 }, (e) => (e ? reject(e) : resolve())));
    const port = Number((await child.next(10_000)).split(" ")[1]);
    const [client] = await connectStampedClients(port, 1);
    await child.ask(`run ${rate} ${count}`, 90_000);
    const deadline = Date.now() + 10_000;
    while ((client!.frames.length < count || (on && mqttLat.length < count)) && Date.now() < deadline) await Bun.sleep(5);
    const st = await child.stats<{ cpuPercent: number; anonBytes: number; fileBytes: number; hubDropped: number; mqttDropped: number }>();
    client!.close();
    const tcp = sortedLatencies([client!]);
    const mq = Float64Array.from(mqttLat).sort();
    return {
      scenario,
      bridge: on ? "on" : "off",
      injected: count,
      tcpDelivered: client!.frames.length,
      tcpP50: percentile(tcp, 50),
      tcpP99: percentile(tcp, 99),
      mqttReceived: mqttLat.length,
      mqttPerSec: mqttLat.length > 1 ? (mqttLat.length - 1) / ((mqttLast - mqttFirst) / 1000) : 0,
      mqttP50: percentile(mq, 50),
      mqttP99: percentile(mq, 99),
      mqttDropped: st.mqttDropped,
      hubDropped: st.hubDropped,
      cpuPercent: st.cpuPercent,
      anonMiB: st.anonBytes / 1048576,
      fileMiB: st.fileBytes / 1048576,
    };
  } finally {
    sub.end(true);
    await child.stop();
  }
}

export function mqttBenchTable(rows: readonly MqttBenchRow[]): string {
  const f = (n: number, d = 3): string => (Number.isFinite(n) ? n.toFixed(d) : "—");
  return [
    "| scenario | bridge | gateway CPU % | gateway RssAnon MiB | gateway RssFile MiB | MQTT msgs received / injected | MQTT msgs/s | broker p50 ms | broker p99 ms | MQTT dropped | cannelloni p50 ms | cannelloni p99 ms | hub dropped |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map(
      (r) =>
        `| ${r.scenario} | ${r.bridge} | ${r.cpuPercent.toFixed(0)} | ${r.anonMiB.toFixed(1)} | ${r.fileMiB.toFixed(1)} | ${r.bridge === "on" ? `${r.mqttReceived} / ${r.injected}` : "—"} | ${r.bridge === "on" ? Math.round(r.mqttPerSec).toLocaleString("en-US") : "—"} | ${r.bridge === "on" ? f(r.mqttP50) : "—"} | ${r.bridge === "on" ? f(r.mqttP99) : "—"} | ${r.bridge === "on" ? r.mqttDropped : "—"} | ${f(r.tcpP50)} | ${f(r.tcpP99)} | ${r.hubDropped} |`,
    ),
  ].join("\n");
}

async function driverMain(json: boolean): Promise<void> {
  const broker = new Mosquitto();
  await broker.start();
  const rows: MqttBenchRow[] = [];
  try {
    const scenarios: [string, number, number][] = [
      ["382 f/s (Ampio 50 kbit/s max)", 382, 3_000],
      ["9,000 f/s (1 Mbit/s saturated)", 9_000, 45_000],
    ];
    for (const [name, rate, count] of scenarios) {
      for (const on of [false, true]) {
        const r = await measure(broker, name, rate, count, on);
        rows.push(r);
        if (!json) console.error(`${name} bridge=${r.bridge} cpu=${r.cpuPercent.toFixed(0)}% mqtt=${r.mqttReceived}/${count} p50=${r.mqttP50.toFixed(3)} p99=${r.mqttP99.toFixed(3)} tcp p50=${r.tcpP50.toFixed(3)}`);
      }
    }
  } finally {
    await broker.stop();
  }
  if (json) process.stdout.write(JSON.stringify(rows) + "\n");
  else console.log(mqttBenchTable(rows));
}

if (import.meta.main) {
  const gi = process.argv.indexOf("--gateway");
  if (gi >= 0) await gatewayMain(process.argv[gi + 1] ?? "off");
  else {
    await driverMain(process.argv.includes("--json"));
    process.exit(0);
  }
}
