/**
 * `-log-metrics-interval`: a counter snapshot written to the log every interval, for
 * installations without a Prometheus scraper. The line carries go-ampio-server's event name
 * (`metrics_snapshot`) and field names, plus the hub gauges and backend state; it reads Stats
 * directly, so it works without the HTTP endpoint. Interval 0 disables it.
 */
import type { Logger, LogFields } from "./log.ts";
import type { HubGauges } from "./metrics.ts";
import type { Stats } from "./stats.ts";

export const METRICS_LOG_EVENT = "metrics_snapshot";

export interface MetricsLoggerOptions {
  stats: Stats;
  hubGauges: () => HubGauges;
  intervalMs: number;
  log: Logger;
}

/** The fields of one snapshot line (also what a test compares). */
export function metricsSnapshot(stats: Stats, hub: HubGauges): LogFields {
  return {
    serial_rx: stats.serialRxFrames,
    socketcan_rx: stats.socketcanRxFrames,
    serial_tx: stats.serialTxFrames,
    socketcan_tx: stats.socketcanTxFrames,
    tcp_rx: stats.tcpRxFrames,
    tcp_tx: stats.tcpTxFrames,
    hub_drops: stats.hubDroppedFrames,
    errors: stats.errorsTotal(),
    hub_kicks: stats.hubKickedClients,
    hub_rejects: stats.hubRejectedClients,
    malformed: stats.malformedFrames,
    clients: hub.activeClients,
    queue_depth_max: hub.queueDepthMax,
    backend_up: stats.backendUp,
    backend_tx_dropped: stats.backendTxDropped,
  };
}

/** Starts the periodic snapshot; returns the function that stops it (a no-op when disabled). */
export function startMetricsLogger(opts: MetricsLoggerOptions): () => void {
  const { stats, hubGauges, intervalMs, log } = opts;
  if (!(intervalMs > 0)) return () => {};
  const timer = setInterval(() => log.info(METRICS_LOG_EVENT, metricsSnapshot(stats, hubGauges())), intervalMs);
  // A snapshot timer alone must not keep the process alive during shutdown.
  timer.unref();
  return () => clearInterval(timer);
}
