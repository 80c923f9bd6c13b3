/**
 * A mergeable latency histogram for benchmarks whose samples live in several processes: log-scale
 * buckets, 16 per doubling (≈4.4 % wide) from 1 µs to ~17 min, so a percentile read from merged
 * counts is within one bucket of the exact one.
 */
const PER_DOUBLING = 16;
const BUCKETS = PER_DOUBLING * 30;

export class Histogram {
  private readonly c = new Float64Array(BUCKETS);
  total = 0;

  /** Adds one latency in milliseconds. */
  add(ms: number): void {
    const us = ms * 1000;
    const i = us <= 1 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(us) * PER_DOUBLING));
    this.c[i]!++;
    this.total++;
  }

  clear(): void {
    this.c.fill(0);
    this.total = 0;
  }

  counts(): number[] {
    return Array.from(this.c);
  }

  merge(counts: readonly number[]): void {
    for (let i = 0; i < BUCKETS && i < counts.length; i++) {
      this.c[i]! += counts[i]!;
      this.total += counts[i]!;
    }
  }

  /** The p-th percentile in ms (upper edge of its bucket); NaN when empty. */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const want = (p / 100) * this.total;
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.c[i]!;
      if (seen >= want && this.c[i]! > 0) return 2 ** ((i + 1) / PER_DOUBLING) / 1000;
    }
    return NaN;
  }
}
