/**
 * The one way in. Every connection the gateway accepts — a TCP client of any protocol, an HTTP
 * connection (dashboard, API, capture, metrics) — asks this layer first, at accept, before it
 * costs anything but the accept itself, and holds a Ticket until it closes. The rules, in order:
 *
 *  1. `-allow`: a peer outside the list is refused (`not_allowed`).
 *  2. The descriptor budget: every connection costs the descriptors it really holds (a TCP
 *     client one, an HTTP connection three: the client socket and both ends of its loopback hop
 *     to the HTTP server, see ./http-front.ts) out of one budget computed from the soft fd limit
 *     (../server/fd-limit.ts), so the process never reaches EMFILE — where Bun 1.4.5's accept
 *     loop spins on the listen socket (oven-sh/bun#32705) and starves every other client
 *     (`fd_reserve`). HTTP may use at most half of it, TCP clients all but 8 HTTP connections'
 *     worth, so neither kind can lock the other out.
 *  3. Per source host (an IPv4 address, or an IPv6 /64: one machine's privacy addresses are one
 *     host): at most `maxHostConnections` connections, and never more than half of what the
 *     process can hold of a kind (TCP clients within the descriptor budget, HTTP connections)
 *     (`host_connections`);
 *     at most `maxHostHandshakes` still in a handshake (`host_handshakes`). So one host cannot
 *     lock the others out however many sockets it opens.
 *  4. Over all hosts: `maxHandshakes` connections in a handshake (`max_handshakes`), `maxClients`
 *     established TCP clients (`max_clients`), `httpMaxConnections` HTTP connections
 *     (`http_connections`).
 *
 * A protocol that is ready on accept (Waveshare, canlogserver) is never "handshaking": its
 * connection is established at once and counts against the client limits only. Refusals are
 * counted by reason (clients_rejected_total{reason}) and logged once per burst (./refusals.ts,
 * which every other refusal — HTTP requests and streams, UDP datagrams, token guesses — uses too).
 */
import type { Logger } from "../ops/log.ts";
import type { RejectReason, Stats } from "../ops/stats.ts";
import { parseAddress, type CidrList } from "./cidr.ts";
import { RefusalLog } from "./refusals.ts";

/** Descriptors an admitted connection holds, by kind. */
export const FD_COST = { tcp: 1, http: 3 } as const;
export type ConnectionKind = keyof typeof FD_COST;

export interface AdmissionLimits {
  /** Who may connect (empty = everyone). */
  readonly allow: CidrList;
  /** Who may transmit (empty = everyone connected). */
  readonly txAllow: CidrList;
  /** Established TCP clients over all listeners (0 = unlimited). */
  readonly maxClients: number;
  /** TCP connections still in their handshake, over all hosts (0 = unlimited). */
  readonly maxHandshakes: number;
  /** Connections in a handshake from one host (0 = unlimited). */
  readonly maxHostHandshakes: number;
  /** Connections (TCP and HTTP) from one host (0 = unlimited). */
  readonly maxHostConnections: number;
  /** HTTP connections over all hosts (0 = unlimited). */
  readonly httpMaxConnections: number;
  /** Descriptors all connections may hold together, from the fd limit (0 = no cap known). */
  readonly fdBudget: number;
}

/** Descriptors kept for HTTP out of a budget: 8 connections' worth, at most a quarter. */
function httpReserve(budget: number): number {
  return Math.min(8 * FD_COST.http, Math.floor(budget / 4));
}

interface HostUse {
  connections: number;
  handshakes: number;
  tcp: number;
  http: number;
}

/**
 * The host a peer address belongs to, for per-host limits: the IPv4 address (also when it
 * arrives IPv4-mapped on a dual-stack listener), or the /64 of an IPv6 address.
 */
export function hostKey(address: string): string {
  const b = parseAddress(address);
  if (!b) return address;
  const mapped = b.slice(0, 12).every((v, i) => v === (i < 10 ? 0 : 0xff));
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const words: string[] = [];
  for (let i = 0; i < 8; i += 2) words.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return `${words.join(":")}::/64`;
}

/** One admitted connection's hold on the limits; every method is idempotent. */
export class Ticket {
  private handshaking: boolean;
  private released = false;

  constructor(
    private readonly admission: Admission,
    readonly kind: ConnectionKind,
    readonly host: string,
    readonly address: string,
    handshake: boolean,
  ) {
    this.handshaking = handshake;
  }

  /** Whether the connection is still counted as in its handshake. */
  get inHandshake(): boolean {
    return this.handshaking && !this.released;
  }

  /** The handshake is over (completed or failed): frees the handshake slots. */
  leaveHandshake(): void {
    if (!this.handshaking || this.released) return;
    this.handshaking = false;
    this.admission.leftHandshake(this);
  }

  /** The connection has closed: frees everything it held. */
  release(): void {
    if (this.released) return;
    if (this.handshaking) this.admission.leftHandshake(this);
    this.handshaking = false;
    this.released = true;
    this.admission.released(this);
  }
}

export class Admission {
  private readonly hosts = new Map<string, HostUse>();
  private fds = 0;
  private tcp = 0;
  private http = 0;
  /** TCP connections in their handshake, over all hosts. */
  handshaking = 0;
  private readonly rejectLog: RefusalLog;

  constructor(
    readonly limits: AdmissionLimits,
    private readonly stats: Stats,
    log: Logger,
  ) {
    this.rejectLog = new RefusalLog(log, "client_rejected");
  }

  /** Established TCP clients now. */
  get established(): number {
    return this.tcp - this.handshaking;
  }

  /** HTTP connections admitted and open now. */
  get httpConnections(): number {
    return this.http;
  }

  /** Descriptors held by admitted connections now. */
  get fdsInUse(): number {
    return this.fds;
  }

  /**
   * Why a new connection of `kind` from `address` must be refused, or null. `handshake`: the
   * connection must complete a protocol handshake before it is a client (false for HTTP and for
   * protocols that are ready on accept).
   */
  check(kind: ConnectionKind, address: string, handshake: boolean): RejectReason | null {
    const l = this.limits;
    if (!l.allow.allows(address)) return "not_allowed";
    if (l.fdBudget > 0) {
      if (this.fds + FD_COST[kind] > l.fdBudget) return "fd_reserve";
      // Neither side can starve the other: HTTP may hold half the budget, TCP clients all but a
      // few HTTP connections' worth (so /healthz and the dashboard stay reachable).
      if (kind === "http" && (this.http + 1) * FD_COST.http > l.fdBudget / 2) return "fd_reserve";
      if (kind === "tcp" && this.tcp + 1 > l.fdBudget - httpReserve(l.fdBudget)) return "fd_reserve";
    }
    const use = this.hosts.get(hostKey(address));
    if (l.maxHostConnections > 0 && (use?.connections ?? 0) >= l.maxHostConnections) return "host_connections";
    if ((use?.[kind] ?? 0) >= this.hostShare(kind)) return "host_connections";
    if (kind === "http") {
      if (l.httpMaxConnections > 0 && this.http >= l.httpMaxConnections) return "http_connections";
      return null;
    }
    if (handshake) {
      if (l.maxHostHandshakes > 0 && (use?.handshakes ?? 0) >= l.maxHostHandshakes) return "host_handshakes";
      if (l.maxHandshakes > 0 && this.handshaking >= l.maxHandshakes) return "max_handshakes";
    }
    if (l.maxClients > 0 && this.established >= l.maxClients) return "max_clients";
    return null;
  }

  /**
   * Admits a connection or refuses it (counted, logged once per burst). `fields` go into the
   * refusal's log line (remote, protocol).
   */
  admit(kind: ConnectionKind, address: string, handshake: boolean, fields: Record<string, unknown>): Ticket | RejectReason {
    const reason = this.check(kind, address, handshake);
    if (reason !== null) {
      this.refuse(reason, fields);
      return reason;
    }
    const host = hostKey(address);
    let use = this.hosts.get(host);
    if (!use) this.hosts.set(host, (use = { connections: 0, handshakes: 0, tcp: 0, http: 0 }));
    use.connections++;
    use[kind]++;
    this.fds += FD_COST[kind];
    if (kind === "http") this.http++;
    else this.tcp++;
    const hs = kind === "tcp" && handshake;
    if (hs) {
      use.handshakes++;
      this.handshaking++;
    }
    return new Ticket(this, kind, host, address, hs);
  }

  /**
   * How many connections of a kind the process can hold (Infinity: no cap known): for HTTP the
   * smaller of -http-max-connections and half the descriptor budget; for TCP the budget less the
   * HTTP reserve (-max-clients is the operator's own choice and not part of it).
   */
  capacity(kind: ConnectionKind): number {
    const l = this.limits;
    let cap = Infinity;
    if (kind === "http") {
      if (l.httpMaxConnections > 0) cap = l.httpMaxConnections;
      if (l.fdBudget > 0) cap = Math.min(cap, Math.floor(l.fdBudget / 2 / FD_COST.http));
    } else if (l.fdBudget > 0) {
      cap = l.fdBudget - httpReserve(l.fdBudget);
    }
    return cap;
  }

  /** One host may hold at most half of what the process can hold of a kind, so it never takes it all. */
  private hostShare(kind: ConnectionKind): number {
    const cap = this.capacity(kind);
    return cap === Infinity ? Infinity : Math.max(1, Math.floor(cap / 2));
  }

  /**
   * After a handshake: whether the now established client still fits -max-clients (several
   * handshakes may finish while the limit is reached; the late ones are refused).
   */
  overClientLimit(): boolean {
    return this.limits.maxClients > 0 && this.established > this.limits.maxClients;
  }

  /** Counts a refusal by reason and logs the first of a burst with how many were not logged since. */
  refuse(reason: RejectReason, fields: Record<string, unknown>): void {
    this.stats.reject(reason);
    this.rejectLog.note({ ...fields, reason, ...this.limitFields(reason) });
  }

  private limitFields(reason: RejectReason): Record<string, number> {
    const l = this.limits;
    switch (reason) {
      case "max_clients":
        return { max_clients: l.maxClients };
      case "max_handshakes":
        return { max_handshakes: l.maxHandshakes };
      case "host_handshakes":
        return { max_host_handshakes: l.maxHostHandshakes };
      case "host_connections":
        return { max_host_connections: l.maxHostConnections };
      case "http_connections":
        return { http_max_connections: l.httpMaxConnections };
      case "fd_reserve":
        return { fd_budget: l.fdBudget, fds_in_use: this.fds };
      default:
        return {};
    }
  }

  /** @internal Ticket.leaveHandshake / release. */
  leftHandshake(t: Ticket): void {
    this.handshaking--;
    const use = this.hosts.get(t.host);
    if (use) use.handshakes--;
  }

  /** @internal Ticket.release. */
  released(t: Ticket): void {
    this.fds -= FD_COST[t.kind];
    if (t.kind === "http") this.http--;
    else this.tcp--;
    const use = this.hosts.get(t.host);
    if (!use) return;
    use.connections--;
    use[t.kind]--;
    if (use.connections <= 0) this.hosts.delete(t.host);
  }
}
