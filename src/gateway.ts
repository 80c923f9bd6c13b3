/**
 * Composition of the running gateway: backend ⇄ hub ⇄ listeners. main.ts adds process concerns
 * (config, signals, HTTP, mDNS); tests and benchmarks start a Gateway directly on ephemeral ports.
 */
import { DEFAULT_BITRATE, type Backend } from "./backends/backend.ts";
import type { Config } from "./cli/config.ts";
import { Hub } from "./hub/hub.ts";
import { busFrameRate } from "./hub/token-bucket.ts";
import { droppedFields, type TxLimits } from "./hub/tx-scheduler.ts";
import { CidrList } from "./net/cidr.ts";
import { availableParallelism } from "node:os";
import { connectionCapacity, derivedMaxClients } from "./server/fd-limit.ts";
import { Admission } from "./net/admission.ts";
import type { Logger } from "./ops/log.ts";
import type { Stats } from "./ops/stats.ts";
import { PROTOCOLS, type ProtocolName } from "./protocols/registry.ts";
import { ClientRegistry, startListener, type Listener } from "./server/listener.ts";
import type { SessionOptions } from "./server/session.ts";
import { UdpEndpoint } from "./server/udp-peer.ts";
import type { ClientSession } from "./server/session.ts";
import type { StampedFrame } from "./can/frame.ts";
import type { WallClock } from "./can/clock.ts";

export interface GatewayDeps {
  readonly stats: Stats;
  readonly log: Logger;
  readonly backend: Backend;
  /** Frames each new client gets right after its handshake (see SessionContext.initialFrames). */
  readonly initialFrames?: (session: ClientSession) => readonly StampedFrame[];
  /** The frame clock (src/can/clock.ts); the system clock unless a test steps its own. */
  readonly clock?: WallClock;
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
  readonly hub: Hub;
  readonly backend: Backend;
  readonly registry: ClientRegistry;
  /** Every bound listener, TCP and UDP, in registry order. */
  readonly listeners: readonly Listener[];
  /** The cannelloni UDP endpoint with its peers, when -cannelloni-udp-listen is set. */
  readonly udp: UdpEndpoint | undefined;
  /** Bound port of a protocol's listener (undefined when not enabled). */
  port(protocol: ProtocolName): number | undefined;
  /** Ready = every listener bound and the backend up. */
  readiness(): Readiness;
  /** Stops accepting, flushes client queues for at most timeoutMs, closes the backend. */
  shutdown(timeoutMs: number): Promise<ShutdownSummary>;
}

/** Frames a client may hold waiting for a busy backend. */
export const CLIENT_TX_QUEUE_FRAMES = 256;

/** The bus bit rate: -bitrate, else the backend's default. */
export function busBitrate(config: Config): number {
  return config.bitrate > 0 ? config.bitrate : DEFAULT_BITRATE[config.backend];
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

/** The socketcand bus name: explicit, else the SocketCAN interface, else can0. */
export function socketcandBusName(config: Config): string {
  if (config.socketcandBus) return config.socketcandBus;
  return config.backend === "socketcan" ? config.canIf : "can0";
}

export async function startGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { stats, log, backend } = deps;
  const tx = txLimits(config);
  const hub = new Hub({ policy: config.hubPolicy, echoClients: config.echoClients, tx, stats, log, clock: deps.clock });
  hub.connectBus(backend);
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
  log.info("client_limits", {
    max_clients: limits.maxClients,
    ...(config.maxClients === 0 ? { max_clients_derived: true } : {}),
    max_handshakes: limits.maxHandshakes,
    max_host_handshakes: limits.maxHostHandshakes,
    max_host_connections: limits.maxHostConnections,
    fd_budget: fdBudget,
    client_tx_rate: tx.rate,
    client_tx_burst: tx.burst,
    tx_max_age_ms: tx.maxAgeMs,
    tx_fairness: tx.fairness,
    allow: registry.limits.allow.toString() || "any",
    tx_allow: registry.limits.txAllow.toString() || "any",
  });

  let lastState: boolean | null = null;
  let stopping = false;
  await backend.start({
    frame: (f) => hub.fromBus(f),
    txReady: () => hub.busReady(),
    state: (up, reason) => {
      stats.backendUp = up;
      hub.busState(up);
      if (up === lastState) return;
      if (up && lastState === false) stats.backendReconnects++;
      lastState = up;
      if (stopping) log.info("backend_stopped", { backend: backend.kind });
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
    busName: socketcandBusName(config),
    busBitrate: busBitrate(config),
  };
  // Every registered protocol whose listen address is set (src/protocols/registry.ts); each
  // protocol's code loads only when enabled.
  const listeners: Listener[] = [];
  let udp: UdpEndpoint | undefined;
  try {
    for (const p of PROTOCOLS) {
      const address = config[p.configKey];
      if (!address) continue;
      if (p.transport === "tcp") {
        const protocol = await p.load();
        const own = p.minHandshakeTimeoutMs !== undefined ? { ...options, handshakeTimeoutMs: Math.max(options.handshakeTimeoutMs, p.minHandshakeTimeoutMs) } : options;
        listeners.push(startListener(address, protocol, { hub, stats, log, options: own, registry, initialFrames: deps.initialFrames }));
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
    hub,
    backend,
    registry,
    listeners,
    udp,
    port: (p) => listeners.find((l) => l.protocol.name === p)?.port,
    readiness(): Readiness {
      if (stopping) return { ready: false, reason: "shutting down" };
      if (!backend.up) return { ready: false, reason: `backend ${backend.kind} down: ${backend.downReason || "not started"}` };
      return { ready: true, reason: "" };
    },
    async shutdown(timeoutMs: number): Promise<ShutdownSummary> {
      stopping = true;
      for (const l of listeners) l.stop();
      const connectedAtShutdown = registry.sessions.size;
      for (const s of [...registry.sessions]) s.close("shutdown");
      // Monotonic: a wall-clock step during shutdown must not stretch or cut the deadline.
      const deadline = performance.now() + timeoutMs;
      while (registry.sessions.size > 0 && performance.now() < deadline) await Bun.sleep(5);
      const abortedAtDeadline = registry.sessions.size;
      for (const s of [...registry.sessions]) s.abort();
      // A backend that cannot stop in time must not hold the process past the deadline.
      await Promise.race([backend.stop(), Bun.sleep(Math.max(0, deadline - performance.now()))]);
      // Client frames still waiting for the bus will never go: counted (and settled per client)
      // before the summary, whatever the backend reported while stopping.
      hub.busState(false);
      const summary: ShutdownSummary = {
        accepted: stats.clientsAccepted,
        handshakeFailures: stats.handshakeFailures,
        connectedAtShutdown,
        disconnected: stats.clientsDisconnected,
        droppedFrames: stats.hubDroppedFrames,
        kickedClients: stats.hubKickedClients,
        rejectedClients: stats.hubRejectedClients,
        abortedAtDeadline,
      };
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
        client_tx_sent: stats.clientTxSent,
        ...droppedFields(stats.txDropped, "client_tx_dropped_"),
      });
      return summary;
    },
  };
}
