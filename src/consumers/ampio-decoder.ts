/**
 * The Ampio decoder as a hub consumer: every bus frame is queued (bounded, -hub-policy applies
 * when full, as for any client) and decoded in batches off the hot path — the hub only pays for
 * an enqueue; a setImmediate drains at most BATCH frames per turn into the ModuleInventory and
 * the StateCache (src/ampio/, pure). Listeners (the MQTT bridge) are told about every decoded
 * frame and about modules coming online or going stale; a sweep timer finds the stale ones.
 * Also: the state-on-connect frames for new clients (-ampio-state-replay), the JSON inventory
 * for GET /api/ampio/modules, and the ampio_* Prometheus series (bounded label cardinality:
 * METRIC_MAX_MODULES modules, numeric sensor values only). See docs/ampio.md.
 */
import type * as Prom from "prom-client";
import { type DecodeResult, HouseNames, type InventorySnapshot, ModuleInventory, StateCache } from "../ampio/index.ts";
import { type CanFrame, type StampedFrame, isError, isExtended, isRemote } from "../can/frame.ts";
import type { Config } from "../cli/config.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import { BatchDrain } from "../hub/batch-drain.ts";
import type { Logger } from "../ops/log.ts";
import { mirrorCounter } from "../ops/prom-mirror.ts";

/** Frames the decoder may hold before the hub's policy applies. ~10 s of a saturated Ampio bus. */
export const DECODER_QUEUE_FRAMES = 4096;
/** Frames decoded per event-loop turn: bounded work, so a burst never holds the loop. */
export const DECODER_BATCH = 512;
/** Prometheus: at most this many modules get per-module series (the most recently seen). */
export const METRIC_MAX_MODULES = 64;
/** Protocols whose new clients get the state replay: Home Assistant's Ampio integration speaks Waveshare. */
export const REPLAY_PROTOCOLS: ReadonlySet<string> = new Set(["waveshare"]);

/** What a consumer of decoded frames (the MQTT bridge) is told. All calls come off the hot path. */
export interface AmpioListener {
  decoded(r: Extract<DecodeResult, { kind: "decoded" }>, at: number): void;
  /** A module sent its first frame, or its first after being stale (online), or went stale. */
  moduleState(moduleId: number, online: boolean): void;
  /** An event broadcast (FE 2B …): one-off, not a state. */
  event?(moduleId: number, data: Uint8Array, at: number): void;
}

/** Subtype of the event broadcasts. */
const EVENT_SUBTYPE = 0x2b;

/** Whether -ampio-decode (with "auto") turns the decoder on for this configuration. */
export function ampioDecodeEnabled(config: Config): boolean {
  if (config.ampioDecode !== "auto") return config.ampioDecode === "true";
  return config.backend === "serial" || config.mqttUrl !== "" || config.ampioStateReplay || config.mqttAmpio;
}

export interface AmpioDecoderOptions {
  readonly id: number;
  readonly staleAfterMs: number;
  readonly stateMaxAgeMs: number;
  readonly log: Logger;
  readonly queueFrames?: number;
  /** Wall clock in ms (tests inject one). */
  readonly now?: () => number;
  /** -ampio-names: names and rooms for the API (ids only without). */
  readonly names?: HouseNames;
}

export interface AmpioDecoderCounters {
  /** Frames decoded (taken off the queue). */
  processed: number;
  /** Frames the hub could not queue (queue full), plus those cleared when kicked. */
  dropped: number;
  /** Times the hub's kick policy detached the decoder (it re-attaches). */
  kicked: number;
}

export class AmpioDecoder implements HubClient {
  readonly protocol = "ampio";
  readonly remote = "in-process";
  readonly receiving = true;
  /**
   * Only what modules put on the bus: a client's frames (echoed to other clients) never reach the
   * decoder, so a client with TX rights cannot invent modules, retained MQTT states or Home
   * Assistant devices by sending state-broadcast-shaped frames.
   */
  readonly wantsEcho = false;
  dropped = 0;
  readonly inventory: ModuleInventory;
  readonly cache = new StateCache();
  /** Decoded in batches of at most DECODER_BATCH frames per event-loop turn. */
  private readonly queue: BatchDrain<CanFrame>;
  private readonly listeners: AmpioListener[] = [];
  /** Modules announced online to listeners (pruned to the inventory on every sweep). */
  private readonly online = new Set<number>();
  private readonly now: () => number;
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  private hub: Hub | null = null;
  private readonly c: AmpioDecoderCounters = { processed: 0, dropped: 0, kicked: 0 };

  constructor(private readonly opts: AmpioDecoderOptions) {
    this.inventory = new ModuleInventory({ staleAfterMs: opts.staleAfterMs });
    this.queue = new BatchDrain<CanFrame>(opts.queueFrames ?? DECODER_QUEUE_FRAMES, DECODER_BATCH, (batch) => {
      const now = this.now();
      for (const f of batch) this.process(f, now);
      this.c.processed += batch.length;
    });
    this.now = opts.now ?? Date.now;
    this.idValue = opts.id;
  }

  private idValue: number;

  get id(): number {
    return this.idValue;
  }

  /** Hub client ids come from the gateway's registry, which exists only after the decoder. */
  setId(id: number): void {
    this.idValue = id;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Only what an Ampio bus carries: extended classic data frames. */
  accepts(f: CanFrame): boolean {
    return isExtended(f) && !f.fd && !isRemote(f) && !isError(f);
  }

  enqueue(f: CanFrame): boolean {
    if (this.queue.offer(f)) return true;
    this.c.dropped++;
    return false;
  }

  /** The hub's kick policy found the queue full: clear the backlog (counted) and come back. */
  kick(reason: string): void {
    this.c.kicked++;
    this.c.dropped += this.queue.clear();
    this.opts.log.warn("ampio_decoder_kicked", { reason, reattach: true });
    const hub = this.hub;
    if (hub !== null) setImmediate(() => this.hub === hub && hub.attach(this));
  }

  attach(hub: Hub): void {
    this.hub = hub;
    hub.attach(this);
    const every = Math.max(250, Math.min(10_000, Math.floor(this.opts.staleAfterMs / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref?.();
  }

  detach(): void {
    if (this.hub !== null) this.hub.detach(this);
    this.hub = null;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  addListener(l: AmpioListener): void {
    this.listeners.push(l);
  }

  /** Modules currently announced online (for a listener that (re)connects and republishes). */
  onlineModules(): number[] {
    return [...this.online];
  }

  /** Whether a module has been heard by this process and is not stale. */
  isOnline(id: number): boolean {
    return this.online.has(id);
  }

  counters(): Readonly<AmpioDecoderCounters> {
    return { ...this.c };
  }

  /** State-on-connect frames for a new client of `protocol` (empty for other protocols). */
  replayFor(protocol: string): StampedFrame[] {
    if (!REPLAY_PROTOCOLS.has(protocol)) return [];
    return this.cache.snapshot(this.now(), this.opts.stateMaxAgeMs);
  }

  /** Decodes one frame now (drain() and tests). */
  process(f: CanFrame, now: number): void {
    const inv = this.inventory;
    const r = inv.observe(f, now);
    if (r.kind === "command" || r.kind === "not-ampio") return;
    const id = r.moduleId;
    if (!this.online.has(id)) {
      this.online.add(id);
      for (const l of this.listeners) l.moduleState(id, true);
    }
    if (r.kind === "undecoded" && r.key === EVENT_SUBTYPE) {
      for (const l of this.listeners) l.event?.(id, f.data, now);
      return;
    }
    if (r.kind !== "decoded") return;
    this.cache.offer(f, now, r);
    for (const l of this.listeners) l.decoded(r, now);
  }

  /** Marks stale modules offline; drops ids the inventory evicted; prunes the replay cache. */
  sweep(now = this.now()): void {
    for (const id of this.inventory.staleModules(now)) {
      if (!this.online.delete(id)) continue;
      this.opts.log.info("ampio_module_stale", { module: hex8(id), silent_ms: this.opts.staleAfterMs });
      for (const l of this.listeners) l.moduleState(id, false);
    }
    for (const id of this.online) if (!this.inventory.has(id)) this.online.delete(id);
    this.cache.prune(now, this.opts.stateMaxAgeMs);
  }

  /** The names file in use (empty without -ampio-names). */
  get names(): HouseNames {
    return this.opts.names ?? HouseNames.EMPTY;
  }

  /**
   * The inventory with the names file's names: per module `name` and `room` (absent when the file
   * has none), per value `label` and `room` of its channel. Modules named in the file but not yet
   * heard are not listed (the inventory is what is on the bus).
   */
  namedSnapshot(now: number): InventorySnapshot & { names: string } {
    const snap = this.inventory.snapshot(now);
    const names = this.names;
    for (const m of snap.modules) {
      const n = names.module(m.id);
      if (n === undefined) continue;
      const o = m as typeof m & { name?: string; room?: string };
      if (n.name !== undefined) o.name = n.name;
      if (n.room !== undefined) o.room = n.room;
      for (const v of m.values) {
        const c = names.channel(m.id, v.name);
        if (c === undefined) continue;
        const vo = v as typeof v & { label?: string; room?: string; kind?: string };
        vo.label = c.name;
        if (c.room !== undefined) vo.room = c.room;
        if (c.kind !== undefined) vo.kind = c.kind;
      }
    }
    return { ...snap, names: names.file };
  }

  /** GET /api/ampio/modules; `extra` adds fields (e.g. whether the dashboard may send commands). */
  httpRoute(extra: () => Record<string, unknown> = () => ({})): (req: Request) => Response {
    return (req) => {
      if (req.method !== "GET" && req.method !== "HEAD") {
        return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
      }
      const body = { ...this.namedSnapshot(this.now()), decoder: this.counters(), stateCache: { size: this.cache.size, ...this.cache.counters() }, ...extra() };
      return new Response(JSON.stringify(body), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
    };
  }

  /**
   * ampio_* series. Per module: ampio_module_last_seen_seconds{module} and
   * ampio_module_value{module,name,unit} for values with a unit (temperatures, voltages), for at
   * most METRIC_MAX_MODULES modules, the most recently seen; ≤ 51 such values per module (one
   * temperature, two diagnostics, 16 heating zones × 3), so at most 3,264 value series.
   */
  registerMetrics(registry: Prom.Registry, prom: typeof Prom): void {
    const { Counter, Gauge } = prom;
    const self = this;
    const counter = (name: string, help: string, read: () => number): void => void mirrorCounter(Counter, registry, name, help, read);
    counter("ampio_decoded_frames_total", "Frames the Ampio decoder decoded into values.", () => this.inventory.counters().decoded);
    counter("ampio_processed_frames_total", "Frames the Ampio decoder took off its queue.", () => this.c.processed);
    counter("ampio_dropped_frames_total", "Frames the Ampio decoder lost because its queue was full (also in hub_dropped_frames_total).", () => this.c.dropped);
    counter("ampio_unknown_frames_total", "Ampio broadcasts of unlisted subtypes (counted, never guessed).", () => this.inventory.counters().unknown);
    counter("ampio_module_evictions_total", "Modules evicted to keep the inventory bounded.", () => this.inventory.counters().evictions);
    new Gauge({
      name: "ampio_modules",
      help: "Modules in the Ampio inventory, by state (online, stale).",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const total = self.inventory.size;
        const stale = self.inventory.staleModules(self.now()).length;
        this.set({ state: "online" }, total - stale);
        this.set({ state: "stale" }, stale);
      },
    });
    const lastSeen = new Gauge({
      name: "ampio_module_last_seen_seconds",
      help: `Seconds since an Ampio module's last frame (the ${METRIC_MAX_MODULES} most recently seen modules).`,
      labelNames: ["module"],
      registers: [],
    });
    // Registered first, filled by one collect() with the last-seen gauge: both describe the same modules.
    new Gauge({
      name: "ampio_module_value",
      help: `Latest decoded sensor value of an Ampio module (temperatures in °C, voltages in V; the ${METRIC_MAX_MODULES} most recently seen modules).`,
      labelNames: ["module", "name", "unit"],
      registers: [registry],
      collect() {
        this.reset();
        lastSeen.reset();
        const snap = self.inventory.snapshot(self.now());
        const recent = snap.modules.sort((a, b) => b.lastSeen - a.lastSeen).slice(0, METRIC_MAX_MODULES);
        for (const m of recent) {
          lastSeen.set({ module: m.idHex }, m.ageMs / 1000);
          for (const v of m.values) {
            if (v.unit === undefined || typeof v.value !== "number") continue;
            this.set({ module: m.idHex, name: v.name, unit: v.unit === "°C" ? "celsius" : "volts" }, v.value);
          }
        }
      },
    });
    registry.registerMetric(lastSeen);
  }
}

export function hex8(id: number): string {
  return id.toString(16).toUpperCase().padStart(8, "0");
}
