/**
 * The gateway's one clock for frame times (GUIDE "One clock"): wall-clock microseconds since the
 * Unix epoch, taken once when a frame reaches the hub and carried with it (StampedFrame.ts) to
 * every output — pcap, recorder, dashboard, socketcand, canlogserver, slcan, GVRET, MQTT.
 *
 * It follows the system clock's steps (a Raspberry Pi without an RTC boots at 1970 or at its last
 * shutdown time and is stepped by NTP minutes later; `performance.timeOrigin + performance.now()`
 * would stay off by that step for the whole uptime), yet keeps sub-millisecond resolution, which
 * Date.now() lacks: Date.now() anchors, the monotonic clock interpolates between its ticks, and
 * the anchor is renewed whenever the interpolation leaves Date.now()'s current millisecond (a
 * step, or monotonic drift). Intervals (timeouts, rates, ages) use the monotonic clock directly,
 * never this one.
 */

export interface WallClock {
  /** Wall-clock time in microseconds since the epoch (an integer). */
  nowUs(): number;
}

/** Sources a SystemClock reads; tests inject their own to step the wall clock. */
export interface ClockSources {
  /** Wall clock in ms since the epoch, integer resolution (Date.now). */
  wallMs(): number;
  /** Monotonic ms, sub-ms resolution (performance.now). */
  monoMs(): number;
}

const REAL_SOURCES: ClockSources = { wallMs: Date.now, monoMs: () => performance.now() };

export class SystemClock implements WallClock {
  private anchorWallUs = 0;
  private anchorMonoMs = 0;
  private last = 0;
  /** Times the anchor was renewed because the wall clock left the interpolation (tests, debugging). */
  reanchors = 0;

  constructor(private readonly src: ClockSources = REAL_SOURCES) {
    this.anchor(src.wallMs(), src.monoMs());
    this.reanchors = 0;
  }

  nowUs(): number {
    const mono = this.src.monoMs();
    const wallMs = this.src.wallMs();
    let us = this.anchorWallUs + Math.floor((mono - this.anchorMonoMs) * 1000);
    const wallUs = wallMs * 1000;
    if (us < wallUs || us >= wallUs + 1000) {
      // Outside Date.now()'s millisecond: the wall clock was stepped (or the monotonic clock
      // drifted a little). Re-anchor on it; the fraction of this millisecond is unknown, so the
      // first reading after a renewal sits at its start.
      const aheadUs = us - wallUs;
      this.anchor(wallMs, mono);
      us = wallUs;
      // A real step back (NTP, the operator) is followed; a drift correction of a millisecond
      // or two is not allowed to make time run backwards within a capture.
      if (aheadUs >= 2000) this.last = 0;
    }
    if (us < this.last) us = this.last;
    this.last = us;
    return us;
  }

  private anchor(wallMs: number, mono: number): void {
    this.anchorWallUs = wallMs * 1000;
    this.anchorMonoMs = mono;
    this.reanchors++;
  }
}

/** A clock the test sets (µs); `step` moves it like NTP would. Only for tests. */
export class ManualClock implements WallClock {
  constructor(public us: number) {}
  nowUs(): number {
    return this.us;
  }
  step(deltaUs: number): void {
    this.us += deltaUs;
  }
}

/** The process's clock (one instance, so every part of the gateway reads the same one). */
export const systemClock: WallClock = new SystemClock();
