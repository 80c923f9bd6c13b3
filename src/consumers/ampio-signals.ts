/**
 * Ampio values in the signal model (-signals-ampio): each module the Ampio decoder knows is a
 * group named Ampio_<8-hex id>, its decoded values (temperature.1, output.3, …) its signals, so
 * the dashboard's signals view, /api/signals, the MQTT signal topics and -dbc-metrics treat them
 * like DBC signals. Read-only over the decoder's inventory: what the Ampio features publish does
 * not change. A listener on the decoder moves a module's sequence number when it sent values.
 */
import type { DecodeResult } from "../ampio/index.ts";
import type { AmpioDecoder, AmpioListener } from "./ampio-decoder.ts";
import type { SignalGroup, SignalSource } from "./signal-model.ts";
import type { SignalReading } from "./signals.ts";

export const AMPIO_GROUP_PREFIX = "Ampio_";

function hex8(id: number): string {
  return id.toString(16).toUpperCase().padStart(8, "0");
}

interface ModuleGroup extends SignalGroup {
  seq: number;
}

export class AmpioSignals implements SignalSource, AmpioListener {
  readonly generation = 0;
  private readonly modules = new Map<number, ModuleGroup>();

  constructor(
    private readonly decoder: AmpioDecoder,
    private readonly now: () => number = Date.now,
  ) {
    decoder.addListener(this);
  }

  decoded(r: Extract<DecodeResult, { kind: "decoded" }>): void {
    const g = this.modules.get(r.moduleId) ?? this.create(r.moduleId);
    g.seq++;
  }

  moduleState(): void {}

  private create(id: number): ModuleGroup {
    const inv = this.decoder.inventory;
    const message = `${AMPIO_GROUP_PREFIX}${hex8(id)}`;
    const read = (only?: ReadonlySet<string>): SignalReading[] => {
      const m = inv.module(id, this.now());
      if (m === undefined) return [];
      const out: SignalReading[] = [];
      for (const v of m.values) {
        if (only !== undefined && !only.has(v.name)) continue;
        const num = typeof v.value === "number" ? v.value : typeof v.value === "boolean" ? (v.value ? 1 : 0) : Number.NaN;
        out.push({ message, signal: v.name, value: num, raw: Number.isNaN(num) ? 0 : num, unit: v.unit ?? "", valueName: typeof v.value === "string" ? v.value : undefined, at: v.at, rate: m.framesPerSecond });
      }
      return out;
    };
    const g: ModuleGroup = {
      key: {},
      message,
      seq: 0,
      read,
      signalNames: () => inv.module(id, this.now())?.values.map((v) => v.name) ?? [],
      searchKeys: () => inv.module(id, this.now())?.values.map((v) => `${message}.${v.name}`.toLowerCase()) ?? [],
      count: (only) => read(only).length,
      valueNames: () => [],
    };
    this.modules.set(id, g);
    return g;
  }

  /** Modules the inventory still holds (evicted ones are forgotten here too: bounded like it). */
  *groups(): Iterable<SignalGroup> {
    const inv = this.decoder.inventory;
    for (const [id, g] of this.modules) {
      if (!inv.has(id)) this.modules.delete(id);
      else yield g;
    }
  }

  group(message: string): SignalGroup | undefined {
    if (!message.startsWith(AMPIO_GROUP_PREFIX)) return undefined;
    const hex = message.slice(AMPIO_GROUP_PREFIX.length);
    if (!/^[0-9A-F]{8}$/.test(hex)) return undefined;
    const id = parseInt(hex, 16);
    if (!this.decoder.inventory.has(id)) return undefined;
    return this.modules.get(id) ?? this.create(id);
  }
}
