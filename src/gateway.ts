/**
 * Composition of the running gateway: backend ⇄ hub ⇄ listeners. main.ts adds process concerns
 * (config, signals, HTTP, mDNS); tests and benchmarks start a Gateway directly on ephemeral ports.
 */
import type { Backend } from "./backends/backend.ts";
import type { Config } from "./cli/config.ts";
import { Hub } from "./hub/hub.ts";
import type { Logger } from "./ops/log.ts";
import type { ProtocolName, Stats } from "./ops/stats.ts";
import { cannelloni } from "./protocols/cannelloni/protocol.ts";
import type { WireProtocol } from "./protocols/protocol.ts";
import { ClientRegistry, startListener, type Listener } from "./server/listener.ts";

export interface GatewayDeps {
  readonly stats: Stats;
  readonly log: Logger;
  readonly backend: Backend;
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
  readonly listeners: readonly Listener[];
  /** Bound port of a protocol's listener (undefined when not enabled). */
  port(protocol: ProtocolName): number | undefined;
  /** Ready = every listener bound and the backend up. */
  readiness(): Readiness;
  /** Stops accepting, flushes client queues for at most timeoutMs, closes the backend. */
  shutdown(timeoutMs: number): Promise<ShutdownSummary>;
}

/** The socketcand bus name: explicit, else the SocketCAN interface, else can0. */
export function socketcandBusName(config: Config): string {
  if (config.socketcandBus) return config.socketcandBus;
  return config.backend === "socketcan" ? config.canIf : "can0";
}

export async function startGateway(config: Config, deps: GatewayDeps): Promise<Gateway> {
  const { stats, log, backend } = deps;
  const hub = new Hub({ policy: config.hubPolicy, echoClients: config.echoClients, stats, log });
  hub.connectBus(backend);
  const registry = new ClientRegistry(config.maxClients);

  let lastState: boolean | null = null;
  let stopping = false;
  await backend.start({
    frame: (f) => hub.fromBus(f),
    state: (up, reason) => {
      stats.backendUp = up;
      if (up === lastState) return;
      if (up && lastState === false) stats.backendReconnects++;
      lastState = up;
      if (stopping) log.info("backend_stopped", { backend: backend.kind });
      else if (up) log.info("backend_up", { backend: backend.kind, reason });
      else log.warn("backend_down", { backend: backend.kind, reason });
    },
  });

  // After start: a backend learns what the hardware can carry (e.g. FD) only once it is open.
  const options = {
    queueFrames: config.hubBuffer,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    stallTimeoutMs: config.clientReadTimeoutMs,
    fd: config.fd && backend.fdCapable,
    busName: socketcandBusName(config),
  };
  const wanted: [string, WireProtocol][] = [[config.listen, cannelloni]];
  // Optional protocols load only when enabled.
  if (config.waveshareListen) wanted.push([config.waveshareListen, (await import("./protocols/waveshare/protocol.ts")).waveshare]);
  if (config.socketcandListen) wanted.push([config.socketcandListen, (await import("./protocols/socketcand/protocol.ts")).socketcand]);
  const listeners: Listener[] = [];
  try {
    for (const [address, protocol] of wanted) listeners.push(startListener(address, protocol, { hub, stats, log, options, registry }));
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
      const deadline = Date.now() + timeoutMs;
      while (registry.sessions.size > 0 && Date.now() < deadline) await Bun.sleep(5);
      const abortedAtDeadline = registry.sessions.size;
      for (const s of [...registry.sessions]) s.abort();
      await backend.stop();
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
      log.info("shutdown_summary", { ...summary });
      return summary;
    },
  };
}
