/**
 * A token bucket (rate limiter) for one client's transmit: `rate` tokens per second, at most
 * `burst` held. take(now) spends one token or says no. Pure: the caller passes the clock
 * (performance.now() milliseconds), so tests drive time. rate 0 means unlimited.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    if (!(rate >= 0) || !(burst >= 1)) throw new RangeError(`token bucket needs rate >= 0 and burst >= 1 (got ${rate}, ${burst})`);
    this.tokens = burst;
    this.last = now;
  }

  /** Spends one token if there is one. */
  take(now: number): boolean {
    if (this.rate === 0) return true;
    const elapsed = now - this.last;
    if (elapsed > 0) {
      this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
      this.last = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until take(now + result) can succeed (0: a token is there now). */
  waitMs(now: number): number {
    if (this.rate === 0) return 0;
    const tokens = Math.min(this.burst, this.tokens + (Math.max(0, now - this.last) * this.rate) / 1000);
    return tokens >= 1 ? 0 : ((1 - tokens) * 1000) / this.rate;
  }
}

/**
 * Frames per second a bus of `bitrate` bit/s carries at most: an extended 8-byte frame is 128
 * bits plus 3 bits of interframe space without stuffing (the Ampio bus at 50 kbit/s: ~382/s).
 */
export function busFrameRate(bitrate: number): number {
  return Math.floor(bitrate / 131);
}
