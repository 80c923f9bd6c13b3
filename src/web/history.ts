/**
 * The last minutes of the dashboard's rates, kept by the gateway (not the browser), so a page
 * opened now shows what the bus really did before it: one sample a second (StatusTracker.sample),
 * RATE_HISTORY_SECONDS of them in a fixed ring. Plain data, no I/O, bounded memory (4 numbers a
 * sample, 600 samples).
 */

/** Samples kept: 10 minutes at one a second. */
export const RATE_HISTORY_SECONDS = 600;

export interface RateSample {
  /** Wall-clock time of the sample, ms since the epoch. */
  readonly t: number;
  readonly inFps: number;
  readonly outFps: number;
  /** Bus load, 0..1. */
  readonly load: number;
}

/** The ring as columns, the shape a chart takes (uPlot: x in seconds, then one array per series). */
export interface RateHistoryColumns {
  /** Seconds since the epoch. */
  readonly t: number[];
  readonly inFps: number[];
  readonly outFps: number[];
  readonly load: number[];
}

export class RateHistory {
  private readonly ring: (RateSample | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity = RATE_HISTORY_SECONDS) {
    this.ring = new Array<RateSample | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(s: RateSample): void {
    this.ring[this.next] = s;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** Oldest first. */
  samples(): RateSample[] {
    const out: RateSample[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out.push(this.ring[(start + i) % this.capacity]!);
    return out;
  }

  columns(): RateHistoryColumns {
    const s = this.samples();
    const round = (v: number): number => Math.round(v * 100) / 100;
    return {
      t: s.map((x) => Math.round(x.t) / 1000),
      inFps: s.map((x) => round(x.inFps)),
      outFps: s.map((x) => round(x.outFps)),
      load: s.map((x) => Math.round(x.load * 10000) / 10000),
    };
  }
}
