/**
 * DBC signals over MQTT (-dbc with -mqtt-url; README "DBC signals"), published through the
 * bridge's bounded outbox (./extension.ts):
 *
 *   <prefix>/<bus>/signals/<message>/<signal>      retained, plain value (the value-table name if any)
 *   <prefix>/<bus>/signals/<message>/set           with -mqtt-tx: JSON {"Signal": value, …} → one frame
 *   homeassistant/sensor/<node>/<object>/config    with -mqtt-ha-discovery: a sensor per signal
 *
 * A timer looks at the signal store (never at frames): only messages that got a frame since the
 * last look are decoded; a signal is published when its value changed, at most once per
 * -dbc-mqtt-interval (a change held back by the interval goes out when the interval has passed,
 * so the broker always ends with the latest value). After every connect everything is published
 * again. Everything held is bounded by the DBC's size.
 *
 * Topic levels are the DBC names with `/ + #` and whitespace replaced by `_` (long names may
 * contain them).
 */
import { basename } from "node:path";
import type { TxLane } from "../../hub/tx-scheduler.ts";
import type { Logger } from "../../ops/log.ts";
import { DbcEncodeError } from "../../dbc/index.ts";
import type { SignalGroup, SignalModel } from "../signal-model.ts";
import type { SignalReading, SignalStore } from "../signals.ts";
import type { MqttExtension, MqttSink } from "./extension.ts";
import { HA_DISCOVERY_PREFIX } from "./topics.ts";

export const SIGNAL_REFUSALS = ["malformed", "retained", "unknown_message", "encode"] as const;
export type SignalRefusal = (typeof SIGNAL_REFUSALS)[number];

export interface SignalPublisherOptions {
  /** Normalized -mqtt-prefix. */
  readonly prefix: string;
  readonly intervalMs: number;
  readonly haDiscovery: boolean;
  /** The bridge's TX lane (-mqtt-tx), null: no command topics. */
  readonly lane: TxLane | null;
  readonly log: Logger;
  /** Monotonic ms (tests inject one). */
  readonly now?: () => number;
}

/** A DBC name as one MQTT topic level. */
export function topicLevel(name: string): string {
  return name.replace(/[/+#\s\u0000]/g, "_");
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
}

/** A value as MQTT text: at most 12 significant digits (no 972.9000000000001), NaN/Infinity as words. */
export function signalPayload(r: Pick<SignalReading, "value" | "valueName">): string {
  if (r.valueName !== undefined) return r.valueName;
  if (!Number.isFinite(r.value)) return String(r.value);
  return String(Number(r.value.toPrecision(12)));
}

/** DBC unit → Home Assistant [device_class, unit]; units HA would refuse for a class get no class. */
const UNIT_CLASSES: Record<string, readonly [string, string]> = {
  "°C": ["temperature", "°C"],
  degC: ["temperature", "°C"],
  deg_C: ["temperature", "°C"],
  C: ["temperature", "°C"],
  "°F": ["temperature", "°F"],
  degF: ["temperature", "°F"],
  K: ["temperature", "K"],
  V: ["voltage", "V"],
  mV: ["voltage", "mV"],
  A: ["current", "A"],
  mA: ["current", "mA"],
  W: ["power", "W"],
  kW: ["power", "kW"],
  Wh: ["energy", "Wh"],
  kWh: ["energy", "kWh"],
  Pa: ["pressure", "Pa"],
  hPa: ["pressure", "hPa"],
  kPa: ["pressure", "kPa"],
  bar: ["pressure", "bar"],
  mbar: ["pressure", "mbar"],
  psi: ["pressure", "psi"],
  "km/h": ["speed", "km/h"],
  kph: ["speed", "km/h"],
  kmh: ["speed", "km/h"],
  "m/s": ["speed", "m/s"],
  mph: ["speed", "mph"],
  km: ["distance", "km"],
  m: ["distance", "m"],
  mm: ["distance", "mm"],
  Hz: ["frequency", "Hz"],
  kHz: ["frequency", "kHz"],
  s: ["duration", "s"],
  ms: ["duration", "ms"],
  min: ["duration", "min"],
  h: ["duration", "h"],
  L: ["volume", "L"],
  l: ["volume", "L"],
  kg: ["weight", "kg"],
};

export function haDeviceClass(unit: string): { deviceClass?: string; unit?: string } {
  const u = unit.trim();
  if (u === "") return {};
  const c = UNIT_CLASSES[u];
  return c !== undefined ? { deviceClass: c[0], unit: c[1] } : { unit: u };
}

export class SignalPublisher implements MqttExtension {
  private sink: MqttSink | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;
  private generation = -1;
  private readonly lastSeq = new Map<object, number>();
  /** Groups (by key) with a change the interval held back. */
  private readonly held = new Set<object>();
  private readonly lastPayload = new Map<string, string>();
  private readonly lastAt = new Map<string, number>();
  private readonly discovered = new Set<string>();
  /** Topic level of a message → its DBC name (commands name messages by topic level). */
  private messageByLevel = new Map<string, string>();
  private readonly base: string;
  readonly refused = new Map<SignalRefusal, number>(SIGNAL_REFUSALS.map((r) => [r, 0]));
  private readonly refusedLogged = new Set<string>();
  published = 0;
  commandsSent = 0;

  /** `dbc`: the -dbc store, for commands and the device name (null: Ampio values only, no commands). */
  constructor(
    private readonly model: SignalModel,
    private readonly dbc: SignalStore | null,
    private readonly opts: SignalPublisherOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.base = `${opts.prefix}/${topicLevel(model.bus)}/signals`;
  }

  signalTopic(message: string, signal: string): string {
    return `${this.base}/${topicLevel(message)}/${topicLevel(signal)}`;
  }

  commandTopic(message: string): string {
    return `${this.base}/${topicLevel(message)}/set`;
  }

  subscriptions(): readonly string[] {
    return this.opts.lane !== null && this.dbc !== null ? [`${this.base}/+/set`] : [];
  }

  bind(sink: MqttSink): void {
    this.sink = sink;
    const every = Math.max(50, Math.min(250, this.opts.intervalMs || 50));
    this.timer = setInterval(() => this.tick(), every);
    this.timer.unref?.();
  }

  connected(): void {
    this.lastSeq.clear();
    this.lastPayload.clear();
    this.lastAt.clear();
    this.discovered.clear();
    this.tick();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Publishes what changed since the last look (the timer, connected(), tests). */
  tick(): void {
    const sink = this.sink;
    if (sink === null) return;
    if (this.generation !== this.model.generation) {
      // A new DBC (SIGHUP): forget what was derived from the old one.
      this.generation = this.model.generation;
      this.lastSeq.clear();
      this.held.clear();
      this.discovered.clear();
      this.messageByLevel = new Map((this.dbc?.codec.messages ?? []).map((mc) => [topicLevel(mc.message.name), mc.message.name]));
    }
    const now = this.now();
    for (const g of this.model.groups()) {
      if (this.lastSeq.get(g.key) === g.seq && !this.held.has(g.key)) continue;
      this.lastSeq.set(g.key, g.seq);
      this.held.delete(g.key);
      for (const r of g.read()) {
        const topic = this.signalTopic(r.message, r.signal);
        const payload = signalPayload(r);
        if (this.lastPayload.get(topic) === payload) continue;
        const last = this.lastAt.get(topic);
        if (last !== undefined && now - last < this.opts.intervalMs) {
          this.held.add(g.key);
          continue;
        }
        if (this.opts.haDiscovery && !this.discovered.has(topic)) this.discover(sink, g, r, topic);
        if (!sink.retained(topic, payload)) continue;
        this.lastPayload.set(topic, payload);
        this.lastAt.set(topic, now);
        this.published++;
      }
    }
  }

  private discover(sink: MqttSink, g: SignalGroup, r: SignalReading, topic: string): void {
    const prefixSlug = slug(this.opts.prefix);
    const node = `can_server_${prefixSlug}_${slug(this.model.bus)}_dbc`;
    const object = slug(`${r.message}_${r.signal}`);
    const options = g.valueNames(r.signal);
    const { deviceClass, unit } = haDeviceClass(r.unit);
    const config: Record<string, unknown> = {
      name: `${r.message} ${r.signal}`,
      unique_id: `${node}_${object}`,
      state_topic: topic,
      availability_topic: `${this.opts.prefix}/availability`,
      device: {
        identifiers: [node],
        name: `${this.model.bus} signals${this.dbc !== null ? ` (${basename(this.dbc.file)})` : ""}`,
        manufacturer: "can-server",
        model: "DBC decoder",
        via_device: `can_server_${prefixSlug}`,
      },
    };
    if (options.length > 0) {
      // Value-table names: an enum sensor listing them, no unit or state class.
      config.device_class = "enum";
      config.options = options;
    } else if (r.valueName !== undefined) {
      // Text without a known set of values (an Ampio string value): a plain sensor.
    } else {
      if (unit !== undefined) config.unit_of_measurement = unit;
      if (deviceClass !== undefined) config.device_class = deviceClass;
      config.state_class = "measurement";
    }
    if (sink.retained(`${HA_DISCOVERY_PREFIX}/sensor/${node}/${object}/config`, JSON.stringify(config))) this.discovered.add(topic);
  }

  /** `<base>/<message>/set` with a JSON object of signal values: encoded and sent through the TX lane. */
  message(topic: string, payload: string, retained: boolean): boolean {
    if (!topic.startsWith(`${this.base}/`) || !topic.endsWith("/set")) return false;
    const lane = this.opts.lane;
    const dbc = this.dbc;
    if (lane === null || dbc === null) return false;
    const level = topic.slice(this.base.length + 1, -"/set".length);
    if (level.includes("/")) return false;
    if (retained) return this.refuse("retained", topic, "retained message on a command topic (publish without -r)");
    const name = this.messageByLevel.get(level) ?? (dbc.codec.message(level) !== undefined ? level : undefined);
    if (name === undefined) return this.refuse("unknown_message", topic, `no message '${level}' in the DBC`);
    let values: unknown;
    try {
      values = JSON.parse(payload);
    } catch {
      return this.refuse("malformed", topic, "not JSON");
    }
    if (typeof values !== "object" || values === null || Array.isArray(values)) return this.refuse("malformed", topic, 'expected a JSON object {"Signal": value, …}');
    // No prototype: a "__proto__" key in the JSON stays a (refused, unknown) signal name.
    const clean = Object.create(null) as Record<string, number | string>;
    for (const [k, v] of Object.entries(values as Record<string, unknown>)) {
      if (typeof v !== "number" && typeof v !== "string") return this.refuse("malformed", topic, `${k}: a value must be a number or a value-table name`);
      clean[k] = v;
    }
    try {
      const frame = dbc.codec.encode(name, clean);
      this.commandsSent++;
      lane.send(frame); // validation, rate limit, fairness and their refusals: the lane's (client_tx_dropped_total)
    } catch (e) {
      if (e instanceof DbcEncodeError) return this.refuse("encode", topic, e.message);
      throw e;
    }
    return true;
  }

  private refuse(reason: SignalRefusal, topic: string, detail: string): true {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    const key = `${reason}:${topic}`;
    if (!this.refusedLogged.has(key) && this.refusedLogged.size < 256) {
      this.refusedLogged.add(key);
      this.opts.log.warn("mqtt_signal_command_refused", { reason, topic, detail });
    }
    return true;
  }
}
