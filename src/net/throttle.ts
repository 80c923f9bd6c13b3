/**
 * Throttles guessing: a host (an IPv4 address or IPv6 /64, as admission counts hosts) that fails
 * a secret check `maxFailures` times within `windowMs` is refused without a check for `windowMs`
 * (doubling on each further lock, up to `maxLockMs`), so a token cannot be guessed at the rate a
 * socket can carry (92,000 guesses/s were measured), while a user who mistypes it twice is not
 * bothered. Memory is bounded: at most `maxHosts` hosts are tracked (the stalest are forgotten).
 */
import { timingSafeEqual, createHash } from "node:crypto";
import { hostKey } from "./admission.ts";

interface HostFailures {
  failures: number;
  windowStart: number;
  lockedUntil: number;
  lockMs: number;
}

export class FailureThrottle {
  private readonly hosts = new Map<string, HostFailures>();

  constructor(
    private readonly maxFailures = 5,
    private readonly windowMs = 60_000,
    private readonly maxLockMs = 15 * 60_000,
    private readonly maxHosts = 4096,
  ) {}

  /** Milliseconds `address` must still wait before its next attempt is checked (0 = go ahead). */
  lockedFor(address: string, now = performance.now()): number {
    const h = this.hosts.get(hostKey(address));
    return h && h.lockedUntil > now ? Math.ceil(h.lockedUntil - now) : 0;
  }

  /** A failed attempt from `address`. */
  failed(address: string, now = performance.now()): void {
    const key = hostKey(address);
    let h = this.hosts.get(key);
    if (!h) {
      if (this.hosts.size >= this.maxHosts) this.forgetOne(now);
      h = { failures: 0, windowStart: now, lockedUntil: 0, lockMs: 0 };
    } else this.hosts.delete(key); // re-inserted below: Map order = staleness
    this.hosts.set(key, h);
    if (now - h.windowStart > this.windowMs) {
      h.windowStart = now;
      h.failures = 0;
    }
    if (++h.failures >= this.maxFailures) {
      h.lockMs = h.lockMs === 0 ? this.windowMs : Math.min(this.maxLockMs, h.lockMs * 2);
      h.lockedUntil = now + h.lockMs;
      h.failures = 0;
      h.windowStart = h.lockedUntil;
    }
  }

  /** A successful attempt: the host's record is cleared. */
  succeeded(address: string): void {
    this.hosts.delete(hostKey(address));
  }

  get tracked(): number {
    return this.hosts.size;
  }

  private forgetOne(now: number): void {
    for (const [k, h] of this.hosts) {
      if (h.lockedUntil <= now) {
        this.hosts.delete(k);
        return;
      }
    }
    const oldest = this.hosts.keys().next();
    if (!oldest.done) this.hosts.delete(oldest.value);
  }
}

/** Compares a presented secret with the expected one in constant time (length included: both are hashed first). */
export function secretMatches(given: string, want: string): boolean {
  if (want === "") return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(want).digest();
  return timingSafeEqual(a, b);
}
