/**
 * Module inventory: what is alive on an Ampio bus, keyed by the module's 29-bit CAN id. Per
 * module: first/last seen, frame count, a cheap moving frame rate, the state keys (subtypes) seen,
 * and the latest decoded values with their time. Modules silent for longer than `staleAfterMs`
 * are reported stale. Bounded whatever arrives: at most `maxModules` modules (the least recently
 * seen is evicted and counted) and at most `maxValuesPerModule` named values per module (new
 * names past the cap are dropped and counted). Pure: time is passed in (`now`, milliseconds, any
 * monotonic or wall clock the caller chooses), no timers, no I/O. See docs/ampio.md.
 */
import type { CanFrame } from "../can/frame.ts";
import { type AmpioReading, type DecodeResult, decodeAmpio, stateKeyName } from "./decoder.ts";

export interface InventoryOptions {
  /** Most modules held; the least recently seen is evicted past it. Default 256. */
  readonly maxModules?: number;
  /** Most named values held per module. Default 600 (every listed subtype at full length gives 594). */
  readonly maxValuesPerModule?: number;
  /** A module silent for longer than this is stale. Default 5 minutes. */
  readonly staleAfterMs?: number;
  /** Time constant of the frame-rate average. Default 10 s. */
  readonly rateTimeConstantMs?: number;
}

export const INVENTORY_DEFAULTS = {
  maxModules: 256,
  maxValuesPerModule: 600,
  staleAfterMs: 5 * 60_000,
  rateTimeConstantMs: 10_000,
} as const;

export interface InventoryCounters {
  /** Frames recorded against a module (every extended data frame that is not a command). */
  frames: number;
  /** Frames that decoded into values. */
  decoded: number;
  /** FE broadcasts with an unlisted subtype, and SATEL-shaped frames that are not a status. */
  unknown: number;
  /** Listed subtypes that no public decoder interprets. */
  undecoded: number;
  /** Listed subtypes too short for their first value. */
  short: number;
  /** Frames to the command ids (not recorded against any module). */
  commands: number;
  /** Standard-id, remote, error, CAN FD and inconsistent frames. */
  notAmpio: number;
  /** Modules evicted to keep the inventory within maxModules. */
  evictions: number;
  /** New value names refused because a module held maxValuesPerModule. */
  valuesDropped: number;
}

interface ValueSlot {
  value: number | boolean | string;
  unit: string | undefined;
  at: number;
}

interface ModuleEntry {
  readonly id: number;
  readonly firstSeen: number;
  lastSeen: number;
  frames: number;
  /** Exponentially decayed frame rate (frames/s) as of `lastSeen`. */
  rate: number;
  /** State key → frames seen with it (≤ 257 keys: subtypes 0..255 and the SATEL status). */
  readonly keys: Map<number, number>;
  unknownFrames: number;
  readonly values: Map<string, ValueSlot>;
}

export interface ModuleValueSnapshot {
  name: string;
  value: number | boolean | string;
  unit?: string;
  at: number;
}

export interface ModuleSnapshot {
  /** CAN id as a number and as 8 hex digits (the form candump and aioampio use). */
  id: number;
  idHex: string;
  firstSeen: number;
  lastSeen: number;
  ageMs: number;
  stale: boolean;
  frames: number;
  framesPerSecond: number;
  /** State keys seen: subtype (or 256 for the SATEL status), its hex form, name and count. */
  subtypes: { key: number; hex: string; name: string; frames: number }[];
  unknownFrames: number;
  values: ModuleValueSnapshot[];
}

export interface InventorySnapshot {
  now: number;
  staleAfterMs: number;
  maxModules: number;
  maxValuesPerModule: number;
  modules: ModuleSnapshot[];
  counters: InventoryCounters;
}

function positive(name: string, v: number): number {
  if (!Number.isFinite(v) || v <= 0) throw new RangeError(`${name} must be a positive number, got ${v}`);
  return v;
}

export class ModuleInventory {
  readonly maxModules: number;
  readonly maxValuesPerModule: number;
  readonly staleAfterMs: number;
  private readonly tauMs: number;
  /** Insertion order = least recently seen first (an entry is re-inserted on every frame). */
  private readonly modules = new Map<number, ModuleEntry>();
  private readonly c: InventoryCounters = {
    frames: 0,
    decoded: 0,
    unknown: 0,
    undecoded: 0,
    short: 0,
    commands: 0,
    notAmpio: 0,
    evictions: 0,
    valuesDropped: 0,
  };

  constructor(opts: InventoryOptions = {}) {
    this.maxModules = Math.floor(positive("maxModules", opts.maxModules ?? INVENTORY_DEFAULTS.maxModules));
    this.maxValuesPerModule = Math.floor(positive("maxValuesPerModule", opts.maxValuesPerModule ?? INVENTORY_DEFAULTS.maxValuesPerModule));
    this.staleAfterMs = positive("staleAfterMs", opts.staleAfterMs ?? INVENTORY_DEFAULTS.staleAfterMs);
    this.tauMs = positive("rateTimeConstantMs", opts.rateTimeConstantMs ?? INVENTORY_DEFAULTS.rateTimeConstantMs);
  }

  /** Decodes a frame, records it, and returns the decoding (for callers that publish it). */
  observe(frame: CanFrame, now: number): DecodeResult {
    const r = decodeAmpio(frame);
    this.record(r, now);
    return r;
  }

  /** Records an already decoded frame seen at `now`. */
  record(r: DecodeResult, now: number): void {
    switch (r.kind) {
      case "not-ampio":
        this.c.notAmpio++;
        return;
      case "command":
        this.c.commands++;
        return;
    }
    const m = this.touch(r.moduleId, now);
    this.c.frames++;
    switch (r.kind) {
      case "decoded":
        this.c.decoded++;
        this.countKey(m, r.key);
        this.storeValues(m, r.values, now);
        return;
      case "short":
        this.c.short++;
        this.countKey(m, r.key);
        return;
      case "undecoded":
        this.c.undecoded++;
        this.countKey(m, r.key);
        return;
      case "unknown":
        this.c.unknown++;
        m.unknownFrames++;
        return;
      case "other":
        return;
    }
  }

  get size(): number {
    return this.modules.size;
  }

  has(id: number): boolean {
    return this.modules.has(id);
  }

  counters(): Readonly<InventoryCounters> {
    return { ...this.c };
  }

  isStale(id: number, now: number): boolean {
    const m = this.modules.get(id);
    return m !== undefined && now - m.lastSeen > this.staleAfterMs;
  }

  /** Ids of the modules silent for longer than staleAfterMs, least recently seen first. */
  staleModules(now: number): number[] {
    const out: number[] = [];
    for (const m of this.modules.values()) if (now - m.lastSeen > this.staleAfterMs) out.push(m.id);
    return out;
  }

  /** Whether a module has reported a value of this name. */
  hasValue(id: number, name: string): boolean {
    return this.modules.get(id)?.values.has(name) ?? false;
  }

  /** Number of named values held for a module (0 if unknown). */
  valueCount(id: number): number {
    return this.modules.get(id)?.values.size ?? 0;
  }

  /** One module's picture, or undefined. */
  module(id: number, now: number): ModuleSnapshot | undefined {
    const m = this.modules.get(id);
    return m === undefined ? undefined : this.snap(m, now);
  }

  /** The whole inventory as plain JSON-safe data (for GET /api/ampio/modules), sorted by id. */
  snapshot(now: number): InventorySnapshot {
    const modules: ModuleSnapshot[] = [];
    for (const m of this.modules.values()) modules.push(this.snap(m, now));
    modules.sort((a, b) => a.id - b.id);
    return {
      now,
      staleAfterMs: this.staleAfterMs,
      maxModules: this.maxModules,
      maxValuesPerModule: this.maxValuesPerModule,
      modules,
      counters: this.counters(),
    };
  }

  // --- internals --------------------------------------------------------------------------------

  private touch(id: number, now: number): ModuleEntry {
    let m = this.modules.get(id);
    if (m === undefined) {
      if (this.modules.size >= this.maxModules) this.evictOldest();
      m = { id, firstSeen: now, lastSeen: now, frames: 0, rate: 0, keys: new Map(), unknownFrames: 0, values: new Map() };
    } else {
      this.modules.delete(id); // re-inserted below: the map stays ordered by last seen
      // A clock that steps back must not make the rate grow: treat it as no time passing.
      m.rate = this.decayed(m, now);
      if (now > m.lastSeen) m.lastSeen = now;
    }
    this.modules.set(id, m);
    m.frames++;
    m.rate += 1000 / this.tauMs;
    return m;
  }

  private evictOldest(): void {
    const oldest = this.modules.keys().next();
    if (oldest.done === true) return;
    this.modules.delete(oldest.value);
    this.c.evictions++;
  }

  private decayed(m: ModuleEntry, now: number): number {
    const dt = now - m.lastSeen;
    return dt <= 0 ? m.rate : m.rate * Math.exp(-dt / this.tauMs);
  }

  private countKey(m: ModuleEntry, key: number): void {
    m.keys.set(key, (m.keys.get(key) ?? 0) + 1);
  }

  private storeValues(m: ModuleEntry, values: readonly AmpioReading[], now: number): void {
    for (const v of values) {
      const slot = m.values.get(v.name);
      if (slot !== undefined) {
        slot.value = v.value;
        slot.unit = v.unit;
        slot.at = now;
      } else if (m.values.size < this.maxValuesPerModule) {
        m.values.set(v.name, { value: v.value, unit: v.unit, at: now });
      } else {
        this.c.valuesDropped++;
      }
    }
  }

  private snap(m: ModuleEntry, now: number): ModuleSnapshot {
    const ageMs = Math.max(0, now - m.lastSeen);
    const subtypes = [...m.keys]
      .sort((a, b) => a[0] - b[0])
      .map(([key, frames]) => ({ key, hex: `0x${key.toString(16).toUpperCase().padStart(2, "0")}`, name: stateKeyName(key) ?? "unknown", frames }));
    const values: ModuleValueSnapshot[] = [];
    for (const [name, s] of m.values) values.push(s.unit === undefined ? { name, value: s.value, at: s.at } : { name, value: s.value, unit: s.unit, at: s.at });
    return {
      id: m.id,
      idHex: m.id.toString(16).toUpperCase().padStart(8, "0"),
      firstSeen: m.firstSeen,
      lastSeen: m.lastSeen,
      ageMs,
      stale: ageMs > this.staleAfterMs,
      frames: m.frames,
      framesPerSecond: Math.round(this.decayed(m, now) * 1000) / 1000,
      subtypes,
      unknownFrames: m.unknownFrames,
      values,
    };
  }
}
