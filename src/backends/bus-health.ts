/**
 * A CAN bus's health as its controller reports it: the fault-confinement state (ISO 11898-1:
 * error-active, error-warning at 96 errors, error-passive at 128, bus-off at 256 transmit errors),
 * error frames counted by class, the error counters, restarts after bus-off. Two inputs feed it:
 * error frames (socketcan/error-frames.ts: immediate, every driver that has them) and the
 * interface's netlink state (socketcan/link-info.ts: authoritative where the driver reports it,
 * polled). Pure apart from logging: each state change is logged once (from, to, cause).
 */
import type { Logger } from "../ops/log.ts";
import type { BusHealthReport } from "../ops/stats.ts";
import { ERROR_CLASSES, type ErrorClass, type ErrorReport } from "./socketcan/error-frames.ts";
import type { CanLinkInfo, CanState } from "./socketcan/link-info.ts";

/** can_bus_state's documented values (README "Bus health"). */
export const BUS_STATE_VALUES: Readonly<Record<CanState, number>> = {
  "error-active": 0,
  "error-warning": 1,
  "error-passive": 2,
  "bus-off": 3,
  stopped: 4,
  sleeping: 5,
  unknown: -1,
};

export interface BusHealthSnapshot extends BusHealthReport {
  readonly state: CanState;
  /** Error frames received, all classes. */
  readonly errorFrames: number;
  /** Times the state went to bus-off. */
  readonly busOffs: number;
  /** What last set the state: "error-frame", "netlink", or "none" yet. */
  readonly source: "error-frame" | "netlink" | "none";
  /** Date.now() of the last state change (0 = never changed). */
  readonly sinceMs: number;
}

export class BusHealthTracker {
  private stateNow: CanState = "unknown";
  private source: BusHealthSnapshot["source"] = "none";
  private sinceMs = 0;
  private readonly errors = Object.fromEntries(ERROR_CLASSES.map((c) => [c, 0])) as Record<ErrorClass, number>;
  private errorFrames = 0;
  private txErrors: number | null = null;
  private rxErrors: number | null = null;
  private restarts = 0;
  private busOffs = 0;

  constructor(private readonly log: Logger) {}

  get state(): CanState {
    return this.stateNow;
  }

  /** One error frame from the controller's driver. */
  errorFrame(report: ErrorReport): void {
    this.errorFrames++;
    for (const c of report.classes) this.errors[c]++;
    if (report.counters !== null) {
      this.txErrors = report.counters.tx;
      this.rxErrors = report.counters.rx;
    }
    if (report.state !== null) this.moveTo(report.state, "error-frame", report.classes.join(","));
  }

  /** The interface's netlink facts (kind "can" only: null for vcan and the like changes nothing). */
  linkInfo(can: CanLinkInfo | null): void {
    if (can === null) return;
    if (can.berr !== null) {
      this.txErrors = can.berr.tx;
      this.rxErrors = can.berr.rx;
    }
    if (can.state !== "unknown") this.moveTo(can.state, "netlink", "IFLA_CAN_STATE");
  }

  snapshot(): BusHealthSnapshot {
    return {
      state: this.stateNow,
      stateValue: BUS_STATE_VALUES[this.stateNow],
      errors: { ...this.errors },
      errorFrames: this.errorFrames,
      txErrors: this.txErrors,
      rxErrors: this.rxErrors,
      restarts: this.restarts,
      busOffs: this.busOffs,
      source: this.source,
      sinceMs: this.sinceMs,
    };
  }

  report(): BusHealthReport {
    return this.snapshot();
  }

  private moveTo(next: CanState, source: BusHealthSnapshot["source"], cause: string): void {
    this.source = source;
    const from = this.stateNow;
    if (next === from) return;
    this.stateNow = next;
    this.sinceMs = Date.now();
    if (next === "bus-off") this.busOffs++;
    // Leaving bus-off for a running state is a restart (automatic restart-ms, or `ip link … restart`).
    if (from === "bus-off" && next !== "stopped" && next !== "sleeping") this.restarts++;
    const fields = { from, to: next, source, cause, tx_errors: this.txErrors ?? "unknown", rx_errors: this.rxErrors ?? "unknown" };
    if (next === "error-active" || next === "stopped" || next === "sleeping") this.log.info("can_bus_state", fields);
    else if (next === "bus-off") this.log.error("can_bus_state", { ...fields, meaning: "the controller left the bus after too many transmit errors (check wiring, termination, bit rate)" });
    else this.log.warn("can_bus_state", fields);
  }
}
