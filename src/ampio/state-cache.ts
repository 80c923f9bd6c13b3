/**
 * The state-on-connect cache: the latest state-broadcast frame per (module id, subtype), so a
 * client that connects late can be handed the bus's current picture at once (neither Home
 * Assistant client library can ask a module for its state). Only frames that describe a lasting
 * state are kept: commands (ids 0x0F000000 and 0x0F002000), events (subtype 0x2B), unknown,
 * undecoded and too-short frames never are, and neither are one-off messages that are true only
 * when sent — the SATEL panel's response to a command (`10 EF <code>`: replayed later it would
 * look like a new answer and could re-fire an automation) and the `0x10` date/time broadcast (a
 * replayed clock is wrong by its age). Bounded: at most
 * `maxEntries` entries; past that the least recently updated entry is evicted and counted.
 * Pure: time is passed in, no timers. See docs/ampio.md.
 */
import { type CanFrame, type StampedFrame, dataFrame, stamp } from "../can/frame.ts";
import { type DecodeResult, decodeAmpio, SATEL_STATUS_KEY } from "./decoder.ts";

/** State keys that are one-off messages, not state (see the module comment). */
const NOT_STATE: ReadonlySet<number> = new Set([SATEL_STATUS_KEY, 0x10]);

/** Whether a decoded frame describes a lasting state (what the cache keeps and replays). */
export function isLastingState(r: DecodeResult): boolean {
  return r.kind === "decoded" && !NOT_STATE.has(r.key);
}

export interface StateCacheOptions {
  /** Most (module, subtype) entries held. Default 4096. */
  readonly maxEntries?: number;
}

export const STATE_CACHE_DEFAULTS = { maxEntries: 4096 } as const;

export interface StateCacheCounters {
  /** Frames stored (new entries and updates). */
  stored: number;
  /** Frames offered and refused (not a decodable state). */
  refused: number;
  /** Entries evicted to stay within maxEntries. */
  evictions: number;
  /** Entries removed by prune(). */
  expired: number;
}

interface Entry {
  readonly frame: StampedFrame;
  readonly at: number;
}

/** Key for (module id, state key): module ids are 29 bits, state keys 0..0x100 (9 bits). */
function entryKey(moduleId: number, key: number): number {
  return moduleId * 512 + key;
}

export class StateCache {
  readonly maxEntries: number;
  /** Insertion order = least recently updated first (an entry is re-inserted on update). */
  private readonly entries = new Map<number, Entry>();
  private readonly c: StateCacheCounters = { stored: 0, refused: 0, evictions: 0, expired: 0 };

  constructor(opts: StateCacheOptions = {}) {
    const max = opts.maxEntries ?? STATE_CACHE_DEFAULTS.maxEntries;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxEntries must be a positive integer, got ${max}`);
    this.maxEntries = max;
  }

  /**
   * Offers a bus frame seen at `now`; pass `decoded` if the caller already decoded it. Returns
   * whether it was stored. A stored frame is copied, so the caller may reuse its buffer; it keeps
   * the time it reached the gateway (a frame from the hub carries it; else `now`), so a replayed
   * state shows when the bus really sent it.
   */
  offer(frame: CanFrame | StampedFrame, now: number, decoded: DecodeResult = decodeAmpio(frame)): boolean {
    if (decoded.kind !== "decoded" || !isLastingState(decoded)) {
      this.c.refused++;
      return false;
    }
    const k = entryKey(decoded.moduleId, decoded.key);
    if (!this.entries.delete(k) && this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) {
        this.entries.delete(oldest.value);
        this.c.evictions++;
      }
    }
    const copy = dataFrame(decoded.moduleId, frame.data.slice(0, frame.len), true);
    const arrived = "ts" in frame ? stamp(copy, frame.ts, frame.bus, frame.hops) : stamp(copy, Math.floor(now * 1000), 0);
    this.entries.set(k, { frame: arrived, at: now });
    this.c.stored++;
    return true;
  }

  /**
   * The current picture: every entry no older than `maxAgeMs` at `now`, least recently updated
   * first (the order the bus last sent them). Entries from a clock that stepped back count as new.
   */
  snapshot(now: number, maxAgeMs: number): StampedFrame[] {
    const out: StampedFrame[] = [];
    for (const e of this.entries.values()) if (now - e.at <= maxAgeMs) out.push(e.frame);
    return out;
  }

  /** Removes entries older than `maxAgeMs`; returns how many. */
  prune(now: number, maxAgeMs: number): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (now - e.at > maxAgeMs) {
        this.entries.delete(k);
        n++;
      }
    }
    this.c.expired += n;
    return n;
  }

  get size(): number {
    return this.entries.size;
  }

  counters(): Readonly<StateCacheCounters> {
    return { ...this.c };
  }

  clear(): void {
    this.entries.clear();
  }
}
