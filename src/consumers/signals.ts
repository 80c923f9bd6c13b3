/**
 * DBC signals as a hub consumer (-dbc FILE; docs/dbc.md). Every bus frame of a message the DBC
 * knows is queued (bounded; -hub-policy applies when full, as for any client) and, off the hot
 * path, stored as the latest frame of its message — one slot per multiplexer branch, so every
 * branch's signals stay visible. Nothing is decoded on arrival: the surfaces decode the stored
 * frames when they look (the HTTP API and dashboard on request, MQTT and Prometheus at their own
 * pace), so a saturated bus costs a map lookup and a store per frame, and decoding costs what is
 * shown. Rates are per message slot, smoothed over a few seconds.
 *
 * Reload (SIGHUP): a new codec replaces the old one atomically; stored frames are kept for the
 * messages the new file still has under the same id and name.
 */
import { type CanFrame, CAN_EFF_FLAG, isError, isRemote, type StampedFrame } from "../can/frame.ts";
import { DbcCodec, type MessageCodec, type RawValue } from "../dbc/index.ts";
import { BatchDrain } from "../hub/batch-drain.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import type { SignalGroup, SignalSource } from "./signal-model.ts";

/** Frames held before the hub's policy applies (~1 s of a saturated 1 Mbit/s bus). */
export const SIGNALS_QUEUE_FRAMES = 8192;
/** Frames stored per event-loop turn. */
export const SIGNALS_BATCH = 2048;
/** Multiplexer branches remembered per message (the least recently seen goes first). */
export const MAX_BRANCHES = 256;
/** Rate smoothing: each second's count weighs this much (≈ 5 s time constant). */
const RATE_ALPHA = 0.2;
const RATE_TICK_MS = 1000;

/** The latest frame of one message (or one multiplexer branch of it). */
interface Slot {
  data: Uint8Array;
  /** Wall-clock ms of the latest frame. */
  at: number;
  count: number;
  prevCount: number;
  /** Frames per second, smoothed. */
  rate: number;
}

export interface MessageState {
  readonly mc: MessageCodec;
  /** Branch key (multiplexor raw values) → slot; one entry keyed "" for plain messages. */
  readonly slots: Map<string, Slot>;
  /** Bumped on every stored frame (surfaces compare it to find what changed). */
  seq: number;
}

/** One decoded signal as the surfaces show it. */
export interface SignalReading {
  readonly message: string;
  readonly signal: string;
  readonly value: number;
  readonly raw: RawValue;
  readonly unit: string;
  readonly valueName: string | undefined;
  /** Wall-clock ms of the frame it came from. */
  readonly at: number;
  /** Frames per second carrying it. */
  readonly rate: number;
}

export interface SignalStoreCounters {
  /** Frames of known messages taken off the queue. */
  stored: number;
  /** Frames lost because the queue was full (also in hub_dropped_frames_total), or cleared when kicked. */
  dropped: number;
  kicked: number;
  /** Multiplexer branches forgotten to keep a message's slots bounded. */
  branchEvictions: number;
  reloads: number;
  reloadFailures: number;
}

export interface SignalStoreOptions {
  readonly bus: string;
  readonly file: string;
  readonly log: Logger;
  readonly queueFrames?: number;
}

export class SignalStore implements HubClient, SignalSource {
  readonly protocol = "dbc";
  readonly remote = "in-process";
  readonly receiving = true;
  dropped = 0;
  private idValue = 0;
  private codecValue: DbcCodec;
  private states = new Map<number, MessageState>();
  private readonly queue: BatchDrain<StampedFrame>;
  private hub: Hub | null = null;
  private rateTimer: ReturnType<typeof setInterval> | null = null;
  private readonly c: SignalStoreCounters = { stored: 0, dropped: 0, kicked: 0, branchEvictions: 0, reloads: 0, reloadFailures: 0 };
  /** Bumped when the codec changes (surfaces rebuild what they derived from it). */
  generation = 0;
  private readonly groupCache = new WeakMap<MessageState, SignalGroup>();

  constructor(
    codec: DbcCodec,
    private readonly opts: SignalStoreOptions,
  ) {
    this.codecValue = codec;
    this.queue = new BatchDrain<StampedFrame>(opts.queueFrames ?? SIGNALS_QUEUE_FRAMES, SIGNALS_BATCH, (batch) => {
      // The frame's own arrival time (stamped once at the hub), not when the queue drained.
      for (const f of batch) this.store(f, f.ts / 1000);
      this.c.stored += batch.length;
    });
    this.states = this.statesFor(codec, new Map());
  }

  get id(): number {
    return this.idValue;
  }
  setId(id: number): void {
    this.idValue = id;
  }
  get queued(): number {
    return this.queue.length;
  }
  get codec(): DbcCodec {
    return this.codecValue;
  }
  get bus(): string {
    return this.opts.bus;
  }
  get file(): string {
    return this.opts.file;
  }
  counters(): Readonly<SignalStoreCounters> {
    return { ...this.c };
  }

  /** Data frames of messages the DBC describes; everything else never enters the queue. */
  accepts(f: CanFrame): boolean {
    return !isRemote(f) && !isError(f) && this.states.has(f.canId);
  }

  enqueue(f: StampedFrame): boolean {
    if (this.queue.offer(f)) return true;
    this.c.dropped++;
    return false;
  }

  kick(reason: string): void {
    this.c.kicked++;
    this.c.dropped += this.queue.clear();
    this.opts.log.warn("dbc_signals_kicked", { reason, reattach: true });
    const hub = this.hub;
    if (hub !== null) setImmediate(() => this.hub === hub && hub.attach(this));
  }

  attach(hub: Hub): void {
    this.hub = hub;
    hub.attach(this);
    this.rateTimer = setInterval(() => this.tickRates(), RATE_TICK_MS);
    this.rateTimer.unref?.();
  }

  detach(): void {
    this.hub?.detach(this);
    this.hub = null;
    if (this.rateTimer !== null) clearInterval(this.rateTimer);
    this.rateTimer = null;
  }

  /** Swaps in a new database (SIGHUP); slots of messages with the same id and name are kept. */
  replaceCodec(codec: DbcCodec): void {
    this.states = this.statesFor(codec, this.states);
    this.codecValue = codec;
    this.generation++;
    this.c.reloads++;
  }

  reloadFailed(): void {
    this.c.reloadFailures++;
  }

  private statesFor(codec: DbcCodec, old: Map<number, MessageState>): Map<number, MessageState> {
    const m = new Map<number, MessageState>();
    for (const mc of codec.messages) {
      if (m.has(mc.canId)) continue;
      const prev = old.get(mc.canId);
      const keep = prev !== undefined && prev.mc.message.name === mc.message.name;
      m.set(mc.canId, { mc, slots: keep ? prev.slots : new Map(), seq: keep ? prev.seq + 1 : 0 });
    }
    return m;
  }

  /** The state of a message by its SocketCAN id word. */
  state(canId: number): MessageState | undefined {
    return this.states.get((canId & (CAN_EFF_FLAG | 0x1fffffff)) >>> 0);
  }

  messageStates(): IterableIterator<MessageState> {
    return this.states.values();
  }

  /** Stores one frame as its message's (branch's) latest, arrived at `now` (ms); drain() and tests. */
  store(f: CanFrame, now: number): void {
    const st = this.states.get(f.canId);
    if (st === undefined) return; // the codec changed while the frame waited
    const key = st.mc.multiplexed ? branchKey(st.mc, f.data) : "";
    let slot = st.slots.get(key);
    if (slot === undefined) {
      if (st.slots.size >= MAX_BRANCHES) this.evictOldest(st);
      slot = { data: f.data, at: now, count: 0, prevCount: 0, rate: 0 };
      st.slots.set(key, slot);
    }
    slot.data = f.data; // frames are immutable once on the hub: no copy
    slot.at = now;
    slot.count++;
    st.seq++;
  }

  private evictOldest(st: MessageState): void {
    let oldestKey: string | null = null;
    let oldest = Infinity;
    for (const [k, s] of st.slots) {
      if (s.at < oldest) {
        oldest = s.at;
        oldestKey = k;
      }
    }
    if (oldestKey !== null) st.slots.delete(oldestKey);
    this.c.branchEvictions++;
  }

  tickRates(): void {
    for (const st of this.states.values()) {
      for (const s of st.slots.values()) {
        const n = s.count - s.prevCount;
        s.prevCount = s.count;
        s.rate = s.rate === 0 && n > 0 ? n : s.rate + RATE_ALPHA * (n - s.rate);
        if (s.rate < 0.01) s.rate = 0;
      }
    }
  }

  /**
   * The current value of every signal of a message that some stored frame carries: each signal
   * from the latest frame that has it (a multiplexed signal from its branch's frame). `only`
   * limits decoding to those signal names.
   */
  read(st: MessageState, only?: ReadonlySet<string>): SignalReading[] {
    const mc = st.mc;
    const n = mc.signals.length;
    const best: (Slot | undefined)[] = new Array(n);
    const raws: (RawValue | undefined)[] = new Array(n);
    const rates = new Float64Array(n);
    const present = new Uint8Array(n);
    const slotRaws: RawValue[] = new Array(n);
    for (const slot of st.slots.values()) {
      if (mc.multiplexed) mc.presence(slot.data, present, slotRaws);
      for (let i = 0; i < n; i++) {
        const s = mc.signals[i]!;
        if (only !== undefined && !only.has(s.name)) continue;
        const on = mc.multiplexed ? present[i] === 1 : slot.data.length >= s.needBytes;
        if (!on) continue;
        rates[i]! += slot.rate;
        const b = best[i];
        if (b === undefined || slot.at >= b.at) {
          best[i] = slot;
          raws[i] = mc.multiplexed ? slotRaws[i] : undefined;
        }
      }
    }
    const out: SignalReading[] = [];
    for (let i = 0; i < n; i++) {
      const slot = best[i];
      if (slot === undefined) continue;
      const s = mc.signals[i]!;
      const raw = raws[i] ?? s.extract(slot.data);
      out.push({ message: mc.message.name, signal: s.name, value: s.physical(raw), raw, unit: s.signal.unit, valueName: s.valueName(raw), at: slot.at, rate: rates[i]! });
    }
    return out;
  }

  /** The DBC messages that have values, as signal-model groups (src/consumers/signal-model.ts). */
  *groups(): Iterable<SignalGroup> {
    for (const st of this.states.values()) if (st.slots.size > 0) yield this.groupOf(st);
  }

  group(message: string): SignalGroup | undefined {
    const mc = this.codecValue.message(message);
    const st = mc === undefined ? undefined : this.states.get(mc.canId);
    return st === undefined || st.slots.size === 0 ? undefined : this.groupOf(st);
  }

  private groupOf(st: MessageState): SignalGroup {
    let g = this.groupCache.get(st);
    if (g === undefined) {
      const store = this;
      const names = st.mc.signals.map((s) => s.name);
      const keys = names.map((n) => `${st.mc.message.name}.${n}`.toLowerCase());
      g = {
        key: st,
        message: st.mc.message.name,
        get seq() {
          return st.seq;
        },
        read: (only) => store.read(st, only),
        signalNames: () => names,
        searchKeys: () => keys,
        count: (only) => store.countPresent(st, only),
        valueNames: (signal) => [...new Set(st.mc.signals.find((s) => s.name === signal)?.signal.valueNames.values() ?? [])],
      };
      this.groupCache.set(st, g);
    }
    return g;
  }

  /** How many of `names` (all when undefined) have a value, without decoding plain messages. */
  private countPresent(st: MessageState, names: ReadonlySet<string> | undefined): number {
    if (st.mc.multiplexed) return this.read(st, names).length;
    let longest = 0;
    for (const slot of st.slots.values()) longest = Math.max(longest, slot.data.length);
    let n = 0;
    for (const s of st.mc.signals) if ((names === undefined || names.has(s.name)) && s.needBytes <= longest) n++;
    return n;
  }


}

/** The raw values of the multiplexors a frame carries, as a slot key ("3" or "1/8"). */
export function branchKey(mc: MessageCodec, data: Uint8Array): string {
  let key = "";
  // Raw values of the multiplexors present so far (mc.order puts every multiplexor before what it gates).
  const present: (number | undefined)[] = [];
  for (const s of mc.order) {
    if (!s.signal.isMultiplexor || data.length < s.needBytes) continue;
    if (s.muxIndex >= 0) {
      // A nested multiplexor counts only when its own multiplexor is present and selects it.
      const parent = present[s.muxIndex];
      if (parent === undefined || !s.selectedBy(parent)) continue;
    }
    const raw = Number(s.extract(data));
    present[s.index] = raw;
    key += key === "" ? String(raw) : `/${raw}`;
  }
  return key;
}

/** Checks -dbc-metrics against the database: every MESSAGE.SIGNAL must exist. Returns an error or null. */
export function checkSignalKeys(codec: DbcCodec, keys: readonly string[]): string | null {
  for (const k of keys) {
    const dot = k.indexOf(".");
    const mc = dot < 0 ? undefined : codec.message(k.slice(0, dot));
    if (mc === undefined) return `${k}: no such message (expected MESSAGE.SIGNAL)`;
    if (!mc.signals.some((s) => s.name === k.slice(dot + 1))) return `${k}: message ${mc.message.name} has no signal ${k.slice(dot + 1)}`;
  }
  return null;
}
