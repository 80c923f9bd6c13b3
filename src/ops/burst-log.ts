/**
 * Rate limit for a log line that can come in floods (refused connections, unreachable UDP
 * peers): the first event of each window is logged, the rest are only counted and reported with
 * the next logged one. Every event is still counted in Stats by the caller.
 */
export class BurstLog {
  private windowStart = -Infinity;
  private suppressed = 0;

  constructor(private readonly windowMs = 10_000) {}

  /** Call per event: null to stay quiet, else how many events were not logged before this one. */
  next(now = performance.now()): number | null {
    if (now - this.windowStart < this.windowMs) {
      this.suppressed++;
      return null;
    }
    const before = this.suppressed;
    this.windowStart = now;
    this.suppressed = 0;
    return before;
  }
}
