/**
 * Reconnect delays for backends that lose their device (serial adapter unplugged, CAN interface
 * down): capped exponential backoff. Pure: it only computes delays, the caller owns the timer.
 * `next()` returns the delay to wait before the next attempt and grows it; `reset()` after a
 * successful (re)connect starts again from the initial delay.
 */

export interface BackoffOptions {
  /** First delay in milliseconds (e.g. 20). */
  readonly initialMs: number;
  /** Upper bound on any delay (e.g. 1000). */
  readonly maxMs: number;
  /** Growth per attempt (e.g. 2). Values below 1 are treated as 1 (constant delay). */
  readonly factor: number;
}

export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private current: number;
  private count = 0;

  constructor({ initialMs, maxMs, factor }: BackoffOptions) {
    this.initialMs = Math.max(0, initialMs);
    this.maxMs = Math.max(this.initialMs, maxMs);
    this.factor = Math.max(1, factor);
    this.current = this.initialMs;
  }

  /** Number of delays handed out since construction or the last reset(). */
  get attempts(): number {
    return this.count;
  }

  /** The delay before the next attempt; each call grows the following one up to maxMs. */
  next(): number {
    const delay = this.current;
    this.current = Math.min(this.maxMs, this.current * this.factor);
    this.count++;
    return delay;
  }

  /** Back to the initial delay (call after a successful connect). */
  reset(): void {
    this.current = this.initialMs;
    this.count = 0;
  }
}
