/**
 * `npm run bench`: fan-out throughput and latency of the gateway, measured side by side in one
 * run, then every client protocol side by side (scripts/bench-protocols.ts). The gateway runs in its own process (scripts/bench/gateway-proc.ts) on the virtual bus;
 * this process connects N cannelloni clients (1, 10, 100) over loopback and records, for every
 * frame at every client, the time from injection on the bus to receipt. Scenarios: fixed rates
 * (the Ampio bus maximum ~382 frames/s, a saturated 1 Mbit/s bus ~7,634 frames/s) and flat out.
 * Results go to stdout and to the "fan-out" section of BENCHMARKS.md. Every loop is bounded.
 *
 * The other benchmarks run as child processes, each writing its own BENCHMARKS.md section:
 * serial-ref (can-server against near-limit reference forwarders over the pty path), scale (1000
 * clients), idle (idle cost and start-up footprint), views (dashboard, capture and recorder cost),
 * dbc (DBC decoding on a saturated bus, with python3-canmatrix's rate as a reference);
 * serial (the older pty tables) on request.
 *
 *   npm run bench                         # fanout, serial-ref, protocols, mqtt, scale, idle, views, dbc, jobs
 *   npm run bench -- --only=serial-ref    # one or several: fanout,serial,serial-ref,protocols,mqtt,scale,idle,views,dbc
 *   npm run bench -- --only=all           # everything, serial included
 *   npm run bench -- --quick              # smaller counts (a smoke run)
 * SocketCAN in the VM: scripts/bench/socketcan-vm.sh; the compiled binary: scripts/bench-binary.ts.
 */
import { GatewayChild } from "./bench/gateway-child.ts";
import { busScenarios, connectStampedClients, deliveredCount, percentile, type Scenario, sortedLatencies, waitDelivered } from "./bench/measure.ts";
import { machineLine, today as todayIso, writeSection } from "./bench/report.ts";

const quick = process.argv.includes("--quick");
const CLIENTS = [1, 10, 100];
const SCENARIOS = busScenarios(quick);

interface Row {
  clients: number;
  scenario: string;
  injected: number;
  delivered: number;
  deliveredPerSec: number;
  p50: number;
  p99: number;
  max: number;
  dropped: number;
  anonMiB: number;
  fileMiB: number;
  cpuPercent: number;
}



async function measure(nClients: number, sc: Scenario): Promise<Row> {
  const child = new GatewayChild(["bun", "scripts/bench/gateway-proc.ts", "100000"]);
  try {
    const port = Number((await child.next()).split(" ")[1]);
    const clients = await connectStampedClients(port, nClients);
    const t0 = performance.now();
    await child.ask(`run ${sc.rate} ${sc.count}`, 180_000);
    const want = sc.count * nClients;
    await waitDelivered(clients, want, 60_000);
    const elapsed = (performance.now() - t0) / 1000;
    const st = await child.stats<{ dropped: number; anonBytes: number; fileBytes: number; cpuPercent: number }>();
    for (const c of clients) c.close();
    // Latency: receipt time minus the injection time carried in the frame's data.
    const sorted = sortedLatencies(clients);
    const delivered = deliveredCount(clients);
    return {
      clients: nClients,
      scenario: sc.name,
      injected: sc.count,
      delivered,
      deliveredPerSec: delivered / elapsed,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.length ? sorted[sorted.length - 1]! : NaN,
      dropped: st.dropped,
      anonMiB: st.anonBytes / 1048576,
      fileMiB: st.fileBytes / 1048576,
      cpuPercent: st.cpuPercent,
    };
  } finally {
    await child.stop();
  }
}

const machine = machineLine();
const today = todayIso();
const onlyArg = process.argv.find((a) => a.startsWith("--only="))?.slice("--only=".length);
const DEFAULT_SET = ["fanout", "serial-ref", "protocols", "mqtt", "scale", "idle", "views", "dbc", "jobs"];
const selected = new Set(onlyArg === "all" ? [...DEFAULT_SET, "serial"] : (onlyArg?.split(",") ?? DEFAULT_SET));
const only = (key: string): boolean => selected.has(key);

/** Runs one of the scripts/bench/*.ts benchmarks as its own process, which writes its section. */
async function child(script: string, args: string[]): Promise<void> {
  console.log(`bench: ${script} ${args.join(" ")}`);
  const p = Bun.spawn([process.execPath, `scripts/bench/${script}`, ...args, "--write"], { stdout: "inherit", stderr: "inherit" });
  if ((await p.exited) !== 0) throw new Error(`${script} failed`);
}

if (only("fanout")) {
  const rows: Row[] = [];
  for (const sc of SCENARIOS) {
    for (const n of CLIENTS) {
      const r = await measure(n, sc);
      rows.push(r);
      console.log(
        `${sc.name.padEnd(32)} clients=${String(n).padStart(3)} delivered=${r.delivered}/${r.injected * n} ` +
          `${Math.round(r.deliveredPerSec)} f/s p50=${r.p50.toFixed(3)}ms p99=${r.p99.toFixed(3)}ms max=${r.max.toFixed(2)}ms ` +
          `dropped=${r.dropped} anon=${r.anonMiB.toFixed(1)}MiB file=${r.fileMiB.toFixed(1)}MiB cpu=${r.cpuPercent.toFixed(0)}%`,
      );
    }
  }
  const table = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.clients} | ${r.delivered} / ${r.injected * r.clients} | ${Math.round(r.deliveredPerSec).toLocaleString("en-US")} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.max.toFixed(2)} | ${r.dropped} | ${r.anonMiB.toFixed(1)} | ${r.fileMiB.toFixed(1)} | ${r.cpuPercent.toFixed(0)} |`,
  );
  await writeSection(
    "fanout",
    [
      "## Fan-out (virtual bus → cannelloni clients over loopback)",
      "",
      `Measured ${today} on ${machine}. Command: \`npm run bench${quick ? " -- --quick" : ""}\`.`,
      "The gateway runs in its own process; the clients share the bench process, so at 100 clients the client side competes for",
      "the same two cores and dominates the tail latency. Latency = injection on the virtual bus → the client's socket delivers the",
      "bytes (timestamped once per received chunk). CPU, RssAnon (private) and RssFile (mapped binary and libraries) are the gateway",
      "process's. Hub buffer 100,000 frames, so flat-out rows show delivery without drops.",
      "",
      "| scenario | clients | delivered / expected | delivered frames/s | p50 ms | p99 ms | max ms | dropped | gateway RssAnon MiB | gateway RssFile MiB | gateway CPU % |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
      ...table,
    ].join("\n"),
  );
}

if (only("protocols")) {
  // Its own process, like the serial run below (a fresh heap, no GC pause from the fan-out run).
  const { protocolsTable } = await import("./bench-protocols.ts");
  const child = Bun.spawn([process.execPath, "scripts/bench-protocols.ts", "--json", ...(quick ? ["--quick"] : [])], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error("protocol benchmark failed");
  const rows = JSON.parse(out.slice(out.indexOf("["))) as Parameters<typeof protocolsTable>[0];
  const text = [
    "## Client protocols side by side (virtual bus → one client over loopback)",
    "",
    `Measured ${today} on ${machine}. Command: \`npm run bench${quick ? " -- --quick" : ""}\` (or \`bun scripts/bench-protocols.ts\`).`,
    "One gateway process per row with every listener on 127.0.0.1 (scripts/bench/protocols-gateway.ts); one client of the row's",
    "protocol, from test/helpers/ (each decodes independently of the gateway's codecs), timestamps every received chunk.",
    "Latency = injection on the virtual bus → the client has the bytes. 8-byte frames. At flat out the JavaScript test client",
    "is often the limit, not the gateway (compare the gateway CPU column): the slcan and canlogserver clients parse text byte",
    "by byte. cannelloni UDP on loopback loses datagrams when the receiving socket's buffer overflows (no backpressure in",
    "UDP): \"delivered\" shows it. The machine's two cores are shared with other work, so tails vary between runs.",
    "",
    protocolsTable(rows),
  ].join("\n");
  console.log(text);
  await writeSection("protocols", text);
}

if (only("serial")) {
  // Its own process: the fan-out run above leaves a large heap here, and a major GC pause in this
  // process would show up as serial latency.
  const { serialBenchTable, serialFanoutTable } = await import("./bench-serial.ts");
  const child = Bun.spawn([process.execPath, "scripts/bench-serial.ts", "--json", ...(quick ? ["--quick"] : [])], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error("serial benchmark failed");
  const { backend: backendRows, fanout: fanoutRows } = JSON.parse(out.slice(out.indexOf("{"))) as {
    backend: Parameters<typeof serialBenchTable>[0];
    fanout: Parameters<typeof serialFanoutTable>[0];
  };
  const text = [
    "## Ampio serial (socat pty → gateway)",
    "",
    `Measured ${today} on ${machine}. Command: \`npm run bench${quick ? " -- --quick" : ""}\` (or \`bun scripts/bench-serial.ts\`).`,
    "A writer process feeds adapter frames into one end of a socat pty pair at the Ampio bus maximum (382 frames/s, 50 kbit/s",
    "extended 8-byte frames) and flat out; latency is from the byte written on the pty to the frame delivered.",
    "",
    "### pty → SerialBackend",
    "",
    serialBenchTable(backendRows),
    "",
    "### pty → gateway process → cannelloni clients",
    "",
    serialFanoutTable(fanoutRows),
  ].join("\n");
  console.log(text);
  await writeSection("serial", text);
}
if (only("mqtt")) {
  // The MQTT bridge off and on (scripts/bench/mqtt.ts: Mosquitto, gateway process, subscriber), ~30 s.
  const { mqttBenchTable } = await import("./bench/mqtt.ts");
  const child = Bun.spawn([process.execPath, "scripts/bench/mqtt.ts", "--json"], { stdout: "pipe", stderr: "inherit" });
  const out = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) throw new Error("MQTT benchmark failed");
  const rows = JSON.parse(out.slice(out.indexOf("["))) as Parameters<typeof mqttBenchTable>[0];
  const text = [
    "## MQTT bridge off and on (virtual bus → Mosquitto → subscriber, and → one cannelloni client)",
    "",
    `Measured ${today} on ${machine}, Debian's mosquitto on loopback. Command: \`npm run bench\` (or \`bun scripts/bench/mqtt.ts\`).`,
    "One gateway process per row (virtual bus, consumers wired as in main.ts: with the bridge on, -ampio-decode auto is on too),",
    "QoS 0, raw frames on bench/raw/<id> (JSON); 8-byte extended frames carrying their injection time. The subscriber (mqtt.js)",
    "and the cannelloni client share the bench process; the broker and the gateway share the machine's two cores with them.",
    "Broker latency = injection on the virtual bus → the subscriber has the message (gateway, broker and subscriber hops).",
    "Gateway CPU is the gateway process's over the run; RssAnon (private) and RssFile (mapped binary and libraries) are the gateway",
    "process's at the end of it. The cannelloni columns show what the bridge costs a TCP client.",
    "",
    mqttBenchTable(rows),
  ].join("\n");
  console.log(text);
  await writeSection("mqtt", text);
}
if (only("serial-ref")) await child("serial-ref.ts", quick ? ["--rounds", "1", "--count", "400"] : ["--rounds", "5", "--count", "2000"]);
if (only("scale")) await child("scale.ts", quick ? ["--clients", "200", "--seconds", "1"] : []);
if (only("idle")) await child("idle.ts", quick ? ["--window", "2", "--clients", "0,10"] : ["--window", "5"]);
if (only("views")) await child("views.ts", quick ? ["--quick"] : []);
if (only("dbc")) await child("dbc.ts", quick ? ["--quick"] : []);
if (only("jobs")) await child("jobs.ts", quick ? ["--quick"] : []);
console.log("wrote BENCHMARKS.md");
process.exit(0);
