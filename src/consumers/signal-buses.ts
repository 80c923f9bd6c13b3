/**
 * DBC decoding for every bus that has a DBC file (`-dbc`, or `dbc = "…"` in a `[[bus]]` table of
 * the configuration file) and Ampio values on the default bus (-signals-ampio): one signal store
 * per such bus, attached to that bus's hub, and one signal model per bus, which the surfaces
 * read — /api/signals?bus=, /api/dbc?bus=, the dashboard's signals view, MQTT
 * <prefix>/<bus>/signals/…, the dbc_signal_value gauges. SIGHUP re-reads every bus's file.
 */
import type * as Prom from "prom-client";
import type { Config } from "../cli/config.ts";
import { ConfigError } from "../cli/parse.ts";
import { socketcandBusName } from "../cli/bus-name.ts";
import type { DbcCodec } from "../dbc/index.ts";
import type { Gateway } from "../gateway.ts";
import type { TxLane } from "../hub/tx-scheduler.ts";
import type { HttpRoute } from "../ops/http.ts";
import type { Logger } from "../ops/log.ts";
import { mirrorCounter } from "../ops/prom-mirror.ts";
import { signalRoutes } from "../web/signals-api.ts";
import type { AmpioDecoder } from "./ampio-decoder.ts";
import { AMPIO_GROUP_PREFIX, AmpioSignals } from "./ampio-signals.ts";
import { DbcFileError, loadDbcFile } from "./dbc-file.ts";
import type { SignalPublisher } from "./mqtt/signals.ts";
import { registerSignalGauge, SignalModel, type SignalSource } from "./signal-model.ts";
import { checkSignalKeys, SignalStore } from "./signals.ts";

/** A bus as the configuration describes it (main.ts passes every bus; tests and one bus: the flags). */
export interface BusDbc {
  readonly name: string;
  readonly config: Config;
}

/** -dbc-metrics as a list of MESSAGE.SIGNAL. */
export function dbcMetricKeys(config: Config): string[] {
  return config.dbcMetrics
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "");
}

/** Ampio module values (-signals-ampio) are known only once modules speak: checked by form only. */
function isAmpioKey(config: Config, k: string): boolean {
  return config.signalsAmpio && new RegExp(`^${AMPIO_GROUP_PREFIX}[0-9A-F]{8}\\.`).test(k);
}

/**
 * Every bus's DBC file parsed, -dbc-metrics checked against them (a key must name a signal of some
 * bus's DBC); ConfigError (one line, exit 2) otherwise.
 */
export function checkDbcConfig(config: Config, buses: readonly BusDbc[] = [{ name: socketcandBusName(config), config }]): void {
  const codecs: DbcCodec[] = [];
  for (const b of buses) {
    if (b.config.dbc === "") continue;
    try {
      codecs.push(loadDbcFile(b.config.dbc));
    } catch (e) {
      if (e instanceof DbcFileError) throw new ConfigError(`${buses.length > 1 ? `bus ${b.name}: dbc` : "-dbc (CAN_SERVER_DBC)"}: ${e.message}`);
      throw e;
    }
  }
  const keys = dbcMetricKeys(config).filter((k) => !isAmpioKey(config, k));
  if (keys.length === 0) return;
  if (codecs.length === 0) {
    throw new ConfigError(`-dbc-metrics (CAN_SERVER_DBC_METRICS): ${keys[0]}: needs -dbc${config.signalsAmpio ? ` (or an Ampio key like ${AMPIO_GROUP_PREFIX}00001D4C.temperature.1)` : ""}`);
  }
  for (const k of keys) {
    const errors = codecs.map((c) => checkSignalKeys(c, [k]));
    if (errors.every((e) => e !== null)) throw new ConfigError(`-dbc-metrics (CAN_SERVER_DBC_METRICS): ${errors[0]}`);
  }
}

interface BusSignals {
  readonly name: string;
  readonly store: SignalStore | null;
  readonly model: SignalModel;
}

export class SignalBuses {
  private readonly buses: BusSignals[] = [];
  private readonly byName = new Map<string, BusSignals>();
  readonly publishers: SignalPublisher[] = [];

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {}

  /** Whether any bus decodes (or could: -signals-ampio): decides routes and SIGHUP. */
  get active(): boolean {
    return this.buses.length > 0;
  }

  get stores(): SignalStore[] {
    return this.buses.flatMap((b) => (b.store !== null ? [b.store] : []));
  }

  /** Creates a store for every bus with a DBC file, attached to its hub; Ampio values join the default bus. */
  start(gateway: Gateway, decoder: AmpioDecoder | null): void {
    for (const bus of gateway.buses) {
      const file = bus.config.dbc;
      let store: SignalStore | null = null;
      if (file !== "") {
        store = new SignalStore(loadDbcFile(file), { bus: bus.name, file, log: this.log });
        const db = store.codec.db;
        this.log.info("dbc_loaded", { bus: bus.name, file, messages: db.messages.length, warnings: db.warnings.length });
        for (const w of db.warnings.slice(0, 20)) this.log.warn("dbc_warning", { bus: bus.name, detail: w });
        store.setId(gateway.registry.allocateId());
        store.attach(bus.hub);
      }
      const sources: SignalSource[] = store !== null ? [store] : [];
      if (bus.index === 0 && this.config.signalsAmpio) {
        if (decoder !== null) sources.push(new AmpioSignals(decoder));
        else this.log.warn("signals_ampio_disabled", { reason: "-ampio-decode false: no Ampio values in the signal model" });
      }
      if (sources.length === 0) continue;
      const b: BusSignals = { name: bus.name, store, model: new SignalModel(bus.name, sources) };
      this.buses.push(b);
      this.byName.set(b.name, b);
    }
  }

  /** SIGHUP: every bus's DBC file again; a bad file is logged and that bus keeps its old one. */
  reload(): void {
    for (const b of this.buses) {
      const store = b.store;
      if (store === null) continue;
      try {
        const codec = loadDbcFile(store.file);
        store.replaceCodec(codec);
        this.log.info("dbc_reloaded", { bus: b.name, file: store.file, messages: codec.db.messages.length, warnings: codec.db.warnings.length });
      } catch (e) {
        store.reloadFailed();
        this.log.error("dbc_reload_failed", { bus: b.name, file: store.file, error: e instanceof Error ? e.message : String(e), kept: "the previous DBC stays in use" });
      }
    }
  }

  /** /api/signals and /api/dbc, for the bus named by ?bus= (default: the first bus that has signals). */
  routes(): Record<string, HttpRoute> {
    const pick = (req: Request): BusSignals | Response => {
      const name = new URL(req.url).searchParams.get("bus");
      const b = name === null || name === "" ? this.buses[0] : this.byName.get(name);
      if (b !== undefined) return b;
      const known = this.buses.map((x) => x.name).join(", ");
      const error = this.buses.length === 0 ? "no signals on this gateway (-dbc, -signals-ampio)" : `no signals on bus '${name}' (buses with signals: ${known})`;
      return new Response(JSON.stringify({ error }), { status: 404, headers: { "content-type": "application/json" } });
    };
    const route = (path: "/api/signals" | "/api/dbc"): HttpRoute => {
      return (req, server) => {
        const b = pick(req);
        if (b instanceof Response) return b;
        return signalRoutes(b.model, b.store, this.buses.map((x) => x.name))[path]!(req, server);
      };
    };
    return { "/api/signals": route("/api/signals"), "/api/dbc": route("/api/dbc") };
  }

  registerMetrics(registry: Prom.Registry, prom: typeof Prom): void {
    if (this.buses.length === 0) return;
    const sum = (f: (s: SignalStore) => number) => () => this.stores.reduce((n, s) => n + f(s), 0);
    const counter = (name: string, help: string, read: () => number): void => void mirrorCounter(prom.Counter, registry, name, help, read);
    counter("dbc_frames_stored_total", "Frames of DBC messages the signal stores took off their queues.", sum((s) => s.counters().stored));
    counter("dbc_dropped_frames_total", "Frames the signal stores lost because their queue was full (also in hub_dropped_frames_total).", sum((s) => s.counters().dropped));
    counter("dbc_branch_evictions_total", "Multiplexer branches forgotten to keep 256 per message.", sum((s) => s.counters().branchEvictions));
    counter("dbc_reloads_total", "DBC files re-read on SIGHUP and taken into use.", sum((s) => s.counters().reloads));
    counter("dbc_reload_failures_total", "DBC re-reads on SIGHUP refused (the previous file stays in use).", sum((s) => s.counters().reloadFailures));
    registerSignalGauge(registry, prom, this.buses.map((b) => b.model), dbcMetricKeys(this.config));
    if (this.config.mqttUrl === "") return;
    const pubs = this.publishers;
    counter("dbc_mqtt_published_total", "Signal values handed to the MQTT bridge (on change, rate-limited per signal).", () => pubs.reduce((n, p) => n + p.published, 0));
    counter("dbc_mqtt_commands_total", "DBC signal commands (<prefix>/<bus>/signals/<message>/set) encoded and handed to the TX lane.", () => pubs.reduce((n, p) => n + p.commandsSent, 0));
    new prom.Counter({
      name: "dbc_mqtt_commands_refused_total",
      help: "DBC signal commands refused before the TX lane, by reason (malformed, retained, unknown_message, encode); the lane's own refusals are in client_tx_dropped_total.",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        this.reset();
        const by = new Map<string, number>();
        for (const p of pubs) for (const [r, n] of p.refused) by.set(r, (by.get(r) ?? 0) + n);
        for (const [reason, n] of by) this.inc({ reason }, n);
      },
    });
  }

  /**
   * One MQTT publisher per bus with signals (bridge extensions). With -mqtt-tx, each bus with a
   * DBC gets a TX lane on its own hub for its command topics.
   */
  async mqttPublishers(gateway: Gateway, openLane: (hub: Gateway["hub"]) => TxLane, prefix: string): Promise<SignalPublisher[]> {
    if (this.buses.length === 0) return [];
    const { SignalPublisher } = await import("./mqtt/signals.ts");
    for (const b of this.buses) {
      const hub = gateway.bus(b.name)?.hub;
      const lane = this.config.mqttTx && b.store !== null && hub !== undefined ? openLane(hub) : null;
      this.publishers.push(new SignalPublisher(b.model, b.store, { prefix, intervalMs: this.config.dbcMqttIntervalMs, haDiscovery: this.config.mqttHaDiscovery, lane, log: this.log }));
    }
    return this.publishers;
  }

  stop(): void {
    for (const s of this.stores) s.detach();
  }
}
