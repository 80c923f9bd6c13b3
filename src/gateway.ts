/**
 * Composition of the running gateway: for each bus, backend ⇄ hub ⇄ listeners; one admission
 * layer and one client registry for all of them. main.ts adds process concerns (config, signals,
 * HTTP, mDNS); tests and benchmarks start a Gateway directly on ephemeral ports.
 *
 * Buses: flags alone give one bus, exactly as go-ampio-server. A configuration file's `[[bus]]`
 * tables give several (src/cli/config-file.ts); each has its own backend, hub (own TX scheduler,
 * own clients, own counters) and single-bus listeners (cannelloni TCP/UDP, Waveshare, slcan,
 * canlogserver: `multiBus` false in the registry). Multi-bus protocols (socketcand, GVRET) listen
 * once, with the default bus's hub; their sessions select another bus through SessionContext.buses
 * (socketcand `< open NAME >`).
 */
import { DEFAULT_BITRATE, type Backend } from "./backends/backend.ts";
import type { Config } from "./cli/config.ts";
import { socketcandBusName } from "./cli/bus-name.ts";
import { Hub } from "./hub/hub.ts";
import { busFrameRate } from "./hub/token-bucket.ts";
import { droppedFields, type TxLimits } from "./hub/tx-scheduler.ts";
import { CidrList } from "./net/cidr.ts";
import { availableParallelism } from "node:os";
import { connectionCapacity, derivedMaxClients } from "./server/fd-limit.ts";
import { Admission } from "./net/admission.ts";
import type { Logger } from "./ops/log.ts";
import type { Stats, TxDropReason } from "./ops/stats.ts";
import { PROTOCOLS, type ProtocolName } from "./protocols/registry.ts";
import { ClientRegistry, startListener, type Listener } from "./server/listener.ts";
import type { SessionOptions } from "./server/session.ts";
import { UdpEndpoint } from "./server/udp-peer.ts";
import type { ClientSession } from "./server/session.ts";
import type { StampedFrame } from "./can/frame.ts";
import type { WallClock } from "./can/clock.ts";
import type { RouteConfig } from "./route/route.ts";
import { startRoutes, type Route } from "./route/router.ts";

export interface GatewayDeps {
  /** The process's counters: admission (shared by every bus) and the default bus's. */
  readonly stats: Stats;
  readonly log: Logger;
  /** The backend of the only bus (flags alone); ignored when `buses` is given. */
  readonly backend?: Backend;
  /**
   * Several buses (configuration file `[[bus]]` tables), in order: the first is the default bus
   * (its hub and backend are Gateway.hub/backend). Each has its own effective configuration,
   * backend and counters.
   */
  readonly buses?: readonly BusSpec[];
  /** Frames each new client gets right after its handshake (see SessionContext.initialFrames). */
  readonly initialFrames?: (session: ClientSession) => readonly StampedFrame[];
  /** The frame clock (src/can/clock.ts); the system clock unless a test steps its own. */
  readonly clock?: WallClock;
  /** Routes between the buses (configuration file `[[route]]` tables, src/route/). */
  readonly routes?: readonly RouteConfig[];
}

/** What a bus is made of before it starts. */
export interface BusSpec {
  /** Unique; what socketcand `< open NAME >`, recorder lines and the `bus` metric label show. */
  readonly name: string;
  /** The bus's effective configuration (globals plus its own keys, src/cli/config-file.ts). */
  readonly config: Config;
  readonly backend: Backend;
  /** Its counters (the `bus` label of its metrics); the process's Stats for the default bus. */
  readonly stats: Stats;
}

/**
 * One running bus: a backend, its own hub (own TX scheduler, own clients) and its single-bus
 * listeners. Every frame of its hub carries `index` (StampedFrame.bus), so a consumer attached to
 * several hubs knows where a frame came from: gateway.buses[frame.bus].
 */
export interface Bus {
  readonly name: string;
  /** Position in Gateway.buses, = StampedFrame.bus of its frames. */
  readonly index: number;
  readonly config: Config;
  readonly backend: Backend;
  readonly hub: Hub;
  readonly stats: Stats;
  /** Its bit rate (-bitrate, else the backend's default; busBitrate()). */
  readonly bitrate: number;
  /** This bus's listeners (single-bus protocols; the multi-bus ones are on the default bus). */
  readonly listeners: readonly Listener[];
  readonly udp: UdpEndpoint | undefined;
  /** Where busBitrate(config) comes from: -bitrate, the interface (SocketCAN netlink), the backend's default. */
  readonly bitrateSource: BitrateSource;
  /** Bound port of one of this bus's listeners. */
  port(protocol: ProtocolName): number | undefined;
  /** Up, or why not (`backend socketcan down: …`). */
  readiness(): Readiness;
}

export interface ShutdownSummary {
  accepted: number;
  handshakeFailures: number;
  connectedAtShutdown: number;
  disconnected: number;
  droppedFrames: number;
  kickedClients: number;
  rejectedClients: number;
  abortedAtDeadline: number;
}

export interface Readiness {
  ready: boolean;
  reason: string;
}

export interface Gateway {
  /** Every bus, in configuration order; buses[0] is the default bus. */
  readonly buses: readonly Bus[];
  /** A bus by name. */
  bus(name: string): Bus | undefined;
  /** The default bus's hub and backend (what a single-bus consumer attaches to). */
  readonly hub: Hub;
  readonly backend: Backend;
  readonly registry: ClientRegistry;
  /** Every bound listener of every bus, TCP and UDP. */
  readonly listeners: readonly Listener[];
  /** The default bus's cannelloni UDP endpoint, when it has one. */
  readonly udp: UdpEndpoint | undefined;
  /** Bound port of a protocol's listener on the default bus (undefined when not enabled). */
  port(protocol: ProtocolName): number | undefined;
  /** Ready = every listener bound and every bus's backend up; the reason names the buses down. */
  readiness(): Readiness;
  /** The running routes between buses, in configuration order. */
  readonly routes: readonly Route[];
  /** Stops accepting, flushes client queues for at most timeoutMs, closes every backend. */
  shutdown(timeoutMs: number): Promise<ShutdownSummary>;
}

/** Frames a client may hold waiting for a busy backend. */
export const CLIENT_TX_QUEUE_FRAMES = 256;

/** The bus bit rate: -bitrate, else the backend's default. */
export function busBitrate(config: Config): number {
  return config.bitrate > 0 ? config.bitrate : DEFAULT_BITRATE[config.backend];
}

export type BitrateSource = "flag" | "interface" | "default";

/**
 * The bus's bit rate before it starts: -bitrate when set, else the rate the interface really runs
 * at (a SocketCAN can-dev device, read over netlink), else the backend's default. The returned
 * configuration carries the interface's rate in `bitrate`, so everything computed from
 * busBitrate(config) (auto TX rate, bus load, GVRET/slcan answers) uses it. Logged once per bus.
 */
export function resolveBitrate(spec: BusSpec, log: Logger): { config: Config; source: BitrateSource } {
  const { config, backend } = spec;
  if (config.bitrate > 0) {
    log.info("bus_bitrate", { bitrate: config.bitrate, source: "flag" });
    return { config, source: "flag" };
  }
  const probe = backend.interfaceBitrate?.() ?? null;
  if (probe !== null && probe.bitrate !== null && probe.bitrate > 0) {
    log.info("bus_bitrate", { bitrate: probe.bitrate, source: "interface", detail: probe.detail });
    return { config: { ...config, bitrate: probe.bitrate }, source: "interface" };
  }
  log.info("bus_bitrate", { bitrate: DEFAULT_BITRATE[config.backend], source: "default", backend: config.backend, ...(probe !== null ? { detail: probe.detail } : {}) });
  return { config, source: "default" };
}

/**
 * Per-client TX limits from the configuration. "auto" rate: half the frames the bus can carry,
 * so one client can never take the whole bus (Ampio 50 kbit/s: 191 frames/s); "auto" burst: a
 * quarter second of that rate, at least 32 frames (a Home Assistant scene sends a few dozen
 * commands at once).
 */
export function txLimits(config: Config): TxLimits {
  const rate = config.clientTxRate === "auto" ? Math.max(1, Math.floor(busFrameRate(busBitrate(config)) / 2)) : config.clientTxRate;
  const burst = config.clientTxBurst === "auto" ? Math.max(32, Math.floor(rate / 4)) : Math.max(1, config.clientTxBurst);
  return { rate, burst, maxAgeMs: config.txMaxAgeMs, queueFrames: CLIENT_TX_QUEUE_FRAMES, fairness: config.txFairness };
}

export { socketcandBusName };

export async function startGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { stats, log } = deps;
  const given: readonly BusSpec[] = deps.buses ?? [{ name: socketcandBusName(config), config, backend: requireBackend(deps), stats }];
  if (given.length === 0) throw new Error("startGateway: no bus");
  const multi = given.length > 1;
  const bitrates = given.map((s) => resolveBitrate(s, multi ? log.child({ bus: s.name }) : log));
  const specs: readonly BusSpec[] = given.map((s, i) => ({ ...s, config: bitrates[i]!.config }));
  const fdBudget = connectionCapacity();
  const admission = new Admission(
    {
      maxClients: config.maxClients > 0 ? config.maxClients : derivedMaxClients(availableParallelism(), fdBudget),
      maxHandshakes: config.maxHandshakes,
      maxHostHandshakes: config.maxHostHandshakes,
      maxHostConnections: config.maxHostConnections,
      httpMaxConnections: config.httpMaxConnections,
      fdBudget,
      allow: CidrList.parse(config.allow),
      txAllow: CidrList.parse(config.txAllow),
    },
    stats,
    log,
  );
  const registry = new ClientRegistry(admission);
  const limits = admission.limits;
  const tx0 = txLimits(specs[0]!.config);
  log.info("client_limits", {
    max_clients: limits.maxClients,
    ...(config.maxClients === 0 ? { max_clients_derived: true } : {}),
    max_handshakes: limits.maxHandshakes,
    max_host_handshakes: limits.maxHostHandshakes,
    max_host_connections: limits.maxHostConnections,
    fd_budget: fdBudget,
    http_max_connections: limits.httpMaxConnections,
    client_tx_rate: tx0.rate,
    client_tx_burst: tx0.burst,
    tx_max_age_ms: tx0.maxAgeMs,
    tx_fairness: tx0.fairness,
    allow: registry.limits.allow.toString() || "any",
    tx_allow: registry.limits.txAllow.toString() || "any",
  });

  const state = { stopping: false };
  const buses: RunningBus[] = [];
  try {
    for (let i = 0; i < specs.length; i++) {
      // With one bus the log lines stay go-ampio-server's; with several each says its bus.
      const blog = multi ? log.child({ bus: specs[i]!.name }) : log;
      buses.push(await startBus(specs[i]!, bitrates[i]!.source, i, { registry, log: blog, clock: deps.clock, initialFrames: deps.initialFrames, state, multiBusListeners: i === 0, named: multi, buses: () => buses }));
    }
  } catch (e) {
    for (const b of buses) await b.stop();
    throw e;
  }
  let routes: Route[];
  try {
    routes = startRoutes(deps.routes ?? [], buses, () => registry.allocateId(), log);
  } catch (e) {
    for (const b of buses) await b.stop();
    throw e;
  }
  const first = buses[0]!;
  const byName = new Map(buses.map((b) => [b.name, b as Bus]));
  const allListeners = buses.flatMap((b) => b.listeners);

  return {
    buses,
    bus: (name) => byName.get(name),
    hub: first.hub,
    backend: first.backend,
    registry,
    listeners: allListeners,
    udp: first.udp,
    port: (p) => first.port(p),
    routes,
    readiness(): Readiness {
      if (state.stopping) return { ready: false, reason: "shutting down" };
      const down = buses.map((b) => b.readiness()).filter((r) => !r.ready);
      if (down.length === 0) return { ready: true, reason: "" };
      return { ready: false, reason: down.map((r) => r.reason).join("; ") };
    },
    async shutdown(timeoutMs: number): Promise<ShutdownSummary> {
      state.stopping = true;
      for (const l of allListeners) l.stop();
      // No new routed frames; those in a destination lane still go (or are counted) like a client's.
      for (const r of routes) r.stop();
      const connectedAtShutdown = registry.sessions.size;
      for (const s of [...registry.sessions]) s.close("shutdown");
      // Monotonic: a wall-clock step during shutdown must not stretch or cut the deadline.
      const deadline = performance.now() + timeoutMs;
      while (registry.sessions.size > 0 && performance.now() < deadline) await Bun.sleep(5);
      const abortedAtDeadline = registry.sessions.size;
      for (const s of [...registry.sessions]) s.abort();
      // A backend that cannot stop in time must not hold the process past the deadline.
      await Promise.race([Promise.all(buses.map((b) => b.backend.stop())), Bun.sleep(Math.max(0, deadline - performance.now()))]);
      // Client frames still waiting for the bus will never go: counted (and settled per client)
      // before the summary, whatever the backend reported while stopping.
      for (const b of buses) b.hub.busState(false);
      const all = [...new Set([stats, ...buses.map((b) => b.stats)])];
      const sum = (pick: (s: Stats) => number): number => all.reduce((n, s) => n + pick(s), 0);
      const summary: ShutdownSummary = {
        accepted: sum((s) => s.clientsAccepted),
        handshakeFailures: sum((s) => s.handshakeFailures),
        connectedAtShutdown,
        disconnected: sum((s) => s.clientsDisconnected),
        droppedFrames: sum((s) => s.hubDroppedFrames),
        kickedClients: sum((s) => s.hubKickedClients),
        rejectedClients: sum((s) => s.hubRejectedClients),
        abortedAtDeadline,
      };
      const txDropped = new Map<TxDropReason, number>();
      for (const s of all) for (const [r, n] of s.txDropped) txDropped.set(r, (txDropped.get(r) ?? 0) + n);
      // snake_case like every other event (the keys were camelCase before 0.2; README lists both).
      log.info("shutdown_summary", {
        accepted: summary.accepted,
        handshake_failures: summary.handshakeFailures,
        connected_at_shutdown: summary.connectedAtShutdown,
        disconnected: summary.disconnected,
        dropped_frames: summary.droppedFrames,
        kicked_clients: summary.kickedClients,
        rejected_clients: summary.rejectedClients,
        aborted_at_deadline: summary.abortedAtDeadline,
        client_tx_sent: sum((s) => s.clientTxSent),
        ...droppedFields(txDropped, "client_tx_dropped_"),
      });
      return summary;
    },
  };
}

function requireBackend(deps: GatewayDeps): Backend {
  if (!deps.backend) throw new Error("startGateway: neither backend nor buses given");
  return deps.backend;
}

interface RunningBus extends Bus {
  /** Stops its listeners and backend (start-up failed). */
  stop(): Promise<void>;
}

interface BusContext {
  readonly registry: ClientRegistry;
  readonly log: Logger;
  readonly clock: WallClock | undefined;
  readonly initialFrames: ((session: ClientSession) => readonly StampedFrame[]) | undefined;
  readonly state: { readonly stopping: boolean };
  /** Start the multi-bus protocols' listeners here (the default bus) too. */
  readonly multiBusListeners: boolean;
  /** Several buses: readiness reasons name the bus. */
  readonly named: boolean;
  /** Every bus (filled as they start): what a multi-bus protocol's client may select. */
  readonly buses: () => readonly Bus[];
}

async function startBus(spec: BusSpec, bitrateSource: BitrateSource, index: number, ctx: BusContext): Promise<RunningBus> {
  const { config, backend, stats, name } = spec;
  const { registry, log } = ctx;
  const tx = txLimits(config);
  const hub = new Hub({ policy: config.hubPolicy, echoClients: config.echoClients, tx, stats, log, clock: ctx.clock, bus: index });
  hub.connectBus(backend);

  let lastState: boolean | null = null;
  await backend.start({
    frame: (f) => hub.fromBus(f),
    txReady: () => hub.busReady(),
    state: (up, reason) => {
      stats.backendUp = up;
      hub.busState(up);
      if (up === lastState) return;
      if (up && lastState === false) stats.backendReconnects++;
      lastState = up;
      if (ctx.state.stopping) log.info("backend_stopped", { backend: backend.kind });
      else if (up) log.info("backend_up", { backend: backend.kind, reason });
      else log.warn("backend_down", { backend: backend.kind, reason });
    },
  });

  // After start: a backend learns what the hardware can carry (e.g. FD) only once it is open.
  const fd = config.fd && backend.fdCapable;
  const options: SessionOptions = {
    queueFrames: config.hubBuffer,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    stallTimeoutMs: config.clientReadTimeoutMs,
    fd,
    busName: name,
    busBitrate: busBitrate(config),
  };
  // Every registered protocol whose listen address is set (src/protocols/registry.ts); each
  // protocol's code loads only when enabled.
  const listeners: Listener[] = [];
  let udp: UdpEndpoint | undefined;
  try {
    for (const p of PROTOCOLS) {
      if (p.multiBus === true && !ctx.multiBusListeners) continue;
      const address = config[p.configKey];
      if (!address) continue;
      if (p.transport === "tcp") {
        const protocol = await p.load();
        const own = p.minHandshakeTimeoutMs !== undefined ? { ...options, handshakeTimeoutMs: Math.max(options.handshakeTimeoutMs, p.minHandshakeTimeoutMs) } : options;
        const multi = p.multiBus === true ? { buses: ctx.buses } : {};
        listeners.push(startListener(address, protocol, { hub, stats, log, options: own, registry, initialFrames: ctx.initialFrames, ...multi }));
      } else {
        udp = await UdpEndpoint.start(
          address,
          await p.load(),
          {
            peers: config.cannelloniUdpPeer,
            acceptAny: config.cannelloniUdpAcceptAny,
            mtu: config.cannelloniUdpMtu,
            queueFrames: config.hubBuffer,
            fd,
            allow: registry.limits.allow,
            txAllow: registry.limits.txAllow,
          },
          { hub, stats, log, allocateId: () => registry.allocateId() },
        );
        listeners.push(udp);
      }
    }
  } catch (e) {
    for (const l of listeners) l.stop();
    await backend.stop();
    throw e;
  }

  return {
    name,
    index,
    config,
    backend,
    hub,
    stats,
    bitrate: busBitrate(config),
    listeners,
    udp,
    bitrateSource,
    port: (p) => listeners.find((l) => l.protocol.name === p)?.port,
    readiness(): Readiness {
      if (!backend.up) return { ready: false, reason: `${ctx.named ? `bus ${name}: ` : ""}backend ${backend.kind} down: ${backend.downReason || "not started"}` };
      // The link is up but the controller is off the bus (an error frame said so): not a lost link.
      if (backend.health?.()?.state === "bus-off") return { ready: false, reason: `${ctx.named ? `bus ${name}: ` : ""}CAN controller bus-off (the link is up; it rejoins after a restart)` };
      return { ready: true, reason: "" };
    },
    async stop(): Promise<void> {
      for (const l of listeners) l.stop();
      await backend.stop();
    },
  };
}
