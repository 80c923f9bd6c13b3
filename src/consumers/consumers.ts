/**
 * Composition of the in-process consumers from the Config, for main.ts (and tests): the Ampio
 * decoder (-ampio-decode; state on connect with -ampio-state-replay) and the MQTT bridge
 * (-mqtt-url, loaded only when enabled). create() runs before the gateway (the replay hook must
 * be passed to startGateway), start() attaches to the gateway's hub, stop() runs before the
 * gateway shuts down so the bridge can still say "offline".
 */
import { hostname } from "node:os";
import type { Registry } from "prom-client";
import type { StampedFrame } from "../can/frame.ts";
import type { Config } from "../cli/config.ts";
import { ConfigError } from "../cli/parse.ts";
import type { Gateway } from "../gateway.ts";
import type { HttpRoute } from "../ops/http.ts";
import type { Logger } from "../ops/log.ts";
import type { ClientSession } from "../server/session.ts";
import { AmpioDecoder, ampioDecodeEnabled } from "./ampio-decoder.ts";
import { AmpioCommands } from "./ampio-http.ts";
import type { MqttBridge } from "./mqtt/bridge.ts";
import { type BusDbc, checkDbcConfig, SignalBuses } from "./signal-buses.ts";
import { normalizePrefix } from "./mqtt/topics.ts";
import { type CaBundle, CaFileError, loadCaFile } from "./mqtt/tls.ts";
import { HouseNames, loadNamesFile, NamesFileError } from "../ampio/names.ts";
import { isIP } from "node:net";
import { lookup } from "node:dns/promises";
import { CidrList } from "../net/cidr.ts";
import { socketcandBusName } from "../gateway.ts";

export interface Consumers {
  readonly decoder: AmpioDecoder | null;
  /** For startGateway's initialFrames (undefined when -ampio-state-replay is off). */
  readonly initialFrames: ((session: ClientSession) => readonly StampedFrame[]) | undefined;
  /** Extra HTTP routes (GET /api/ampio/modules). */
  readonly routes: Readonly<Record<string, HttpRoute>>;
  bridge(): MqttBridge | null;
  /** DBC signals per bus and Ampio values in the signal model (stores made in start()). */
  readonly signalBuses: SignalBuses;
  /** SIGHUP: reads the -dbc file again; a bad file is logged and the old one stays in use. */
  reloadDbc(): void;
  /** Registers the ampio_* and mqtt_* series (loads prom-client only when called). */
  registerMetrics(registry: Registry): Promise<void>;
  start(gateway: Gateway): Promise<void>;
  stop(): Promise<void>;
}

/** Checks what the flag parser cannot (URL scheme, prefix); throws ConfigError (exit 2). */
/** `buses`: every bus of the configuration (their DBC files are checked too); default: the flags' one bus. */
export function validateConsumerConfig(config: Config, buses?: readonly BusDbc[]): void {
  if (config.help || config.version) return;
  houseNames(config);
  checkDbcConfig(config, buses);
  if (config.mqttUrl !== "") {
    let u: URL;
    try {
      u = new URL(config.mqttUrl);
    } catch {
      throw new ConfigError(`invalid value for -mqtt-url (CAN_SERVER_MQTT_URL): expected mqtt://host[:port] or mqtts://host[:port]`);
    }
    if ((u.protocol !== "mqtt:" && u.protocol !== "mqtts:") || u.hostname === "") {
      throw new ConfigError(`invalid value for -mqtt-url (CAN_SERVER_MQTT_URL): expected mqtt://host[:port] or mqtts://host[:port], got scheme ${u.protocol}`);
    }
    try {
      normalizePrefix(config.mqttPrefix);
    } catch (e) {
      throw new ConfigError(e instanceof Error ? e.message : String(e));
    }
    if (config.mqttCa !== "" && u.protocol !== "mqtts:") {
      throw new ConfigError(`-mqtt-ca (CAN_SERVER_MQTT_CA) needs an mqtts:// -mqtt-url: the CA file verifies the broker's TLS certificate, and ${u.protocol}// is not TLS`);
    }
    mqttCaBundle(config);
    if (config.mqttAmpio && config.ampioDecode === "false") {
      throw new ConfigError("-mqtt-ampio serves decoded Ampio states: it cannot work with -ampio-decode false");
    }
  } else if (config.mqttTx || config.mqttHaDiscovery || config.mqttAmpio) {
    throw new ConfigError("-mqtt-tx, -mqtt-ha-discovery and -mqtt-ampio need -mqtt-url");
  } else if (config.mqttCa !== "") {
    throw new ConfigError("-mqtt-ca (CAN_SERVER_MQTT_CA) needs an mqtts:// -mqtt-url");
  }
}

/** The -ampio-names file, read and checked (empty without the flag); a bad file is a ConfigError (one line, exit 2). */
export function houseNames(config: Config): HouseNames {
  if (config.ampioNames === "") return HouseNames.EMPTY;
  try {
    return loadNamesFile(config.ampioNames);
  } catch (e) {
    if (e instanceof NamesFileError) throw new ConfigError(`-ampio-names: ${e.message}`);
    throw e;
  }
}

/**
 * -tx-allow for the MQTT command topics: the broker is the peer the frames come from, so the
 * bridge's TX lane is read-only unless the broker's address is allowed (a host name is resolved
 * once at start). Empty -tx-allow: everyone may send.
 */
async function brokerTxReadOnly(config: Config, log: Logger): Promise<boolean> {
  if (config.txAllow.length === 0 || !config.mqttTx) return false;
  const allow = CidrList.parse(config.txAllow);
  const host = new URL(config.mqttUrl).hostname.replace(/^\[|\]$/g, "");
  let addresses: string[] = [host];
  if (isIP(host) === 0) {
    try {
      addresses = (await lookup(host, { all: true })).map((a) => a.address);
    } catch (e) {
      addresses = [];
      log.warn("mqtt_tx_read_only", { broker: host, reason: `cannot resolve the broker's address for -tx-allow: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  const ok = addresses.some((a) => allow.allows(a));
  if (!ok) log.warn("mqtt_tx_read_only", { broker: host, addresses: addresses.join(","), reason: "the broker's address is outside -tx-allow: MQTT commands are refused (read_only)" });
  return !ok;
}

/** The -mqtt-ca file, read and checked (null without the flag); a bad file is a ConfigError naming it. */
function mqttCaBundle(config: Config): CaBundle | null {
  if (config.mqttCa === "") return null;
  try {
    return loadCaFile(config.mqttCa);
  } catch (e) {
    if (e instanceof CaFileError) throw new ConfigError(e.message);
    throw e;
  }
}

export interface ConsumerOverrides {
  /** Bridge reconnect backoff (tests shorten it). */
  readonly mqttBackoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Wall clock for the decoder (tests). */
  readonly now?: () => number;
}

export function createConsumers(config: Config, log: Logger, overrides: ConsumerOverrides = {}): Consumers {
  // -signals-ampio needs the Ampio decoder (with -ampio-decode auto, it turns it on).
  const decode = ampioDecodeEnabled(config) || (config.signalsAmpio && config.ampioDecode === "auto");
  // Read again here, at start-up only (validateConsumerConfig refused a bad file with exit 2).
  const names = houseNames(config);
  const decoder = decode
    ? new AmpioDecoder({ id: 0, staleAfterMs: config.ampioStaleAfterMs, stateMaxAgeMs: config.ampioStateMaxAgeMs, log, now: overrides.now, names })
    : null;
  if (config.ampioStateReplay && decoder === null) log.warn("ampio_state_replay_disabled", { reason: "-ampio-decode false" });
  if (config.mqttUrl !== "" && decoder === null) log.info("mqtt_raw_only", { reason: "-ampio-decode false: no decoded states over MQTT" });
  let bridge: MqttBridge | null = null;
  // Read again here, at start-up only (validateConsumerConfig read it first to refuse a bad file
  // with exit 2 before anything starts; a few KiB, not worth threading the bundle through main).
  const ca = config.mqttUrl !== "" ? mqttCaBundle(config) : null;
  // The dashboard's Ampio view sends through this (POST /api/ampio/command; -web-tx + -web-token).
  let running: Gateway | null = null;
  const commands =
    decoder !== null
      ? new AmpioCommands({
          decoder,
          names,
          enabled: config.webTx,
          token: config.webToken,
          log,
          gateway: () => {
            const g = running;
            if (g === null) return null;
            const allow = g.registry.limits.txAllow;
            return { hub: g.hub, txAllow: allow.toString() === "" ? null : allow, allocateId: () => g.registry.allocateId() };
          },
        })
      : null;
  const route: HttpRoute = decoder
    ? decoder.httpRoute(() => ({ sending: commands?.enabled ?? false }))
    : () => new Response('{"error":"Ampio decoding is off (-ampio-decode)"}\n', { status: 503, headers: { "content-type": "application/json" } });

  // DBC signals per bus and Ampio values (-signals-ampio): stores and models are made in start().
  const signalBuses = new SignalBuses(config, log);

  return {
    decoder,
    initialFrames: decoder !== null && config.ampioStateReplay ? (s) => decoder.replayFor(s.protocol) : undefined,
    signalBuses,
    reloadDbc: () => signalBuses.reload(),
    routes: { "/api/ampio/modules": route, ...(commands !== null ? { "/api/ampio/command": commands.route() } : {}), ...signalBuses.routes() },
    bridge: () => bridge,
    async registerMetrics(registry) {
      if (decoder === null && bridge === null && !signalBuses.active) return;
      const prom = await import("prom-client");
      decoder?.registerMetrics(registry, prom);
      commands?.registerMetrics(registry, prom);
      signalBuses.registerMetrics(registry, prom);
      bridge?.registerMetrics(registry, prom);
    },
    async start(gateway) {
      running = gateway;
      signalBuses.start(gateway, decoder);
      if (decoder !== null) {
        decoder.setId(gateway.registry.allocateId());
        decoder.attach(gateway.hub);
        log.info("ampio_decoder", {
          stale_after_ms: config.ampioStaleAfterMs,
          state_replay: config.ampioStateReplay,
          state_max_age_ms: config.ampioStateMaxAgeMs,
          ...(names.size > 0 ? { names: config.ampioNames, named_modules: names.size } : {}),
        });
      }
      if (config.mqttUrl !== "") {
        const { MqttBridge, redactUrl } = await import("./mqtt/bridge.ts");
        const { BusStatePublisher } = await import("./mqtt/bus-state.ts");
        const txReadOnly = await brokerTxReadOnly(config, log);
        // Signals publish through the bridge; each bus's commands get a TX lane of their own on its hub.
        const signalPublishers = await signalBuses.mqttPublishers(
          gateway,
          (hub) => hub.openTx({ id: gateway.registry.allocateId(), protocol: "mqtt-signals", remote: redactUrl(config.mqttUrl) }, txReadOnly),
          normalizePrefix(config.mqttPrefix),
        );
        bridge = new MqttBridge({
          url: config.mqttUrl,
          username: config.mqttUsername,
          password: config.mqttPassword,
          clientId: config.mqttClientId || `can-server-${hostname()}-${Math.random().toString(16).slice(2, 8)}`,
          prefix: config.mqttPrefix,
          qos: config.mqttQos === 2 ? 2 : config.mqttQos === 1 ? 1 : 0,
          keepaliveMs: config.mqttKeepaliveMs,
          raw: config.mqttRaw,
          tx: config.mqttTx,
          haDiscovery: config.mqttHaDiscovery,
          hub: gateway.hub,
          buses: gateway.buses,
          decoder,
          log,
          id: gateway.registry.allocateId(),
          txId: gateway.registry.allocateId(),
          backoff: overrides.mqttBackoff,
          ca,
          ampioTree: config.mqttAmpio,
          names,
          txReadOnly,
          // Each bus's link and controller state, retained on <prefix>/<bus>/state (./mqtt/bus-state.ts).
          extensions: [...signalPublishers, new BusStatePublisher(normalizePrefix(config.mqttPrefix), gateway.buses)],
        });
        bridge.start();
      }
    },
    async stop() {
      await bridge?.stop();
      commands?.close();
      decoder?.detach();
      signalBuses.stop();
    },
  };
}
