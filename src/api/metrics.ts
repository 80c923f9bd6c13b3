/**
 * Metrics of the HTTP API and the transmit jobs, registered on the endpoint's registry once the
 * API runs (src/ops/operations.ts). Read at scrape time from the counters the API and jobs keep.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { ApiCounters } from "./api.ts";
import type { Jobs } from "../jobs/jobs.ts";

export function registerApiMetrics(registry: Registry, api: ApiCounters, jobs: Jobs): void {
  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter) => void): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this);
      },
    });
  };
  counter("api_requests_total", "Requests to the HTTP API (/api/v1/…).", [], (c) => c.inc(api.requests));
  counter("api_requests_refused_total", "HTTP API requests refused, by reason (no_token, bad_token, locked_out, tx_disabled, tx_not_allowed, bad_frame, too_many_frames, too_large, no_bus, no_job, method, …).", ["reason"], (c) => {
    for (const [reason, n] of api.refused) c.inc({ reason }, n);
  });
  counter("api_frames_total", "Frames sent through the HTTP API, by result (sent: on the bus; refused: dropped with a reason, see client_tx_dropped_total).", ["result"], (c) => {
    c.inc({ result: "sent" }, api.framesSent);
    c.inc({ result: "refused" }, api.framesRefused);
  });
  counter("job_tx_frames_total", "Frames transmit jobs put on the bus.", [], (c) => c.inc(jobs.totals.sent));
  counter("job_tx_skipped_total", "Transmissions of transmit jobs skipped (never sent late), by reason: pending (the previous one still waiting), late (the process was late), backend_down, rate_limited, …", ["reason"], (c) => {
    for (const [reason, n] of jobs.totals.skipped) c.inc({ reason }, n);
  });
  counter("job_state_write_failures_total", "Writes of the jobs' state file (-state-dir) that failed (the jobs keep running; logged).", [], (c) => c.inc(jobs.totals.stateWriteFailures));
  new Gauge({
    name: "jobs",
    help: "Transmit jobs the gateway holds (running, scheduled or finished).",
    registers: [registry],
    collect() {
      this.set(jobs.size);
    },
  });
}
