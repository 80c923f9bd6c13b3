/**
 * The operations endpoint over real HTTP on 127.0.0.1 (ephemeral ports): every go-ampio-server
 * metric name with its type, counters read from Stats at scrape time, /ready 200/503 with the
 * reason, /healthz, 404/405, the bound-port report and the clear error on an occupied port.
 * Also the periodic snapshot logger.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { buildInfo } from "../../src/ops/build-info.ts";
import { OpsHttpError, startOpsHttp, type OpsHttp, type Readiness } from "../../src/ops/http.ts";
import { memoryLogger, silentLogger } from "../../src/ops/log.ts";
import { METRICS_LOG_EVENT, startMetricsLogger } from "../../src/ops/metrics-logger.ts";
import { createMetrics, type HubGauges } from "../../src/ops/metrics.ts";
import { ERROR_SITES, Stats } from "../../src/ops/stats.ts";

/** Seed metric name → Prometheus type (go-ampio-server internal/metrics/metrics.go). */
const SEED_METRICS: Record<string, "counter" | "gauge"> = {
  serial_rx_frames_total: "counter",
  serial_tx_frames_total: "counter",
  socketcan_rx_frames_total: "counter",
  socketcan_tx_frames_total: "counter",
  tcp_rx_frames_total: "counter",
  tcp_tx_frames_total: "counter",
  hub_dropped_frames_total: "counter",
  hub_kicked_clients_total: "counter",
  hub_rejected_clients_total: "counter",
  hub_broadcast_fanout: "gauge",
  hub_active_clients: "gauge",
  hub_queue_depth_max: "gauge",
  hub_queue_depth_avg: "gauge",
  errors_total: "counter",
  malformed_frames_total: "counter",
  build_info: "gauge",
};

const EXTRA_METRICS: Record<string, "counter" | "gauge"> = {
  backend_up: "gauge",
  backend_reconnects_total: "counter",
  backend_tx_dropped_total: "counter",
  clients_accepted_total: "counter",
  handshake_failures_total: "counter",
  protocol_clients: "gauge",
  protocol_rx_frames_total: "counter",
  protocol_tx_frames_total: "counter",
  protocol_malformed_frames_total: "counter",
  process_cpu_seconds_total: "counter",
  process_resident_memory_bytes: "gauge",
  process_open_fds: "gauge",
  process_start_time_seconds: "gauge",
  bun_version_info: "gauge",
};

function types(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split("\n")) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) m.set(t[1]!, t[2]!);
  }
  return m;
}

/** The value of one sample line, e.g. sample(text, 'errors_total{where="tcp_read"}'). */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

const servers: OpsHttp[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

function setup(opts: { readiness?: () => Readiness; processMetrics?: boolean } = {}) {
  const stats = new Stats();
  const hub: HubGauges = { activeClients: 0, queueDepthMax: 0, queueDepthAvg: 0 };
  const metrics = createMetrics({ stats, hubGauges: () => hub, build: buildInfo(), processMetrics: opts.processMetrics ?? false });
  const { log, lines } = memoryLogger();
  const http = startOpsHttp({
    addr: "127.0.0.1:0",
    metrics,
    readiness: opts.readiness ?? (() => ({ ready: true, reason: "" })),
    log,
  });
  servers.push(http);
  const url = (path: string) => `http://127.0.0.1:${http.port}${path}`;
  return { stats, hub, metrics, http, url, lines };
}

describe("/metrics", () => {
  test("serves every seed metric with the seed's type, in the Prometheus text format", async () => {
    const { url } = setup();
    const res = await fetch(url("/metrics"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const t = types(await res.text());
    for (const [name, type] of Object.entries(SEED_METRICS)) expect([name, t.get(name)]).toEqual([name, type]);
  });

  test("serves the extra operator metrics and truthful process metrics", async () => {
    const { url } = setup({ processMetrics: true });
    const text = await (await fetch(url("/metrics"))).text();
    const t = types(text);
    for (const [name, type] of Object.entries(EXTRA_METRICS)) expect([name, t.get(name)]).toEqual([name, type]);
    // Dropped because they lie under Bun (see src/ops/metrics.ts).
    for (const name of ["process_heap_bytes", "nodejs_heap_size_used_bytes", "nodejs_active_handles_total", "nodejs_version_info", "nodejs_gc_duration_seconds"]) {
      expect(t.has(name)).toBe(false);
    }
    // RSS matches the kernel's figure for this process (same order of magnitude, within 50 %).
    const status = await Bun.file("/proc/self/status").text();
    const vmRssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
    const rss = sample(text, "process_resident_memory_bytes")!;
    expect(rss / 1024 / vmRssKb).toBeGreaterThan(0.5);
    expect(rss / 1024 / vmRssKb).toBeLessThan(1.5);
    // CPU is the process total since start, not since the metric was registered.
    const cpu = sample(text, "process_cpu_seconds_total")!;
    const usage = process.cpuUsage();
    expect(cpu).toBeGreaterThan(0);
    expect(cpu).toBeLessThanOrEqual((usage.user + usage.system) / 1e6);
    expect(cpu).toBeGreaterThan(((usage.user + usage.system) / 1e6) * 0.5);
  });

  test("the event-loop delay gauges see a blocked loop (their collector is kept registered)", async () => {
    const { url } = setup({ processMetrics: true });
    await (await fetch(url("/metrics"))).text(); // resets the histogram window
    // The monitor samples every 100 ms (src/ops/metrics.ts): block for longer than two of its
    // periods, then give it two more to record the late tick.
    await Bun.sleep(120);
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // Block the event loop on purpose.
    }
    await Bun.sleep(250);
    const text = await (await fetch(url("/metrics"))).text();
    expect(sample(text, "nodejs_eventloop_lag_max_seconds")!).toBeGreaterThanOrEqual(0.15);
    expect(types(text).get("nodejs_eventloop_lag_seconds")).toBe("gauge");
  });

  test("reads Stats and the hub at scrape time", async () => {
    const { url, stats, hub } = setup();
    stats.serialRxFrames = 11;
    stats.tcpTxFrames = 7;
    stats.error("serial_write", 2);
    stats.protocol("socketcand").clients = 3;
    stats.protocol("waveshare").rxFrames = 5;
    stats.backendUp = true;
    stats.hubBroadcastFanout = 4;
    hub.activeClients = 4;
    hub.queueDepthMax = 9;
    hub.queueDepthAvg = 2.5;
    let text = await (await fetch(url("/metrics"))).text();
    expect(sample(text, "serial_rx_frames_total")).toBe(11);
    expect(sample(text, "tcp_tx_frames_total")).toBe(7);
    expect(sample(text, 'errors_total{where="serial_write"}')).toBe(2);
    expect(sample(text, 'protocol_clients{protocol="socketcand"}')).toBe(3);
    expect(sample(text, 'protocol_rx_frames_total{protocol="waveshare"}')).toBe(5);
    expect(sample(text, "backend_up")).toBe(1);
    expect(sample(text, "hub_active_clients")).toBe(4);
    expect(sample(text, "hub_broadcast_fanout")).toBe(4);
    expect(sample(text, "hub_queue_depth_max")).toBe(9);
    expect(sample(text, "hub_queue_depth_avg")).toBe(2.5);

    // A second scrape reports absolute values, not accumulated ones.
    stats.serialRxFrames = 12;
    stats.backendUp = false;
    hub.activeClients = 0;
    text = await (await fetch(url("/metrics"))).text();
    expect(sample(text, "serial_rx_frames_total")).toBe(12);
    expect(sample(text, 'errors_total{where="serial_write"}')).toBe(2);
    expect(sample(text, "backend_up")).toBe(0);
    expect(sample(text, "hub_active_clients")).toBe(0);
  });

  test("every error site exists from the start with value 0, and build_info is 1", async () => {
    const { url } = setup();
    const text = await (await fetch(url("/metrics"))).text();
    for (const where of ERROR_SITES) expect([where, sample(text, `errors_total{where="${where}"}`)]).toEqual([where, 0]);
    const b = buildInfo();
    expect(sample(text, `build_info{version="${b.version}",commit="${b.commit}",date="${b.date}"}`)).toBe(1);
  });
});

describe("/ready, /healthz and the rest", () => {
  test("/ready is 200 'ready' while ready and 503 with the reason otherwise", async () => {
    let state: Readiness = { ready: false, reason: "backend serial down: /dev/ttyUSB0: ENOENT" };
    const { url } = setup({ readiness: () => state });
    let res = await fetch(url("/ready"));
    expect(res.status).toBe(503);
    expect(await res.text()).toBe("not ready: backend serial down: /dev/ttyUSB0: ENOENT\n");
    state = { ready: true, reason: "" };
    res = await fetch(url("/ready"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ready\n");
  });

  test("/healthz is 200 'ok' even while not ready", async () => {
    const { url } = setup({ readiness: () => ({ ready: false, reason: "shutting down" }) });
    const res = await fetch(url("/healthz"));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("ok\n");
  });

  test("unknown paths are 404, other methods 405, HEAD has headers and no body", async () => {
    const { url } = setup();
    expect((await fetch(url("/"))).status).toBe(404);
    expect((await fetch(url("/metrics/extra"))).status).toBe(404);
    const post = await fetch(url("/metrics"), { method: "POST", body: "x" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    const head = await fetch(url("/ready"), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  test("reports the bound port and logs metrics_listen", () => {
    const { http, lines } = setup();
    expect(http.port).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes('"msg":"metrics_listen"') && l.includes(`127.0.0.1:${http.port}`))).toBe(true);
  });

  test("an occupied address fails with a clear error", () => {
    const { http } = setup();
    const again = () =>
      startOpsHttp({
        addr: `127.0.0.1:${http.port}`,
        metrics: { render: async () => "", contentType: "text/plain" },
        readiness: () => ({ ready: true, reason: "" }),
        log: silentLogger,
      });
    expect(again).toThrow(OpsHttpError);
    expect(again).toThrow(`metrics HTTP: address 127.0.0.1:${http.port} is already in use`);
  });

  test("a malformed address is refused before binding", () => {
    expect(() =>
      startOpsHttp({ addr: "localhost", metrics: { render: async () => "", contentType: "" }, readiness: () => ({ ready: true, reason: "" }), log: silentLogger }),
    ).toThrow(OpsHttpError);
  });

  test("after stop() the port no longer answers", async () => {
    const { http, url } = setup();
    expect((await fetch(url("/healthz"))).status).toBe(200);
    await http.stop();
    servers.splice(servers.indexOf(http), 1);
    await expect(fetch(url("/healthz"))).rejects.toThrow();
  });
});

describe("metrics logger", () => {
  test("interval 0 disables it", async () => {
    const { log, lines } = memoryLogger();
    const stop = startMetricsLogger({ stats: new Stats(), hubGauges: () => ({ activeClients: 0, queueDepthMax: 0, queueDepthAvg: 0 }), intervalMs: 0, log });
    await Bun.sleep(30);
    stop();
    expect(lines).toEqual([]);
  });

  test("logs the counter snapshot each interval until stopped", async () => {
    const stats = new Stats();
    stats.tcpRxFrames = 3;
    stats.hubDroppedFrames = 2;
    stats.error("tcp_write", 4);
    const { log, lines } = memoryLogger();
    const stop = startMetricsLogger({ stats, hubGauges: () => ({ activeClients: 5, queueDepthMax: 1, queueDepthAvg: 0 }), intervalMs: 10, log });
    const deadline = Date.now() + 2000;
    while (lines.length < 2 && Date.now() < deadline) await Bun.sleep(5);
    stop();
    const seen = lines.length;
    expect(seen).toBeGreaterThanOrEqual(2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(first["msg"]).toBe(METRICS_LOG_EVENT);
    expect(first["tcp_rx"]).toBe(3);
    expect(first["hub_drops"]).toBe(2);
    expect(first["errors"]).toBe(4);
    expect(first["clients"]).toBe(5);
    await Bun.sleep(40);
    expect(lines.length).toBe(seen);
  });
});
