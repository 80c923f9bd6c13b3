/**
 * How every way in reports a refusal: counted by the caller (a Stats field or metric), and
 * logged as one warning per 10 s burst carrying how many were not logged since (BurstLog), so a
 * flood of refused connections, requests, datagrams or token guesses costs a few log lines, never
 * a gigabyte of them. One instance per kind of refusal (its own event name and burst window).
 */
import { BurstLog } from "../ops/burst-log.ts";
import type { Logger } from "../ops/log.ts";

export class RefusalLog {
  private readonly burst: BurstLog;

  constructor(
    private readonly log: Logger,
    /** The log event, e.g. "client_rejected", "http_request_refused". */
    private readonly event: string,
    windowMs?: number,
  ) {
    this.burst = new BurstLog(windowMs);
  }

  /** Logs this refusal if it is the first of a burst; else it is only counted as not logged. */
  note(fields: Record<string, unknown>): void {
    const suppressed = this.burst.next();
    if (suppressed === null) return;
    this.log.warn(this.event, { ...fields, ...(suppressed > 0 ? { not_logged_before: suppressed } : {}) });
  }
}
