/**
 * The TCP client listeners. A listener is (address, protocol): it accepts connections, asks the
 * admission layer (src/net/admission.ts: -allow, the descriptor budget, per-host and global
 * client and handshake limits) whether to keep each one, sets TCP_NODELAY and keepalive, and
 * routes each socket event to the ClientSession stored in `socket.data`. Protocol logic lives in
 * the session. A refused connection is closed at once (counted and burst-logged by admission).
 */
import type { Socket, TCPSocketListener } from "bun";
import type { StampedFrame } from "../can/frame.ts";
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import type { Stats } from "../ops/stats.ts";
import type { Admission, AdmissionLimits } from "../net/admission.ts";
import type { WireProtocol } from "../protocols/protocol.ts";
import type { ProtocolName } from "../protocols/registry.ts";
import { parseListenAddress } from "../net/address.ts";
import { ClientSession, type SessionBus, type SessionOptions } from "./session.ts";
import { describeListenFailure } from "./listen-failure.ts";

/** Keepalive probes start after this much idle time, so dead peers are found without traffic. */
const KEEPALIVE_MS = 30_000;

interface SocketData {
  session: ClientSession | null;
}

/** All sessions of all listeners: ids, the admission layer and shutdown. */
export class ClientRegistry {
  readonly sessions = new Set<ClientSession>();
  private nextId = 1;
  accepted = 0;

  constructor(readonly admission: Admission) {}

  get limits(): AdmissionLimits {
    return this.admission.limits;
  }

  get maxClients(): number {
    return this.admission.limits.maxClients;
  }

  /** TCP connections still in their handshake. */
  get handshaking(): number {
    return this.admission.handshaking;
  }

  get established(): number {
    return this.admission.established;
  }

  allocateId(): number {
    return this.nextId++;
  }
}

export interface ListenerDeps {
  readonly hub: Hub;
  readonly stats: Stats;
  readonly log: Logger;
  readonly options: SessionOptions;
  readonly registry: ClientRegistry;
  /** Multi-bus protocols: every bus a client may select (see SessionContext.buses). */
  readonly buses?: () => readonly SessionBus[];
  /** See SessionContext.initialFrames. */
  readonly initialFrames?: (session: ClientSession) => readonly StampedFrame[];
}

export interface Listener {
  /** The protocol served (a WireProtocol for TCP listeners, a DatagramProtocol for UDP endpoints). */
  readonly protocol: { readonly name: ProtocolName };
  readonly hostname: string;
  readonly port: number;
  /** Stops accepting; open sessions are left to the caller. */
  stop(): void;
}

export class ListenError extends Error {
  override readonly name = "ListenError";
}

function remoteOf(socket: Socket<SocketData>): string {
  const a = socket.remoteAddress;
  return a.includes(":") ? `[${a}]:${socket.remotePort}` : `${a}:${socket.remotePort}`;
}

export function startListener(address: string, protocol: WireProtocol, deps: ListenerDeps): Listener {
  const parsed = parseListenAddress(address);
  if (!parsed) throw new ListenError(`invalid listen address ${JSON.stringify(address)} for ${protocol.name}`);
  const { hub, stats, log, options, registry } = deps;

  const handlers = {
    open(socket: Socket<SocketData>): void {
      socket.data = { session: null };
      const remote = remoteOf(socket);
      const admission = registry.admission;
      const ticket = admission.admit("tcp", socket.remoteAddress, protocol.readyOnAccept !== true, { remote, protocol: protocol.name });
      if (typeof ticket === "string") {
        socket.terminate();
        return;
      }
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_MS);
      registry.accepted++;
      stats.clientsAccepted++;
      stats.protocol(protocol.name).accepted++;
      const readOnly = !registry.limits.txAllow.allows(socket.remoteAddress);
      const session = new ClientSession({ id: registry.allocateId(), remote, readOnly }, socket, protocol, {
        hub,
        stats,
        log,
        options,
        initialFrames: deps.initialFrames,
        ...(deps.buses ? { buses: deps.buses } : {}),
        established: (s) => {
          ticket.leaveHandshake();
          if (admission.overClientLimit()) {
            admission.refuse("max_clients", { remote, protocol: protocol.name });
            s.close("rejected");
          }
        },
        closed: (s) => {
          ticket.release();
          registry.sessions.delete(s);
          stats.clientsDisconnected++;
        },
      });
      socket.data.session = session;
      registry.sessions.add(session);
      session.log.info("client_connected", readOnly ? { read_only: true } : {});
      session.start();
    },
    data(socket: Socket<SocketData>, data: Uint8Array): void {
      socket.data.session?.onData(data);
    },
    drain(socket: Socket<SocketData>): void {
      socket.data.session?.onDrain();
    },
    close(socket: Socket<SocketData>, error?: Error): void {
      socket.data?.session?.onSocketClosed(error);
    },
    error(socket: Socket<SocketData>, error: Error): void {
      // Bun routes exceptions thrown by our own data/drain handlers here too: those are bugs,
      // not network errors, and must not hide as a debug line.
      const isSystemError = typeof (error as { code?: unknown }).code === "string";
      if (!isSystemError) {
        stats.error("internal");
        log.error("session_internal_error", { protocol: protocol.name, error: error.stack ?? error.message });
      }
      socket.data?.session?.onSocketClosed(error);
    },
  };

  // ":port" means every interface, as in Go: try dual-stack IPv6 first, IPv4 if IPv6 is off.
  const hosts = address.startsWith(":") ? ["::", "0.0.0.0"] : [parsed.host];
  let server: TCPSocketListener<SocketData> | null = null;
  let lastError: unknown = null;
  for (const hostname of hosts) {
    try {
      server = Bun.listen<SocketData>({ hostname, port: parsed.port, socket: handlers });
      break;
    } catch (e) {
      lastError = e;
      // Fall back to IPv4 only when IPv6 itself is unavailable, not when the port is taken.
      const code = (e as { code?: unknown }).code;
      if (code === "EADDRINUSE" || code === "EACCES") break;
      if (hostname === "::") log.info("ipv6_unavailable", { protocol: protocol.name, error: e instanceof Error ? e.message : String(e) });
    }
  }
  if (!server) throw new ListenError(describeListenFailure(lastError, address, parsed.port, protocol.name, "tcp"));
  const bound = server;
  log.info("tcp_listen", { protocol: protocol.name, addr: bound.hostname.includes(":") ? `[${bound.hostname}]:${bound.port}` : `${bound.hostname}:${bound.port}` });
  return {
    protocol,
    hostname: bound.hostname,
    port: bound.port,
    stop: () => bound.stop(false),
  };
}
