/**
 * The Prometheus view of the gateway: a prom-client Registry whose metrics read the Stats
 * counters and the hub's gauges at scrape time (collect() callbacks), so the hot path only does
 * field adds and the counters work without the HTTP endpoint. Every metric name, type and help
 * text of go-ampio-server is kept; the extras (backend state, per-protocol series, process
 * metrics) are checked to tell the truth under Bun — see PROCESS METRICS below for what was
 * dropped or replaced and why.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { ERROR_SITES, PROTOCOL_NAMES, REJECT_REASONS, TX_DROP_REASONS, UDP_REFUSE_REASONS, type ProtocolName, type ProtocolStats, type Stats, type BusHealthReport } from "./stats.ts";
import type { BuildInfo } from "./build-info.ts";
import { CONSUMER_KINDS, type ConsumerCounters } from "../capture/counters.ts";
import { mirrorCounter } from "./prom-mirror.ts";

/** Hub figures that live in the hub rather than in Stats; sampled on every scrape. */
export interface HubGauges {
  activeClients: number;
  queueDepthMax: number;
  queueDepthAvg: number;
}

/** One bus's counters for the `bus` label (src/gateway.ts Bus). */
export interface MetricsBus {
  readonly name: string;
  readonly stats: Stats;
  readonly hubGauges: () => HubGauges;
}

export interface MetricsOptions {
  /** The process's counters (admission and HTTP; with one bus, everything). */
  stats: Stats;
  hubGauges: () => HubGauges;
  /**
   * Several buses: every bus-scoped series gets a `bus` label, one series per bus. One bus (or
   * unset): the series are go-ampio-server's, without the label (README "Several buses").
   */
  buses?: readonly MetricsBus[];
  /** Routes between buses: route_frames_total{route,result}. */
  routes?: readonly { readonly name: string; results(): Record<string, number> }[];
  build: BuildInfo;
  /** Totals of the in-process consumers (pcap capture, recorder, dashboard), when running. */
  consumers?: ConsumerCounters;
  /** Include the process_* and event-loop metrics (default true; tests may turn them off). */
  processMetrics?: boolean;
}

export interface Metrics {
  readonly registry: Registry;
  /** The Prometheus text exposition of every metric. */
  render(): Promise<string>;
  /** The Content-Type that goes with render()'s output. */
  readonly contentType: string;
}

/*
 * PROCESS METRICS. prom-client's collectDefaultMetrics() is registered, then each series was
 * compared under Bun 1.4.5 with /proc/self/status, /proc/self/stat, /proc/self/fd and
 * /proc/self/limits:
 *   kept   process_resident_memory_bytes (= VmRSS), process_virtual_memory_bytes (= VmSize, named
 *          as what it is), process_open_fds, process_max_fds, process_start_time_seconds, and the
 *          event-loop delay histogram summary nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds
 *          (perf_hooks.monitorEventLoopDelay works under Bun: a 250 ms busy loop shows as max 0.25 s),
 *          and nodejs_eventloop_lag_seconds, a setImmediate probe whose value is the previous
 *          scrape's; it must stay registered: its collect() is what fills the histogram gauges.
 *   fixed  process_cpu_{user,system,}_seconds_total: prom-client counts only the CPU used since
 *          the metric was registered (it adds cpuUsage() deltas), which hides start-up CPU; these
 *          are re-registered here as the absolute process.cpuUsage() totals (= utime/stime of
 *          /proc/self/stat).
 *   dropped process_heap_bytes: it is VmData, i.e. the reserved address space (≈6.5 GB for an
 *          idle gateway), not a heap.
 *          nodejs_heap_size_total_bytes / nodejs_heap_size_used_bytes / nodejs_external_memory_bytes
 *          and nodejs_heap_space_size_*_bytes{space}: V8 figures that JavaScriptCore only
 *          approximates (heap "total" below "used" in process.memoryUsage(), large array storage
 *          missing, twelve V8 spaces reported as 0); RSS is the honest memory figure.
 *          nodejs_active_handles/requests/resources(_total): Bun returns no handles, so they read
 *          0 while sockets are open.
 *          nodejs_gc_duration_seconds: Bun emits no GC performance entries; the histogram stays
 *          empty forever.
 *          nodejs_version_info: reports the Node.js version Bun imitates (v26.x), not Bun's;
 *          bun_version_info{version} says what actually runs.
 */
const DROPPED_DEFAULT_METRICS = [
  "process_heap_bytes",
  "nodejs_heap_size_total_bytes",
  "nodejs_heap_size_used_bytes",
  "nodejs_external_memory_bytes",
  "nodejs_heap_space_size_total_bytes",
  "nodejs_heap_space_size_used_bytes",
  "nodejs_heap_space_size_available_bytes",
  "nodejs_active_handles",
  "nodejs_active_handles_total",
  "nodejs_active_requests",
  "nodejs_active_requests_total",
  "nodejs_active_resources",
  "nodejs_active_resources_total",
  "nodejs_gc_duration_seconds",
  "nodejs_version_info",
  // Replaced below with absolute totals.
  "process_cpu_user_seconds_total",
  "process_cpu_system_seconds_total",
  "process_cpu_seconds_total",
] as const;

/** Sets a counter to an absolute value read from Stats (prom-client counters only go up by inc()). */
function setCounter(counter: Counter, value: number, labels?: Record<string, string>): void {
  if (labels) counter.inc(labels, value);
  else counter.inc(value);
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const { stats, hubGauges, build } = opts;
  const registry = new Registry();

  /** A counter mirroring one Stats number. */
  const statCounter = (name: string, help: string, read: () => number): void => void mirrorCounter(Counter, registry, name, help, read);
  const buses: readonly MetricsBus[] = opts.buses && opts.buses.length > 1 ? opts.buses : [{ name: "", stats, hubGauges }];
  const multi = buses.length > 1;
  /** Label names with `bus` first when there are several buses. */
  const withBus = (names: string[]): string[] => (multi ? ["bus", ...names] : names);
  /** Runs `fn` per bus with that bus's labels (none with one bus). */
  const eachBus = (fn: (b: MetricsBus, labels: Record<string, string>) => void): void => {
    for (const b of buses) fn(b, multi ? { bus: b.name } : {});
  };
  /** A counter of one Stats number per bus (no label with one bus: go-ampio-server's series). */
  const busCounter = (name: string, help: string, read: (s: Stats) => number): void => {
    if (!multi) return statCounter(name, help, () => read(stats));
    new Counter({
      name,
      help,
      labelNames: ["bus"],
      registers: [registry],
      collect() {
        this.reset();
        eachBus((b, labels) => setCounter(this, read(b.stats), labels));
      },
    });
  };
  const busGauge = (name: string, help: string, read: (s: Stats, g: HubGauges) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: withBus([]),
      registers: [registry],
      collect() {
        eachBus((b, labels) => this.set(labels, read(b.stats, b.hubGauges())));
      },
    });
  };
  const statGauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  // --- go-ampio-server's metrics: same names, types and help texts. ---
  busCounter("serial_rx_frames_total", "Total CAN frames decoded from the serial link.", (s) => s.serialRxFrames);
  busCounter("socketcan_rx_frames_total", "Total CAN frames read from the SocketCAN interface.", (s) => s.socketcanRxFrames);
  busCounter("serial_tx_frames_total", "Total CAN frames written to the serial link.", (s) => s.serialTxFrames);
  busCounter("socketcan_tx_frames_total", "Total CAN frames transmitted on the SocketCAN interface (confirmed by the kernel; written, where it cannot confirm).", (s) => s.socketcanTxFrames);
  busCounter("tcp_rx_frames_total", "Total CAN frames received from TCP clients.", (s) => s.tcpRxFrames);
  busCounter("tcp_tx_frames_total", "Total CAN frames sent to TCP clients.", (s) => s.tcpTxFrames);
  busCounter("hub_dropped_frames_total", "Total CAN frames dropped by hub due to slow clients.", (s) => s.hubDroppedFrames);
  busCounter("hub_kicked_clients_total", "Total clients disconnected due to backpressure kick policy.", (s) => s.hubKickedClients);
  statCounter(
    "hub_rejected_clients_total",
    "Total client connection attempts rejected (e.g., max-clients).",
    () => stats.hubRejectedClients,
  );
  busGauge("hub_active_clients", "Current number of active connected clients.", (_s, g) => g.activeClients);
  busGauge("hub_broadcast_fanout", "Number of clients targeted in the most recent broadcast.", (s) => s.hubBroadcastFanout);
  busGauge("hub_queue_depth_max",
    "Observed max queued frames among clients since last sample window.",
    (_s, g) => g.queueDepthMax,
  );
  busGauge("hub_queue_depth_avg", "Approximate average queued frames per client in last sample.", (_s, g) => g.queueDepthAvg);
  new Gauge({
    name: "build_info",
    help: "Build metadata (value is always 1).",
    labelNames: ["version", "commit", "date"],
    registers: [registry],
  }).set({ version: build.version, commit: build.commit, date: build.date }, 1);
  new Counter({
    name: "errors_total",
    help: "Error counters by subsystem.",
    labelNames: withBus(["where"]),
    registers: [registry],
    collect() {
      this.reset();
      // Every site is exported from the start (go-ampio-server pre-registers its labels too).
      eachBus((b, labels) => {
        for (const where of ERROR_SITES) setCounter(this, b.stats.errors.get(where) ?? 0, { ...labels, where });
      });
    },
  });
  busCounter("malformed_frames_total",
    "Total rejected malformed frames (protocol violations, invalid length, truncated).",
    (s) => s.malformedFrames,
  );

  // --- Beyond go-ampio-server. ---
  busCounter("serial_rx_noise_bytes_total",
    "Bytes from the serial adapter that formed no valid frame (line noise; a steady climb with no frames means a wrong -baud or the wrong device).",
    (s) => s.serialRxNoiseBytes,
  );
  busCounter("virtual_rx_frames_total", "Total CAN frames delivered by the virtual bus (-backend virtual).", (s) => s.virtualRxFrames);
  busCounter("virtual_tx_frames_total", "Total CAN frames written to the virtual bus (-backend virtual).", (s) => s.virtualTxFrames);
  busGauge("backend_up", "1 while the CAN backend (serial adapter, SocketCAN interface, virtual bus) is reachable, else 0.", (s) =>
    s.backendUp ? 1 : 0,
  );
  busCounter("backend_reconnects_total", "Times the backend came back up after being down.", (s) => s.backendReconnects);
  // Bus health (src/backends/bus-health.ts): only buses whose backend reports it (SocketCAN; the
  // backend sets stats.busHealth when it is created, before the metrics are).
  const anyHealth = buses.some((b) => b.stats.busHealth !== null);
  const healthSeries = (name: string, help: string, kind: "gauge" | "counter", read: (h: BusHealthReport) => number | null): void => {
    if (!anyHealth) return;
    const Metric = kind === "gauge" ? Gauge : Counter;
    new Metric({
      name,
      help,
      labelNames: withBus([]),
      registers: [registry],
      collect(this: Gauge | Counter) {
        this.reset();
        eachBus((b, labels) => {
          const v = b.stats.busHealth ? read(b.stats.busHealth.report()) : null;
          if (v === null) return;
          if (this instanceof Gauge) this.set(labels, v);
          else setCounter(this, v, labels);
        });
      },
    });
  };
  healthSeries("can_bus_state", "CAN controller state: 0 error-active, 1 error-warning, 2 error-passive, 3 bus-off, 4 stopped, 5 sleeping, -1 unknown (nothing reported yet).", "gauge", (h) => h.stateValue);
  healthSeries("can_bus_tx_errors", "The CAN controller's transmit error counter (TEC), as last reported.", "gauge", (h) => h.txErrors);
  healthSeries("can_bus_rx_errors", "The CAN controller's receive error counter (REC), as last reported.", "gauge", (h) => h.rxErrors);
  healthSeries("can_bus_restarts_total", "Times the CAN controller came back from bus-off.", "counter", (h) => h.restarts);
  if (anyHealth) new Counter({
    name: "can_bus_errors_total",
    help: "CAN error frames by class (linux/can/error.h: tx_timeout, lostarb, crtl_warning, crtl_passive, crtl_overflow, crtl_active, crtl_other, prot, trx, ack, busoff, buserror, restarted); one frame may count in several.",
    labelNames: withBus(["class"]),
    registers: [registry],
    collect() {
      this.reset();
      eachBus((b, labels) => {
        if (!b.stats.busHealth) return;
        for (const [c, n] of Object.entries(b.stats.busHealth.report().errors)) setCounter(this, n, { ...labels, class: c });
      });
    },
  });
  busCounter("backend_tx_dropped_total",
    "Frames from clients the bus did not take (backend down, unsupported frame, expired, write failed, unconfirmed); by reason in client_tx_dropped_total.",
    (s) => s.backendTxDropped,
  );
  busCounter("clients_accepted_total", "TCP client connections accepted over all listeners.", (s) => s.clientsAccepted);
  busCounter("clients_disconnected_total", "TCP client connections closed, for any reason.", (s) => s.clientsDisconnected);
  busCounter("handshake_failures_total",
    "Client connections closed because the protocol handshake failed or timed out.",
    (s) => s.handshakeFailures,
  );

  /** A counter by one label; `perBus` reads each bus's Stats (and adds the bus label), else the process's. */
  const byLabel = <K extends string>(name: string, help: string, label: string, keys: readonly K[], read: (k: K, s: Stats) => number, perBus = true): void => {
    new Counter({
      name,
      help,
      labelNames: perBus ? withBus([label]) : [label],
      registers: [registry],
      collect() {
        this.reset();
        if (!perBus) for (const k of keys) setCounter(this, read(k, stats), { [label]: k });
        else eachBus((b, labels) => {
          for (const k of keys) setCounter(this, read(k, b.stats), { ...labels, [label]: k });
        });
      },
    });
  };
  byLabel(
    "client_tx_dropped_total",
    "Frames sent by clients that did not reach the bus, by reason (read_only, rate_limited, tx_queue_full, unsupported, backend_down, expired, write_failed, unconfirmed).",
    "reason",
    TX_DROP_REASONS,
    (r, s) => s.txDropped.get(r) ?? 0,
  );
  busCounter("client_tx_sent_total", "Frames sent by clients that reached the bus: written, or on SocketCAN confirmed by the kernel (and echoed to the other clients).", (s) => s.clientTxSent);
  byLabel(
    "clients_rejected_total",
    "Connections (TCP clients and HTTP) refused at accept, by reason (max_clients, max_handshakes, not_allowed, fd_reserve, host_connections, host_handshakes, http_connections); hub_rejected_clients_total is their sum.",
    "reason",
    REJECT_REASONS,
    (r, s) => s.rejected.get(r) ?? 0,
    // Admission is one layer for every bus: counted once, for the process.
    false,
  );
  busCounter("clients_over_limit_total",
    "Client connections closed because they exceeded a per-client bound (reply bytes owed).",
    (s) => s.clientsOverLimit,
  );
  statCounter("http_rejected_requests_total", "HTTP requests refused (403): peer not in -allow, a Host the gateway does not answer to (DNS rebinding), a cross-site Origin.", () => stats.httpRejected);
  statCounter(
    "http_streams_rejected_total",
    "Dashboard WebSockets and /capture.pcap streams refused (503) because -http-max-streams of them were open.",
    () => stats.httpStreamsRejected,
  );
  statGauge("http_streams_open", "Dashboard WebSockets and /capture.pcap streams open now (at most -http-max-streams).", () => stats.httpStreamsOpen);
  // cannelloni UDP peers (src/server/udp-peer.ts)
  busCounter("udp_rx_datagrams_total", "cannelloni UDP datagrams received from peers.", (s) => s.udpRxDatagrams);
  busCounter("udp_tx_datagrams_total", "cannelloni UDP datagrams sent to peers.", (s) => s.udpTxDatagrams);
  busCounter("udp_lost_datagrams_total", "cannelloni UDP datagrams from peers that never arrived (sequence-number gaps).", (s) => s.udpLostDatagrams);
  busCounter("udp_send_failures_total", "cannelloni UDP datagrams the socket could not send (their frames are lost for that peer).", (s) => s.udpSendFailures);
  byLabel(
    "udp_refused_datagrams_total",
    "cannelloni UDP datagrams refused, by reason (unknown_peer: not a configured peer; not_allowed: outside -allow; truncated; duplicate: a sequence number seen before; out_of_order: overtaken by newer datagrams).",
    "reason",
    UDP_REFUSE_REASONS,
    (r, s) => s.udpRefused.get(r) ?? 0,
  );

  const perProtocol = (kind: "gauge" | "counter", name: string, help: string, field: keyof ProtocolStats): void => {
    const each = (fn: (labels: Record<string, string>, value: number) => void): void => {
      eachBus((b, labels) => {
        for (const protocol of PROTOCOL_NAMES) fn({ ...labels, protocol }, b.stats.protocol(protocol)[field]);
      });
    };
    if (kind === "gauge") {
      new Gauge({
        name,
        help,
        labelNames: withBus(["protocol"]),
        registers: [registry],
        collect() {
          each((labels, v) => this.set(labels, v));
        },
      });
    } else {
      new Counter({
        name,
        help,
        labelNames: withBus(["protocol"]),
        registers: [registry],
        collect() {
          this.reset();
          each((labels, v) => setCounter(this, v, labels));
        },
      });
    }
  };
  perProtocol("gauge", "protocol_clients", "Currently connected clients per wire protocol.", "clients");
  perProtocol("counter", "protocol_clients_accepted_total", "Client connections accepted per wire protocol.", "accepted");
  perProtocol("counter", "protocol_rx_frames_total", "CAN frames received from clients per wire protocol.", "rxFrames");
  perProtocol("counter", "protocol_tx_frames_total", "CAN frames sent to clients per wire protocol.", "txFrames");
  perProtocol("counter", "protocol_malformed_frames_total", "Malformed frames rejected per wire protocol.", "malformed");
  perProtocol("counter", "protocol_handshake_failures_total", "Failed or timed-out handshakes per wire protocol.", "handshakeFailures");

  const routes = opts.routes ?? [];
  if (routes.length > 0) {
    new Counter({
      name: "route_frames_total",
      help: "Frames of each route between buses, by result (routed: handed to the destination bus; sent: on it; dropped: refused or lost there, reason in client_tx_dropped_total; hop_limit; rate_limited).",
      labelNames: ["route", "result"],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of routes) for (const [result, n] of Object.entries(r.results())) setCounter(this, n, { route: r.name, result });
      },
    });
  }

  const consumers = opts.consumers;
  if (consumers) {
    for (const [name, help, field] of [
      ["consumer_frames_total", "Frames delivered by the in-process consumers (pcap capture streams, recorder, dashboard).", "frames"],
      ["consumer_dropped_frames_total", "Frames the in-process consumers lost to their own full queue or a failing disk (never counted as hub drops).", "dropped"],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: ["consumer"],
        registers: [registry],
        collect() {
          this.reset();
          for (const consumer of CONSUMER_KINDS) setCounter(this, consumers.byKind[consumer][field], { consumer });
        },
      });
    }
    new Counter({
      name: "web_tx_token_refused_total",
      help: "Dashboard send attempts refused for a wrong -web-token or because the host was locked out after 5 wrong guesses a minute.",
      registers: [registry],
      collect() {
        this.reset();
        setCounter(this, consumers.webTokenRefused);
      },
    });
  }

  if (opts.processMetrics ?? true) registerProcessMetrics(registry);

  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
  };
}

function registerProcessMetrics(registry: Registry): void {
  // 100 ms resolution: the monitor is a timer, and at 20 ms its 50 wake-ups/s were most of an
  // idle gateway's CPU with -metrics-addr (0.7 % vs 0.1 %, BENCHMARKS.md "Compiled binary"); a
  // stalled loop still shows in max/p99, a delay under 100 ms is not what this gauge is for.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  for (const name of DROPPED_DEFAULT_METRICS) registry.removeSingleMetric(name);

  const cpu = (name: string, help: string, pick: (u: NodeJS.CpuUsage) => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        setCounter(this, pick(process.cpuUsage()) / 1e6);
      },
    });
  };
  cpu("process_cpu_user_seconds_total", "Total user CPU time spent in seconds.", (u) => u.user);
  cpu("process_cpu_system_seconds_total", "Total system CPU time spent in seconds.", (u) => u.system);
  cpu("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", (u) => u.user + u.system);
  new Gauge({
    name: "bun_version_info",
    help: "Version of the Bun runtime this binary embeds (value is always 1).",
    labelNames: ["version"],
    registers: [registry],
  }).set({ version: Bun.version }, 1);
}
