/**
 * The signal model the surfaces read (HTTP /api/signals, the dashboard's signals view, MQTT
 * signal topics, the dbc_signal_value gauges): named values grouped by message, from any source —
 * the DBC signal store (-dbc) and the Ampio decoder (-signals-ampio) alike. A source hands out
 * groups (a DBC message, an Ampio module) with a sequence number that moves when new data
 * arrived, and decodes a group's values only when asked.
 */
export type { SignalReading } from "./signals.ts";
import type * as Prom from "prom-client";
import type { SignalReading } from "./signals.ts";

export interface SignalGroup {
  /** Stable identity while the group lives (change tracking keys on it). */
  readonly key: object;
  /** The group's message name (the first part of "MESSAGE.SIGNAL"). */
  readonly message: string;
  /** Moves whenever new data for the group arrived. */
  readonly seq: number;
  /** Current values (only `only`'s signal names, when given). */
  read(only?: ReadonlySet<string>): SignalReading[];
  /** The group's signal names (values may be missing for some). */
  signalNames(): readonly string[];
  /** "message.signal" in lower case, parallel to signalNames() (the dashboard filter matches on it). */
  searchKeys(): readonly string[];
  /** How many of `only` (all when undefined) have a value, decoding as little as possible. */
  count(only?: ReadonlySet<string>): number;
  /** Value-table names of a signal, for Home Assistant enum sensors (empty: none). */
  valueNames(signal: string): readonly string[];
}

export interface SignalSource {
  /** Bumped when the set of groups was rebuilt (a DBC reload): derived state must be dropped. */
  readonly generation: number;
  /** Groups that have values. */
  groups(): Iterable<SignalGroup>;
  group(message: string): SignalGroup | undefined;
}

/** All sources of one bus, read as one. */
export class SignalModel {
  constructor(
    readonly bus: string,
    readonly sources: readonly SignalSource[],
  ) {}

  get generation(): number {
    let g = 0;
    for (const s of this.sources) g += s.generation;
    return g;
  }

  *groups(): Iterable<SignalGroup> {
    for (const s of this.sources) yield* s.groups();
  }

  group(message: string): SignalGroup | undefined {
    for (const s of this.sources) {
      const g = s.group(message);
      if (g !== undefined) return g;
    }
    return undefined;
  }

  /** Every current value, or those of `keys` ("MESSAGE.SIGNAL"). */
  readAll(keys?: ReadonlySet<string>): SignalReading[] {
    const out: SignalReading[] = [];
    if (keys === undefined) {
      for (const g of this.groups()) out.push(...g.read());
      return out;
    }
    const byMessage = new Map<string, Set<string>>();
    for (const k of keys) {
      const dot = k.indexOf(".");
      if (dot < 0) continue;
      const m = k.slice(0, dot);
      let set = byMessage.get(m);
      if (set === undefined) byMessage.set(m, (set = new Set()));
      set.add(k.slice(dot + 1));
    }
    for (const [m, names] of byMessage) out.push(...(this.group(m)?.read(names) ?? []));
    return out;
  }

  /**
   * Values whose "MESSAGE.SIGNAL" contains `match` (case-insensitive), at most `limit`, decoding
   * only those; `total` counts every match that has a value.
   */
  readMatching(match: string, limit: number): { readings: SignalReading[]; total: number } {
    const m = match.toLowerCase();
    const readings: SignalReading[] = [];
    let total = 0;
    for (const g of this.groups()) {
      // An empty filter takes every signal without building name sets.
      let names: Set<string> | undefined;
      if (m !== "") {
        const keys = g.searchKeys();
        const all = g.signalNames();
        names = new Set<string>();
        for (let i = 0; i < keys.length; i++) if (keys[i]!.includes(m)) names.add(all[i]!);
        if (names.size === 0) continue;
      }
      if (readings.length < limit) {
        const rs = g.read(names);
        for (const r of rs) if (readings.length < limit) readings.push(r);
        total += rs.length;
      } else {
        total += g.count(names);
      }
    }
    return { readings, total };
  }
}

/** dbc_signal_value{bus,message,signal,unit} for the chosen keys only (bounded cardinality). */
export function registerSignalGauge(registry: Prom.Registry, prom: typeof Prom, models: readonly SignalModel[], chosen: readonly string[]): void {
  if (chosen.length === 0) return;
  const keys = new Set(chosen);
  new prom.Gauge({
    name: "dbc_signal_value",
    help: "Current value of the signals chosen with -dbc-metrics (absent until a frame carried them).",
    labelNames: ["bus", "message", "signal", "unit"],
    registers: [registry],
    collect() {
      this.reset();
      for (const model of models) for (const r of model.readAll(keys)) if (Number.isFinite(r.value)) this.set({ bus: model.bus, message: r.message, signal: r.signal, unit: r.unit }, r.value);
    },
  });
}
