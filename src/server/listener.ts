/**
 * The only `Bun.listen` file. A listener is (address, protocol): it accepts connections, applies
 * the admission rules shared by all listeners (the `-allow` list, `-max-clients` established
 * clients, `-max-handshakes` connections still in their handshake, and the fd reserve so accept
 * never runs into EMFILE), sets TCP_NODELAY and keepalive, and routes each socket event to the
 * ClientSession stored in `socket.data`. Protocol logic lives in the session. A refused
 * connection is closed at once, counted by reason, and logged once per burst.
 */
import type { Socket, TCPSocketListener } from "bun";
import type { CanFrame } from "../can/frame.ts";
import type { Hub } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import type { RejectReason, Stats } from "../ops/stats.ts";
import type { CidrList } from "../net/cidr.ts";
import { BurstLog } from "../ops/burst-log.ts";
import type { WireProtocol } from "../protocols/protocol.ts";
import type { ProtocolName } from "../protocols/registry.ts";
import { parseListenAddress } from "../net/address.ts";
import { ClientSession, type SessionOptions } from "./session.ts";

/** Keepalive probes start after this much idle time, so dead peers are found without traffic. */
const KEEPALIVE_MS = 30_000;

interface SocketData {
  session: ClientSession | null;
}

export interface AdmissionLimits {
  /** Established clients (handshake done) over all listeners; 0 = unlimited. */
  readonly maxClients: number;
  /** Connections still in their handshake; 0 = unlimited. */
  readonly maxHandshakes: number;
  /** All connections, from the fd limit (fd-limit.ts); 0 = no cap known. */
  readonly maxConnections: number;
  /** Who may connect (empty = everyone). */
  readonly allow: CidrList;
  /** Who may transmit (empty = everyone connected). */
  readonly txAllow: CidrList;
}


/** All sessions of all listeners: ids, admission limits and shutdown. */
export class ClientRegistry {
  readonly sessions = new Set<ClientSession>();
  /** Sessions whose handshake is not complete yet. */
  handshaking = 0;
  private nextId = 1;
  accepted = 0;
  /** Rejections are logged once per 10 s; the rest are counted and summarised. */
  private readonly rejectLog = new BurstLog();

  constructor(readonly limits: AdmissionLimits) {}

  get maxClients(): number {
    return this.limits.maxClients;
  }

  get established(): number {
    return this.sessions.size - this.handshaking;
  }

  allocateId(): number {
    return this.nextId++;
  }

  /** Why a new connection from `address` must be refused, or null to accept it. */
  admission(address: string): RejectReason | null {
    const l = this.limits;
    if (!l.allow.allows(address)) return "not_allowed";
    if (l.maxConnections > 0 && this.sessions.size >= l.maxConnections) return "fd_reserve";
    if (l.maxClients > 0 && this.established >= l.maxClients) return "max_clients";
    if (l.maxHandshakes > 0 && this.handshaking >= l.maxHandshakes) return "max_handshakes";
    return null;
  }

  /** Counts a refusal; logs the first of a burst, and how many were not logged since. */
  rejected(reason: RejectReason, fields: Record<string, unknown>, stats: Stats, log: Logger): void {
    stats.reject(reason);
    const suppressed = this.rejectLog.next();
    if (suppressed === null) return;
    log.warn("client_rejected", { ...fields, reason, ...(suppressed > 0 ? { not_logged_before: suppressed } : {}) });
  }
}

export interface ListenerDeps {
  readonly hub: Hub;
  readonly stats: Stats;
  readonly log: Logger;
  readonly options: SessionOptions;
  readonly registry: ClientRegistry;
  /** See SessionContext.initialFrames. */
  readonly initialFrames?: (session: ClientSession) => readonly CanFrame[];
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
      const refusal = registry.admission(socket.remoteAddress);
      if (refusal !== null) {
        registry.rejected(refusal, { remote, protocol: protocol.name, max_clients: registry.maxClients }, stats, log);
        socket.terminate();
        return;
      }
      socket.setNoDelay(true);
      socket.setKeepAlive(true, KEEPALIVE_MS);
      registry.accepted++;
      stats.clientsAccepted++;
      stats.protocol(protocol.name).accepted++;
      const readOnly = !registry.limits.txAllow.allows(socket.remoteAddress);
      let inHandshake = true;
      registry.handshaking++;
      const leaveHandshake = (): void => {
        if (!inHandshake) return;
        inHandshake = false;
        registry.handshaking--;
      };
      const session = new ClientSession({ id: registry.allocateId(), remote, readOnly }, socket, protocol, {
        hub,
        stats,
        log,
        options,
        initialFrames: deps.initialFrames,
        established: (s) => {
          leaveHandshake();
          // Several handshakes may finish while the limit is reached: the late ones are refused.
          if (registry.maxClients > 0 && registry.established > registry.maxClients) {
            registry.rejected("max_clients", { remote, protocol: protocol.name, max_clients: registry.maxClients }, stats, log);
            s.close("rejected");
          }
        },
        closed: (s) => {
          leaveHandshake();
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
  if (!server) {
    const msg = lastError instanceof Error ? lastError.message : String(lastError);
    throw new ListenError(`cannot listen on ${address} for ${protocol.name}: ${msg}`);
  }
  const bound = server;
  log.info("tcp_listen", { protocol: protocol.name, addr: bound.hostname.includes(":") ? `[${bound.hostname}]:${bound.port}` : `${bound.hostname}:${bound.port}` });
  return {
    protocol,
    hostname: bound.hostname,
    port: bound.port,
    stop: () => bound.stop(false),
  };
}
