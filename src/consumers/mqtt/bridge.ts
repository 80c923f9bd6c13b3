/**
 * The MQTT bridge (mqtt.js): bus frames, decoded Ampio states, module and gateway availability
 * to a broker; optionally frames from a command topic to the bus. Topics and payloads:
 * ./topics.ts; with -mqtt-ampio also the Ampio M-SERV tree (./ampio-tree.ts: its states go through
 * the same retained outbox, its answers and events through a bounded FIFO of not-retained
 * messages, its commands through the same TX lane).
 *
 * Nothing here can slow the hub or the TCP clients. The bridge is a hub client whose enqueue()
 * only stores the frame and its arrival time in a fixed ring (RAW_OUTBOX_FRAMES; when full the
 * oldest frame is dropped and counted — while the broker is away the newest traffic is the
 * useful one). Decoded values go to a second outbox keyed by topic (the latest value wins, so an
 * outage costs one message per value, bounded by STATE_OUTBOX_TOPICS), published before raw
 * frames. A pump publishes while connected, with at most MAX_INFLIGHT messages written but not
 * yet taken by the socket (QoS 0) or acknowledged (QoS 1/2), and at most PUMP_BUDGET per
 * event-loop turn; mqtt.js's own offline queue is off. Values are published only when they change
 * (and all of them again after every connect, since a broker may have lost its retained store).
 *
 * Connection: one mqtt.js client per attempt (its own reconnect is off), capped exponential
 * backoff between attempts, a retained "offline" last will on <prefix>/availability and
 * "online" after each connect. Credentials are never logged (the URL is logged without them).
 * mqtts:// verifies the broker's certificate and name, always; -mqtt-ca replaces the default CA
 * list with the CAs of a file (./tls.ts). A failed handshake is a failed attempt like any other
 * (logged once as mqtt_tls_failed with what to do, counted, retried with the same backoff).
 * Transmit requests (-mqtt-tx) go through a hub TX lane like a TCP client's: validation, rate
 * limit, fair scheduling, expiry; every refusal is counted by reason. Retained messages on the
 * command topic are refused, whenever they arrive: a command kept by the broker would be re-sent
 * on every reconnect. The bridge speaks MQTT 5 and subscribes with "retain as published", so a
 * retained publish is recognised even when it arrives while the bridge is connected (MQTT 3.1.1
 * clears the flag on live delivery); a broker that refuses MQTT 5 gets 3.1.1 and a warning that
 * only re-delivered retained commands can be told apart there.
 *
 * Availability after a restart: a new process has not seen the modules a previous one announced
 * "online" (retained). Right after each connect the bridge reads the retained module availability
 * topics for AVAILABILITY_SCAN_MS and marks "offline" every module it has not seen itself since
 * it started, so a module that stays silent after a gateway restart never looks alive.
 */
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import type * as Prom from "prom-client";
import { type AmpioReading, type DecodeResult, HouseNames } from "../../ampio/index.ts";
import { AMPIO_AVAILABILITY_FILTER, AMPIO_REQUESTS, AmpioTree, DEV_LIST_ANSWER, descriptionAnswer, moduleOfTreeAvailability, parseRequest } from "./ampio-tree.ts";
import { Backoff } from "../../backends/backoff.ts";
import type { CanFrame, StampedFrame } from "../../can/frame.ts";
import type { Hub, HubClient } from "../../hub/hub.ts";
import type { TxLane, TxOrigin } from "../../hub/tx-scheduler.ts";
import type { Logger } from "../../ops/log.ts";
import { TX_DROP_REASONS } from "../../ops/stats.ts";
import type { AmpioDecoder, AmpioListener } from "../ampio-decoder.ts";
import { type CommandRefusal, discoverable, discoveryMessage, framePayload, gatewayDiscoveryMessage, parseCommand, type Topics, topicsFor, valuePayload } from "./topics.ts";
import { mirrorCounter } from "../../ops/prom-mirror.ts";
import { isIP } from "node:net";
import { type CaBundle, tlsFailure } from "./tls.ts";
import type { MqttExtension } from "./extension.ts";

/** Bus frames held for the broker; ~1 s of a saturated 1 Mbit/s bus, ~26 s of an Ampio bus. */
export const RAW_OUTBOX_FRAMES = 10_000;
/** Distinct retained topics (values, availability, discovery) waiting for the broker. */
export const STATE_OUTBOX_TOPICS = 50_000;
/** Messages handed to mqtt.js and not yet written (QoS 0) or acknowledged (QoS 1/2). */
export const MAX_INFLIGHT = 1024;
/** Messages published per event-loop turn at most. */
export const PUMP_BUDGET = 2048;
/** Remembered last-published payloads for change detection; cleared (all re-sent once) past it. */
const LAST_SENT_MAX = 200_000;
/**
 * Discovery documents remembered as published. The decoder sees only modules on the bus and holds
 * at most 256 modules with at most 51 discoverable values each (13,056); past this cap, entries of
 * modules no longer in the inventory are forgotten, and if that frees nothing a new one is
 * dropped (counted as discovery_full).
 */
export const DISCOVERED_MAX = 16_384;
/** How long after a connect retained module availability is read to mark unseen modules offline. */
export const AVAILABILITY_SCAN_MS = 5_000;

/** Answers and events (not retained) waiting for the broker. */
export const ONCE_OUTBOX_MESSAGES = 1024;

export const MQTT_DROP_REASONS = ["outbox_full", "state_outbox_full", "unconfirmed", "publish_failed", "discovery_full", "answer_outbox_full"] as const;
export type MqttDropReason = (typeof MQTT_DROP_REASONS)[number];
/** The bridge's own refusals of command-topic messages (the TX lane adds its reasons). */
const BRIDGE_REFUSALS = ["malformed", "invalid", "retained", "unknown_module", "undocumented", "tx_off"] as const;
type BridgeRefusal = (typeof BRIDGE_REFUSALS)[number];
export const MQTT_TX_REFUSALS = [...BRIDGE_REFUSALS, ...TX_DROP_REASONS] as const;

export interface MqttBridgeOptions {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  readonly clientId: string;
  readonly prefix: string;
  readonly qos: 0 | 1 | 2;
  readonly keepaliveMs: number;
  /** Publish every bus frame on <prefix>/raw/<id>. */
  readonly raw: boolean;
  /** Subscribe to <prefix>/tx and send what arrives to the bus. */
  readonly tx: boolean;
  readonly haDiscovery: boolean;
  readonly hub: Hub;
  /**
   * Every bus (Gateway.buses), for raw frames: with more than one, the bridge is a client of each
   * and raw topics carry the bus name (`<prefix>/<bus>/raw/<ID>`). Absent or one: `hub` only, `<prefix>/raw/<ID>`.
   */
  readonly buses?: readonly { readonly name: string; readonly hub: Pick<Hub, "attach" | "detach" | "openTx"> }[];
  /** Source of decoded states (null: raw frames only). */
  readonly decoder: AmpioDecoder | null;
  readonly log: Logger;
  /** Hub client id of the bridge and origin id of its TX lane (distinct, so its own commands show on raw topics once on the bus). */
  readonly id: number;
  readonly txId: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  readonly connectTimeoutMs?: number;
  /** -mqtt-ca, loaded (mqtts:// only): the only CAs trusted for the broker. Null: the default list. */
  readonly ca?: CaBundle | null;
  /** -mqtt-ampio: serve the M-SERV topic tree (./ampio-tree.ts); needs the decoder. */
  readonly ampioTree?: boolean;
  /** Features publishing through the bridge (./extension.ts): DBC signals. */
  readonly extensions?: readonly MqttExtension[];
  /** -ampio-names, loaded (empty without the flag). */
  readonly names?: HouseNames;
  /** The TX lane refuses every frame (-tx-allow does not include the broker's address). */
  readonly txReadOnly?: boolean;
}

export interface MqttCounters {
  published: number;
  reconnects: number;
  connectFailures: number;
  authFailures: number;
  /** Attempts whose TLS handshake failed (certificate not trusted, wrong name, expired, not TLS). */
  tlsFailures: number;
  txReceived: number;
  /** Retained "online" of modules this process had not seen, replaced by "offline" after a connect. */
  staleAvailabilityCleared: number;
}

/** The broker URL without credentials, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(invalid url)";
  }
}

/** "FILE (CN=Home CA)" or "FILE (CN=A and 139 more)": a whole bundle's subjects do not belong on one log line. */
function caSummary(ca: CaBundle): string {
  const n = ca.subjects.length;
  return `${ca.file} (${ca.subjects[0] ?? ""}${n > 1 ? ` and ${n - 1} more` : ""})`;
}

interface Attempt {
  readonly client: MqttClient;
  done: boolean;
  connected: boolean;
  /** Waiting for the socket's 'drain' (one listener at most). */
  draining: boolean;
  /** Reading retained module availability (AVAILABILITY_SCAN_MS after the connect). */
  scanning: boolean;
  scanTimer: ReturnType<typeof setTimeout> | null;
}

/** The bit of the socket the pump looks at: a full write buffer means wait for 'drain'. */
interface WritableView {
  readonly writableNeedDrain?: boolean;
  readonly writableLength?: number;
  once(event: "drain", cb: () => void): unknown;
}

/** Bytes buffered in the socket above which the pump waits for 'drain' even if it was not asked to. */
const SOCKET_HIGH_WATER = 1 << 20;

export class MqttBridge implements HubClient, AmpioListener {
  readonly protocol = "mqtt";
  readonly remote: string;
  readonly receiving = true;
  dropped = 0;
  readonly topics: Topics;
  private readonly brokerLabel: string;
  /** mqtts:// (the certificate is verified) and the host it must be issued for. */
  private readonly tls: boolean;
  private readonly host: string;

  // Raw outbox: a ring of frames and their arrival times.
  private readonly rawFrames: (StampedFrame | undefined)[] = new Array<StampedFrame | undefined>(RAW_OUTBOX_FRAMES);
  private rawHead = 0;
  private rawLen = 0;
  /** Retained messages waiting, by topic (insertion order = publish order). */
  private readonly pending = new Map<string, string>();
  /** Not-retained messages (answers, events, diagnostics), FIFO, at most ONCE_OUTBOX_MESSAGES. */
  private readonly once: { topic: string; payload: string }[] = [];
  /** The M-SERV topic tree (-mqtt-ampio), or null. */
  readonly tree: AmpioTree | null;
  private readonly names: HouseNames;
  private readonly lastSent = new Map<string, string>();
  /** Discovery topic → module id, for what was queued since the last connect. */
  private readonly discovered = new Map<string, number>();

  private attempt: Attempt | null = null;
  private everConnected = false;
  private stopping = false;
  private inflight = 0;
  private pumping = false;
  private pumpScheduled = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly backoff: Backoff;
  private lastError = "";
  private droppingLogged = false;
  private readonly lane: TxLane | null;
  /** Several buses with -mqtt-tx: each bus's command topic → its TX lane (the first bus's is `lane`). */
  private readonly busLanes = new Map<string, TxLane>();
  private readonly refusedLogged = new Set<string>();
  readonly drops = new Map<MqttDropReason, number>(MQTT_DROP_REASONS.map((r) => [r, 0]));
  readonly txRefused = new Map<string, number>(BRIDGE_REFUSALS.map((r) => [r, 0]));
  private readonly c: MqttCounters = { published: 0, reconnects: 0, connectFailures: 0, authFailures: 0, tlsFailures: 0, txReceived: 0, staleAvailabilityCleared: 0 };
  /** MQTT 5 until a broker refuses it; then 3.1.1 for the rest of the process. */
  private protocolVersion: 4 | 5 = 5;

  constructor(private readonly opts: MqttBridgeOptions) {
    this.topics = topicsFor(opts.prefix);
    this.brokerLabel = redactUrl(opts.url);
    this.remote = this.brokerLabel;
    let u: URL | null = null;
    try {
      u = new URL(opts.url);
    } catch {
      // validateConsumerConfig refuses such a URL; connect() reports it if it gets here anyway.
    }
    this.tls = u?.protocol === "mqtts:";
    this.host = u?.hostname.replace(/^\[|\]$/g, "") ?? "";
    this.backoff = new Backoff({ initialMs: opts.backoff?.initialMs ?? 500, maxMs: opts.backoff?.maxMs ?? 30_000, factor: 2 });
    const origin: TxOrigin = { id: opts.txId, protocol: "mqtt", remote: this.brokerLabel };
    this.lane = opts.tx ? opts.hub.openTx(origin, opts.txReadOnly === true) : null;
    if (this.lane !== null && opts.buses !== undefined && opts.buses.length > 1) {
      opts.buses.forEach((b, i) => this.busLanes.set(this.topics.busTx(b.name), i === 0 ? this.lane! : b.hub.openTx(origin, opts.txReadOnly === true)));
    }
    this.names = opts.names ?? HouseNames.EMPTY;
    const dec = opts.decoder;
    this.tree =
      opts.ampioTree === true && dec !== null
        ? new AmpioTree(dec, this.names, {
            retained: (topic, payload, always = false) => {
              if (!always && this.lastSent.get(topic) === payload && !this.pending.has(topic)) return;
              this.queueRetained(topic, payload);
            },
            once: (topic, payload) => this.queueOnce(topic, payload),
          })
        : null;
    for (const x of opts.extensions ?? []) x.bind({ retained: (topic, payload) => this.queueRetained(topic, payload) });
  }

  get id(): number {
    return this.opts.id;
  }

  get queued(): number {
    return this.rawLen + this.pending.size + this.once.length;
  }

  /** Discovery documents remembered as queued (at most DISCOVERED_MAX). */
  get discoveredCount(): number {
    return this.discovered.size;
  }

  /** Bus frames waiting for the broker (at most RAW_OUTBOX_FRAMES). */
  get rawQueued(): number {
    return this.rawLen;
  }

  get connected(): boolean {
    return this.attempt?.connected === true;
  }

  counters(): Readonly<MqttCounters> {
    return { ...this.c };
  }

  droppedTotal(): number {
    let n = 0;
    for (const v of this.drops.values()) n += v;
    return n;
  }

  /** Starts connecting (returns at once; the first connect is logged when it happens). */
  start(): void {
    if (this.opts.raw) for (const h of this.rawHubs()) h.attach(this);
    this.opts.decoder?.addListener(this);
    this.opts.log.info("mqtt_starting", {
      broker: this.brokerLabel,
      client_id: this.opts.clientId,
      prefix: this.topics.prefix,
      qos: this.opts.qos,
      raw: this.opts.raw,
      tx: this.opts.tx,
      ha_discovery: this.opts.haDiscovery,
      decoded: this.opts.decoder !== null,
      ampio_tree: this.tree !== null,
      ...(this.names.size > 0 ? { names: this.names.file, named_modules: this.names.size } : {}),
      ...(this.tls ? { tls: true, ca: this.opts.ca ? caSummary(this.opts.ca) : "default list" } : {}),
    });
    this.connect();
  }

  /** Publishes "offline" (best effort, at most timeoutMs) and disconnects. */
  async stop(timeoutMs = 1000): Promise<void> {
    this.stopping = true;
    for (const x of this.opts.extensions ?? []) x.stop();
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    for (const h of this.rawHubs()) h.detach(this);
    const a = this.attempt;
    if (a === null || a.done) return;
    if (a.connected) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, timeoutMs);
        a.client.publish(this.topics.availability, "offline", { qos: this.opts.qos, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    a.done = true;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      a.client.end(!a.connected, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
    this.opts.log.info("mqtt_stopped", { broker: this.brokerLabel, published: this.c.published, dropped: this.droppedTotal() });
  }

  // --- Hub client (raw frames) -----------------------------------------------------------------

  /** The hubs raw frames come from: every bus's with several buses, else the one hub. */
  private rawHubs(): readonly Pick<Hub, "attach" | "detach">[] {
    const buses = this.opts.buses;
    return buses !== undefined && buses.length > 1 ? buses.map((b) => b.hub) : [this.opts.hub];
  }

  /** The bus name a raw topic carries (several buses), or undefined (one bus: go-ampio-server's tree). */
  private rawBusName(f: StampedFrame): string | undefined {
    const buses = this.opts.buses;
    if (buses === undefined || buses.length < 2) return undefined;
    return (buses[f.bus] ?? buses[0]!).name;
  }

  accepts(): boolean {
    return true;
  }

  enqueue(f: StampedFrame): boolean {
    const cap = RAW_OUTBOX_FRAMES;
    let i = this.rawHead + this.rawLen;
    if (i >= cap) i -= cap;
    if (this.rawLen === cap) {
      // Full: the oldest goes (its slot is the one we write).
      this.rawHead = this.rawHead + 1 === cap ? 0 : this.rawHead + 1;
      this.drop("outbox_full", 1);
    } else this.rawLen++;
    this.rawFrames[i] = f;
    this.schedulePump();
    return true;
  }

  /** Never refuses a frame, so the hub's kick policy cannot apply; nothing to do. */
  kick(): void {}

  // --- Decoded states ---------------------------------------------------------------------------

  decoded(r: Extract<DecodeResult, { kind: "decoded" }>): void {
    for (const v of r.values) {
      const topic = this.topics.value(r.moduleId, v.name);
      const payload = valuePayload(v.value);
      if (this.opts.haDiscovery && discoverable(v)) this.discover(r.moduleId, v);
      if (this.lastSent.get(topic) === payload && !this.pending.has(topic)) continue;
      this.queueRetained(topic, payload);
    }
    this.tree?.decoded(r);
  }

  event(moduleId: number, data: Uint8Array): void {
    this.tree?.event(moduleId, data);
  }

  /** Queues a value's discovery document once (bounded by DISCOVERED_MAX). */
  private discover(moduleId: number, v: AmpioReading): void {
    const mod = this.names.module(moduleId);
    const ch = this.names.channel(moduleId, v.name);
    const names = { ...(mod?.name !== undefined ? { module: mod.name } : {}), ...((ch?.room ?? mod?.room) !== undefined ? { room: (ch?.room ?? mod?.room)! } : {}), ...(ch !== undefined ? { value: ch.name } : {}) };
    const d = discoveryMessage(this.topics, moduleId, v, names);
    if (this.discovered.has(d.topic)) return;
    if (this.discovered.size >= DISCOVERED_MAX && !this.pruneDiscovered()) {
      this.drop("discovery_full", 1);
      return;
    }
    if (this.queueRetained(d.topic, d.payload)) this.discovered.set(d.topic, moduleId);
  }

  /** Forgets discovery entries of modules the inventory no longer holds; true if any went. */
  private pruneDiscovered(): boolean {
    const inv = this.opts.decoder?.inventory;
    if (inv === undefined) return false;
    const before = this.discovered.size;
    for (const [topic, id] of this.discovered) if (!inv.has(id)) this.discovered.delete(topic);
    return this.discovered.size < before;
  }

  moduleState(moduleId: number, online: boolean): void {
    this.queueRetained(this.topics.moduleAvailability(moduleId), online ? "online" : "offline");
    this.tree?.moduleState(moduleId, online);
  }

  /** A not-retained message (answer, event); bounded, the newest is dropped when full (counted). */
  private queueOnce(topic: string, payload: string): void {
    if (this.once.length >= ONCE_OUTBOX_MESSAGES) return this.drop("answer_outbox_full", 1);
    this.once.push({ topic, payload });
    this.schedulePump();
  }

  private queueRetained(topic: string, payload: string): boolean {
    if (!this.pending.has(topic) && this.pending.size >= STATE_OUTBOX_TOPICS) {
      this.drop("state_outbox_full", 1);
      return false;
    }
    this.pending.set(topic, payload);
    this.schedulePump();
    return true;
  }

  /** After a connect: every module's availability and every value again (the broker may have forgotten). */
  private requeueAll(): void {
    const dec = this.opts.decoder;
    if (dec === null) return;
    this.discovered.clear();
    const online = new Set(dec.onlineModules());
    const snap = dec.inventory.snapshot(Date.now());
    for (const m of snap.modules) {
      this.queueRetained(this.topics.moduleAvailability(m.id), online.has(m.id) ? "online" : "offline");
      for (const v of m.values) {
        const reading = v.unit === undefined ? { name: v.name, value: v.value } : { name: v.name, value: v.value, unit: v.unit as "°C" | "V" };
        if (this.opts.haDiscovery && discoverable(reading)) this.discover(m.id, reading);
        this.queueRetained(this.topics.value(m.id, v.name), valuePayload(v.value));
      }
    }
    this.tree?.requeueAll(Date.now());
  }

  // --- Publishing -------------------------------------------------------------------------------

  private schedulePump(): void {
    if (this.pumpScheduled || this.pumping || !this.connected) return;
    this.pumpScheduled = true;
    setImmediate(this.pumpTurn);
  }

  private readonly pumpTurn = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  private pump(): void {
    const a = this.attempt;
    if (this.pumping || a === null || !a.connected) return;
    this.pumping = true;
    try {
      let budget = PUMP_BUDGET;
      const stream = a.client.stream as unknown as WritableView;
      while (a.connected && !a.draining && this.inflight < MAX_INFLIGHT && budget > 0) {
        if (stream.writableNeedDrain === true || (stream.writableLength ?? 0) > SOCKET_HIGH_WATER) {
          // The broker is not reading fast enough: stop here, the outboxes (bounded) hold the rest.
          a.draining = true;
          stream.once("drain", () => {
            a.draining = false;
            this.schedulePump();
          });
          break;
        }
        budget--;
        const answer = this.once.shift();
        if (answer !== undefined) {
          this.publish(a, answer.topic, answer.payload, false);
          continue;
        }
        const first = this.pending.entries().next();
        if (first.done !== true) {
          const [topic, payload] = first.value;
          this.pending.delete(topic);
          if (this.lastSent.size >= LAST_SENT_MAX) this.lastSent.clear();
          this.lastSent.set(topic, payload);
          this.publish(a, topic, payload, true);
          continue;
        }
        if (this.rawLen === 0) break;
        const i = this.rawHead;
        const f = this.rawFrames[i]!;
        this.rawFrames[i] = undefined;
        this.rawHead = i + 1 === RAW_OUTBOX_FRAMES ? 0 : i + 1;
        this.rawLen--;
        this.publish(a, this.topics.raw(f, this.rawBusName(f)), framePayload(f, Math.floor(f.ts / 1000)), false);
      }
    } finally {
      this.pumping = false;
    }
    if (a.connected && !a.draining && this.inflight < MAX_INFLIGHT && (this.rawLen > 0 || this.pending.size > 0 || this.once.length > 0)) this.schedulePump();
  }

  private publish(a: Attempt, topic: string, payload: string, retain: boolean): void {
    this.inflight++;
    a.client.publish(topic, payload, { qos: this.opts.qos, retain }, (err) => {
      if (a !== this.attempt || a.done) return; // counted as unconfirmed when that connection closed
      this.inflight--;
      if (err) this.drop("publish_failed", 1);
      else this.c.published++;
      if (!this.pumping) this.schedulePump();
    });
  }

  private drop(reason: MqttDropReason, n: number): void {
    this.drops.set(reason, this.drops.get(reason)! + n);
    this.dropped += n;
    if (!this.droppingLogged) {
      this.droppingLogged = true;
      this.opts.log.warn("mqtt_dropping", { broker: this.brokerLabel, reason, connected: this.connected });
    }
  }

  // --- Connection -------------------------------------------------------------------------------

  private connect(): void {
    if (this.stopping) return;
    let client: MqttClient;
    try {
      client = mqtt.connect(this.clientOptions());
    } catch (e) {
      // A synchronous throw (bad URL or TLS option, socket error) is a failed attempt, never a crash.
      this.failedBeforeClient(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const a: Attempt = { client, done: false, connected: false, draining: false, scanning: false, scanTimer: null };
    this.attempt = a;
    client.on("connect", () => this.onConnect(a));
    client.on("error", (e) => this.onError(a, e));
    client.on("close", () => this.retire(a));
    client.on("message", (topic, payload, packet) => this.onMessage(a, topic, payload, packet.retain));
  }

  private clientOptions(): IClientOptions {
    const o = this.opts;
    const options: IClientOptions = {
      clientId: o.clientId,
      keepalive: Math.round(o.keepaliveMs / 1000),
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? 10_000,
      queueQoSZero: false,
      resubscribe: false,
      protocolVersion: this.protocolVersion,
      will: { topic: this.topics.availability, payload: Buffer.from("offline"), qos: o.qos, retain: true },
    };
    // Parsed here with the WHATWG URL (mqtt.js would use the deprecated url.parse and warn on stderr).
    const u = new URL(o.url);
    options.protocol = u.protocol === "mqtts:" ? "mqtts" : "mqtt";
    options.host = u.hostname.replace(/^\[|\]$/g, "");
    options.port = u.port !== "" ? Number(u.port) : u.protocol === "mqtts:" ? 8883 : 1883;
    if (u.protocol === "mqtts:") {
      // The certificate is always checked (chain and name); there is no switch to turn that off.
      options.rejectUnauthorized = true;
      // SNI takes a DNS name only (node:tls throws for an IP); the name check uses the host either way.
      if (isIP(options.host) === 0) options.servername = options.host;
      if (o.ca) options.ca = [...o.ca.certificates];
    }
    const username = o.username !== "" ? o.username : decodeURIComponent(u.username);
    const password = o.password !== "" ? o.password : decodeURIComponent(u.password);
    if (username !== "") options.username = username;
    if (password !== "") options.password = password;
    return options;
  }

  private onConnect(a: Attempt): void {
    if (a.done) return;
    a.connected = true;
    this.backoff.reset();
    this.lastError = "";
    this.droppingLogged = false;
    if (this.everConnected) this.c.reconnects++;
    this.opts.log.info(this.everConnected ? "mqtt_reconnected" : "mqtt_connected", {
      broker: this.brokerLabel,
      client_id: this.opts.clientId,
      dropped: this.droppedTotal(),
    });
    this.everConnected = true;
    // Availability first: a subscriber that sees values also knows the gateway is up.
    this.publish(a, this.topics.availability, "online", true);
    if (this.opts.haDiscovery) {
      const g = gatewayDiscoveryMessage(this.topics);
      this.publish(a, g.topic, g.payload, true);
    }
    // rap (MQTT 5, "retain as published"): a retained publish keeps its flag on live delivery.
    if (this.lane !== null) this.subscribe(a, this.topics.tx);
    for (const t of this.busLanes.keys()) this.subscribe(a, t);
    if (this.tree !== null) this.subscribe(a, AMPIO_REQUESTS);
    for (const x of this.opts.extensions ?? []) {
      for (const f of x.subscriptions()) this.subscribe(a, f);
      x.connected();
    }
    if (this.opts.decoder !== null) {
      a.scanning = true;
      const filters = [this.topics.moduleAvailabilityFilter, ...(this.tree !== null ? [AMPIO_AVAILABILITY_FILTER] : [])];
      for (const f of filters) this.subscribe(a, f);
      a.scanTimer = setTimeout(() => {
        a.scanTimer = null;
        a.scanning = false;
        if (!a.done) a.client.unsubscribe(filters);
      }, AVAILABILITY_SCAN_MS);
      a.scanTimer.unref?.();
    }
    this.requeueAll();
    this.pump();
  }

  private subscribe(a: Attempt, topic: string): void {
    const options = this.protocolVersion === 5 ? { qos: this.opts.qos, rap: true } : { qos: this.opts.qos };
    a.client.subscribe(topic, options, (err) => {
      if (err) this.opts.log.error("mqtt_subscribe_failed", { topic, error: err.message });
    });
  }

  private onError(a: Attempt, e: Error): void {
    if (a.done) return;
    const code = (e as { code?: unknown }).code;
    // CONNACK 1 (3.1.1) / 132 (MQTT 5): the broker does not speak MQTT 5: 3.1.1 from now on.
    if (!a.connected && this.protocolVersion === 5 && (code === 1 || code === 132)) {
      this.protocolVersion = 4;
      this.opts.log.warn("mqtt_protocol_fallback", {
        broker: this.brokerLabel,
        protocol: "3.1.1",
        detail: "the broker refused MQTT 5; retained commands published while the bridge is connected cannot be recognised (MQTT 3.1.1 clears the retain flag on live delivery)",
      });
      this.retire(a);
      return;
    }
    // MQTT 3.1.1 CONNACK 4 = bad user name or password, 5 = not authorized (MQTT 5: 134, 135).
    const auth = code === 4 || code === 5 || code === 134 || code === 135;
    const tls = this.tls && !auth && !a.connected ? tlsFailure(e, this.host, this.opts.ca?.file ?? null) : null;
    const msg = e.message;
    if (!a.connected) {
      this.c.connectFailures++;
      if (auth) this.c.authFailures++;
      if (tls !== null) this.c.tlsFailures++;
    }
    if (msg !== this.lastError) {
      this.lastError = msg;
      if (tls !== null) {
        // Logged once until the error changes or a connect succeeds; every attempt is counted.
        this.opts.log.error("mqtt_tls_failed", { broker: this.brokerLabel, kind: tls.kind, code: tls.code, error: msg, hint: tls.hint });
      } else if (auth) {
        this.opts.log.error("mqtt_auth_failed", {
          broker: this.brokerLabel,
          username: this.opts.username || "(none)",
          error: `the broker refused the credentials (${msg}); check -mqtt-username and -mqtt-password`,
        });
      } else this.opts.log.warn(a.connected ? "mqtt_error" : "mqtt_connect_failed", { broker: this.brokerLabel, error: msg });
    }
    if (!a.connected) this.retire(a);
  }

  /** mqtt.connect threw: counted and logged like a failed attempt, retried after the backoff. */
  private failedBeforeClient(e: Error): void {
    this.attempt = null;
    this.c.connectFailures++;
    if (e.message !== this.lastError) {
      this.lastError = e.message;
      this.opts.log.warn("mqtt_connect_failed", { broker: this.brokerLabel, error: e.message });
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.stopping) return;
    const delay = this.backoff.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  /** The attempt's connection is over: count what it did not confirm, schedule the next one. */
  private retire(a: Attempt): void {
    if (a.done) return;
    a.done = true;
    const wasConnected = a.connected;
    a.connected = false;
    if (this.inflight > 0) this.drop("unconfirmed", this.inflight);
    this.inflight = 0;
    if (a.scanTimer !== null) clearTimeout(a.scanTimer);
    a.scanTimer = null;
    a.scanning = false;
    a.client.removeAllListeners("message");
    a.client.on("error", () => {}); // late errors of a retired client are not ours to report
    a.client.end(true);
    if (this.stopping) return;
    if (wasConnected) this.opts.log.warn("mqtt_disconnected", { broker: this.brokerLabel });
    this.scheduleReconnect();
  }

  // --- Transmit requests ----------------------------------------------------------------------

  private onMessage(a: Attempt, topic: string, payload: Buffer, retained: boolean): void {
    if (a.done) return;
    if (a.scanning && retained) {
      const id = this.topics.moduleOfAvailability(topic) ?? (this.tree !== null ? moduleOfTreeAvailability(topic) : null);
      if (id !== null) return this.staleAvailability(id, topic, payload.toString("utf8"));
    }
    for (const x of this.opts.extensions ?? []) if (x.message(topic, payload.toString("utf8"), retained)) return;
    if (this.tree !== null && topic.startsWith("ampio/to/")) return this.onTreeRequest(topic, payload, retained);
    const lane = topic === this.topics.tx ? this.lane : (this.busLanes.get(topic) ?? null);
    if (lane === null) return;
    this.c.txReceived++;
    if (retained) return this.refuse("retained", "retained message on the command topic (publish without -r)", topic);
    const r = parseCommand(payload.toString("utf8"));
    if ("refusal" in r) return this.refuse(r.refusal, r.reason, topic);
    lane.send(r.frame); // refusals counted by the lane (client_tx_dropped_total) and below
  }

  /** A message under ampio/to/: an inventory or description request, or a command for a module. */
  private onTreeRequest(topic: string, payload: Buffer, retained: boolean): void {
    const tree = this.tree!;
    const r = parseRequest(topic, payload.toString("utf8"), tree.facts);
    switch (r.kind) {
      case "ignored":
        return;
      case "dev-list":
        return this.queueOnce(DEV_LIST_ANSWER, tree.devList(Date.now()));
      case "description":
        return this.queueOnce(`ampio/from/${topic.split("/")[2]}/description`, descriptionAnswer(r.id, this.names));
    }
    this.c.txReceived++;
    if (retained) return this.refuse("retained", "retained message on a command topic (publish without -r)", topic);
    if (r.kind === "refused") return this.refuse(r.refusal, r.reason, topic);
    if (this.lane === null) return this.refuse("tx_off", "commands need -mqtt-tx", topic);
    // In order, on the bridge's lane: a multi-frame command's frames stay together and in order.
    for (const f of r.frames) this.lane.send(f);
    this.opts.log.debug("mqtt_ampio_command", { topic, command: r.what, frames: r.frames.length });
  }

  /** A retained availability read after a connect: "online" of a module not seen since start → "offline". */
  private staleAvailability(id: number, topic: string, payload: string): void {
    const dec = this.opts.decoder;
    if (dec === null || payload !== "online" || dec.isOnline(id) || this.pending.has(topic)) return;
    if (this.c.staleAvailabilityCleared++ === 0) {
      this.opts.log.info("mqtt_stale_availability", { topic, detail: "a module announced online before this process started has not spoken since: marked offline" });
    }
    this.queueRetained(topic, "offline");
  }

  private refuse(reason: CommandRefusal | BridgeRefusal, detail: string, topic: string): void {
    this.txRefused.set(reason, this.txRefused.get(reason)! + 1);
    if (!this.refusedLogged.has(reason)) {
      this.refusedLogged.add(reason);
      this.opts.log.warn("mqtt_tx_refused", { reason, detail, topic });
    }
  }

  /** Refusals by reason: the bridge's own and the TX lane's. */
  txRefusals(): Map<string, number> {
    const m = new Map(this.txRefused);
    for (const r of TX_DROP_REASONS) m.set(r, this.lanes().reduce((n, l) => n + (l.dropped.get(r) ?? 0), 0));
    return m;
  }

  get txSent(): number {
    return this.lanes().reduce((n, l) => n + l.sent, 0);
  }

  /** Every TX lane: the first bus's and, with several buses, the others'. */
  private lanes(): TxLane[] {
    if (this.lane === null) return [];
    return this.busLanes.size > 0 ? [...this.busLanes.values()] : [this.lane];
  }

  // --- Metrics ----------------------------------------------------------------------------------

  registerMetrics(registry: Prom.Registry, prom: typeof Prom): void {
    const { Counter, Gauge } = prom;
    const self = this;
    const counter = (name: string, help: string, read: () => number): Prom.Counter => mirrorCounter(Counter, registry, name, help, read);
    new Gauge({
      name: "mqtt_connected",
      help: "1 while the MQTT bridge is connected to its broker, else 0.",
      registers: [registry],
      collect() {
        this.set(self.connected ? 1 : 0);
      },
    });
    counter("mqtt_published_messages_total", "Messages the MQTT bridge handed to the broker connection (written for QoS 0, acknowledged for QoS 1/2).", () => this.c.published);
    new Counter({
      name: "mqtt_dropped_messages_total",
      help: "Messages the MQTT bridge lost, by reason (outbox_full: oldest raw frame dropped; state_outbox_full; unconfirmed: in flight when the connection closed; publish_failed; discovery_full; answer_outbox_full).",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of self.drops) this.inc({ reason }, n);
      },
    });
    counter("mqtt_reconnects_total", "Times the MQTT bridge connected again after losing its broker.", () => this.c.reconnects);
    counter("mqtt_connect_failures_total", "MQTT connection attempts that failed (network, refused, TLS, bad credentials).", () => this.c.connectFailures);
    counter("mqtt_tls_failures_total", "MQTT connection attempts whose TLS handshake failed (broker certificate not trusted, not issued for the -mqtt-url host, expired; also counted in mqtt_connect_failures_total).", () => this.c.tlsFailures);
    new Gauge({
      name: "mqtt_outbox_messages",
      help: "Messages waiting for the broker, by kind (raw frames, retained states, answers and events).",
      labelNames: ["kind"],
      registers: [registry],
      collect() {
        this.set({ kind: "raw" }, self.rawLen);
        this.set({ kind: "state" }, self.pending.size);
        this.set({ kind: "answer" }, self.once.length);
      },
    });
    counter("mqtt_stale_availability_cleared_total", "Retained module availability \"online\" of modules this process had not heard since it started, replaced by \"offline\" after a connect.", () => this.c.staleAvailabilityCleared);
    counter("mqtt_tx_received_total", "Messages received on the MQTT command topic.", () => this.c.txReceived);
    counter("mqtt_tx_sent_total", "Frames from the MQTT command topic written to the bus.", () => this.txSent);
    new Counter({
      name: "mqtt_tx_refused_total",
      help: "Messages on the MQTT command topics that did not reach the bus, by reason (malformed, invalid, retained, unknown_module, undocumented, tx_off, and the TX lane's reasons).",
      labelNames: ["reason"],
      registers: [registry],
      collect() {
        this.reset();
        for (const [reason, n] of self.txRefusals()) this.inc({ reason }, n);
      },
    });
  }
}
