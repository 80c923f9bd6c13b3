/**
 * The link-state machine every backend with a device that can vanish shares (serial adapter,
 * SocketCAN interface, slcan adapter, a remote gateway): the up/down state the hub sees, one
 * down report per outage, reconnects counted, a reconnect backoff that starts small again only
 * after the link stayed up for a while (a device that opens and fails at once is retried at the
 * grown delay, not in a tight loop), the busy → txReady latch, and outcome reports that a throwing
 * callback cannot break. The backend keeps its I/O and its own log lines; this keeps the rules.
 *
 *   start ──open fails──▶ stillDown()/wentDown() ──scheduleRetry()──▶ open …
 *   open ok ──▶ wentUp() ── device lost ──▶ wentDown() (stable-up check) ──▶ scheduleRetry()
 */
import type { Logger } from "../ops/log.ts";
import type { Stats } from "../ops/stats.ts";
import type { BackendListener, TxLoss, TxRequest } from "./backend.ts";
import { Backoff, type BackoffOptions } from "./backoff.ts";

export interface LinkStateOptions {
  readonly reconnect: BackoffOptions;
  /** The backoff starts from its first delay again only after the link stayed up this long. */
  readonly stableUpMs: number;
  readonly stats: Stats;
  readonly log: Logger;
  /** Prefix of this backend's log events, e.g. "serial" → serial_tx_callback_failed. */
  readonly name: string;
}

/** What wentUp() knew about the outage it ends. */
export interface Recovery {
  /** The link was up before (this is a reconnect, counted in `reconnects`). */
  readonly reconnect: boolean;
  /** An outage had been reported to the listener (also at start-up). */
  readonly outageReported: boolean;
  /** Why the link was down until now ("" if it never was reported down). */
  readonly lastDownReason: string;
}

export class LinkState {
  private readonly backoff: Backoff;
  private readonly stableUpMs: number;
  private readonly stats: Stats;
  private readonly log: Logger;
  private readonly name: string;

  private listener: BackendListener | null = null;
  private isUp = false;
  private reason = "not started";
  private everUp = false;
  private upSince = 0;
  private reconnectCount = 0;
  /** True while an outage has been reported (so it is reported once). */
  private outageReported = false;
  private stopped = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** send() answered "busy": txReady() is owed, also across a reconnect. */
  private busy = false;

  constructor(options: LinkStateOptions) {
    this.backoff = new Backoff(options.reconnect);
    this.stableUpMs = options.stableUpMs;
    this.stats = options.stats;
    this.log = options.log;
    this.name = options.name;
  }

  /** The listener that state changes, txReady and nothing else go to. */
  attach(listener: BackendListener): void {
    this.listener = listener;
    this.stopped = false;
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Why the link is down ("" while up). */
  get downReason(): string {
    return this.isUp ? "" : this.reason;
  }

  /** Times the link came back after an outage. (stats.backendReconnects is counted by the gateway from state() events.) */
  get reconnects(): number {
    return this.reconnectCount;
  }

  /** Whether the link was ever up (a failure before that is a start-up problem). */
  get wasEverUp(): boolean {
    return this.everUp;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** The link is up: tells the listener, counts a reconnect if it was up before. */
  wentUp(): Recovery {
    const recovery: Recovery = { reconnect: this.everUp, outageReported: this.outageReported, lastDownReason: this.outageReported ? this.reason : "" };
    if (this.everUp) this.reconnectCount++;
    this.everUp = true;
    this.outageReported = false;
    this.isUp = true;
    this.reason = "";
    this.upSince = performance.now();
    this.stats.backendUp = true;
    this.listener?.state(true, "");
    return recovery;
  }

  /**
   * The link is down. The first report of an outage goes to the listener and returns true (the
   * caller logs it); later ones only update the reason. Going down after a stable-up window
   * restarts the backoff from its first delay.
   */
  wentDown(reason: string): boolean {
    const wasUp = this.isUp;
    this.isUp = false;
    this.stats.backendUp = false;
    if (wasUp && performance.now() - this.upSince >= this.stableUpMs) this.backoff.reset();
    this.reason = reason;
    if (!wasUp && this.outageReported) return false;
    this.outageReported = true;
    this.listener?.state(false, reason);
    return true;
  }

  /** Still down (e.g. another failed reopen): updates the reason, tells nobody. */
  stillDown(reason: string): void {
    this.reason = reason;
  }

  /** Stopped for good: down with reason "stopped", no retry pending or scheduled from now on. */
  stop(): void {
    this.stopped = true;
    this.cancelRetry();
    this.isUp = false;
    this.reason = "stopped";
    this.stats.backendUp = false;
  }

  /** The delay before the next reconnect attempt (grows with each call). */
  nextDelay(): number {
    return this.backoff.next();
  }

  /** Whether a reconnect attempt is waiting for its timer. */
  get retryPending(): boolean {
    return this.retryTimer !== null;
  }

  /** Runs `attempt` after `delay` (default: the next backoff delay), unless stopped or one is pending. */
  scheduleRetry(attempt: () => void, delay?: number): void {
    if (this.stopped || this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped) attempt();
    }, delay ?? this.backoff.next());
  }

  cancelRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** send() answered "busy": one txReady() is owed. */
  markBusy(): void {
    this.busy = true;
  }

  /** Calls listener.txReady() once after "busy", when `hasRoom`. */
  txReady(hasRoom = true): void {
    if (!this.busy || !hasRoom) return;
    this.busy = false;
    try {
      this.listener?.txReady();
    } catch (e) {
      this.log.error(`${this.name}_tx_callback_failed`, { error: errorText(e) });
    }
  }

  /** Reports outcomes; a throwing callback is logged and never stops the others. */
  report(reqs: readonly TxRequest[], outcome: TxLoss | "sent"): void {
    for (const req of reqs) {
      try {
        if (outcome === "sent") req.sent();
        else req.lost(outcome);
      } catch (e) {
        this.log.error(`${this.name}_tx_callback_failed`, { error: errorText(e) });
      }
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
