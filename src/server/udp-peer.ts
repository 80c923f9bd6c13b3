/**
 * Datagram peers (cannelloni UDP) as hub clients beside the TCP sessions. One UDP socket is
 * bound at the -cannelloni-udp-listen address; every configured peer (-cannelloni-udp-peer
 * host:port) is a HubClient with its own bounded queue (the hub's drop/kick policy applies to it
 * like to a TCP client) and its own TX lane (`hub.openTx`, read-only when its address is outside
 * -tx-allow). Bus frames queued for a peer in one event-loop turn are encoded into as few
 * datagrams as fit the link MTU and sent at the end of the turn (a microtask), with the peer's
 * own sequence numbers. Received datagrams are matched to a peer by source address and port
 * (cannelloni sends from the port it listens on); a sequence gap is counted as lost datagrams.
 *
 * Refused and counted, never fatal: a datagram from an address outside -allow, from an address
 * that is no configured peer (unless -cannelloni-udp-accept-any: then the sender becomes a
 * learned peer, at most MAX_LEARNED_PEERS, forgotten after LEARNED_IDLE_MS of silence; it gets
 * the bus only after PROOF_DATAGRAMS datagrams in sequence, so a spoofed sender is never sent
 * anything), one the kernel truncated, and a duplicate or out-of-order datagram (its sequence
 * number seen before or overtaken: duplicated by the network or replayed). A configured peer
 * outside -allow is a start-up error. A malformed datagram (bad header, a frame length above 64, a count
 * running past the end) yields its valid frames and counts every problem as malformed.
 * Backpressure: when the socket refuses a datagram (kernel buffer full) the peer stops sending
 * until the socket drains; meanwhile its queue fills and the hub's policy applies. A UDP peer
 * cannot be disconnected: `kick` empties its queue and detaches it for KICK_PAUSE_MS.
 */
import { lookup } from "node:dns/promises";
import type { udp } from "bun";
import type { CanFrame } from "../can/frame.ts";
import { BoundedQueue } from "../hub/bounded-queue.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import type { TxLane } from "../hub/tx-scheduler.ts";
import type { CidrList } from "../net/cidr.ts";
import type { Logger } from "../ops/log.ts";
import type { ProtocolStats, Stats, UdpRefuseReason } from "../ops/stats.ts";
import type { DatagramProtocol, DatagramSeqTracker } from "../protocols/protocol.ts";
import { parseListenAddress, parsePeerAddress } from "../net/address.ts";

import { ListenError, type Listener } from "./listener.ts";
import { BurstLog } from "../ops/burst-log.ts";
import { RefusalLog } from "../net/refusals.ts";
import { describeListenFailure } from "./listen-failure.ts";

/** Senders learned with accept-any, at most. */
export const MAX_LEARNED_PEERS = 64;
/** A learned peer silent this long is forgotten. */
export const LEARNED_IDLE_MS = 60_000;
/**
 * A learned peer (accept-any) gets the bus only after this many consecutive datagrams in
 * sequence: a spoofed source address sends but never sees replies, so it cannot keep a sequence
 * going across answers — and until then the gateway sends it nothing at all (it never sends a
 * sender more than it received from it: no amplification).
 */
export const PROOF_DATAGRAMS = 4;
/**
 * Consecutive duplicate or out-of-order datagrams after which the peer is taken to have restarted
 * (its sequence starts again): the reference is reset instead of dropping its traffic for good.
 */
export const RESYNC_AFTER = 8;
/** How long a kicked peer stays detached from the hub. */
export const KICK_PAUSE_MS = 1000;

export interface UdpPeerOptions {
  /** Configured peers, "host:port" / "[v6]:port"; names are resolved once at start-up. */
  readonly peers: readonly string[];
  readonly acceptAny: boolean;
  /** Link MTU datagrams are sized for. */
  readonly mtu: number;
  readonly queueFrames: number;
  readonly fd: boolean;
  readonly allow: CidrList;
  readonly txAllow: CidrList;
}

export interface UdpPeerDeps {
  readonly hub: Hub;
  readonly stats: Stats;
  readonly log: Logger;
  /** Shares connection ids with the TCP sessions (ClientRegistry.allocateId). */
  readonly allocateId: () => number;
}

/** "::ffff:1.2.3.4" (an IPv4 sender on a dual-stack socket) → "1.2.3.4". */
export function normalizeAddress(address: string): string {
  return address.toLowerCase().startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}

function peerKey(address: string, port: number): string {
  return `${normalizeAddress(address)}|${port}`;
}

function formatRemote(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** One datagram peer: a hub client with its own queue, TX lane and sequence numbers. */
export class UdpPeer implements HubClient {
  readonly protocol: string;
  receiving = true;
  dropped = 0;
  rxFrames = 0;
  txFrames = 0;
  rxDatagrams = 0;
  txDatagrams = 0;
  /** Datagrams this peer sent that never arrived (sequence gaps). */
  lost = 0;
  malformed = 0;
  lastSeen = performance.now();
  readonly queue: BoundedQueue<CanFrame>;
  readonly lane: TxLane;
  readonly seq: DatagramSeqTracker;
  /** Duplicate and out-of-order datagrams dropped. */
  duplicates = 0;
  /** Refused (duplicate/out-of-order) datagrams in a row: RESYNC_AFTER of them reset the sequence. */
  rejectRun = 0;
  /** Datagrams in sequence in a row (the proof a learned peer must give). */
  inSequence = 0;
  /** Configured peers are; a learned one once it sent PROOF_DATAGRAMS datagrams in sequence. */
  proven: boolean;
  /** Next sequence number this gateway sends to the peer. */
  txSeq = 0;
  readonly ipv6: boolean;
  readonly log: Logger;

  constructor(
    readonly id: number,
    readonly address: string,
    readonly port: number,
    readonly readOnly: boolean,
    readonly learned: boolean,
    private readonly endpoint: UdpEndpoint,
  ) {
    this.protocol = endpoint.protocol.name;
    this.ipv6 = address.includes(":");
    this.queue = new BoundedQueue<CanFrame>(endpoint.options.queueFrames);
    this.lane = endpoint.deps.hub.openTx(this, readOnly, "policed");
    this.seq = endpoint.protocol.newSeqTracker();
    this.proven = !learned;
    this.log = endpoint.deps.log.child({ conn_id: id, remote: this.remote, protocol: this.protocol });
  }

  get remote(): string {
    return formatRemote(this.address, this.port);
  }

  get queued(): number {
    return this.queue.length;
  }

  accepts(frame: CanFrame): boolean {
    return this.endpoint.protocol.accepts(frame, this.endpoint.options.fd);
  }

  enqueue(frame: CanFrame): boolean {
    if (!this.queue.offer(frame)) return false;
    this.endpoint.scheduleFlush(this);
    return true;
  }

  kick(reason: string): void {
    // The hub has already detached it; a datagram peer cannot be disconnected, so it pauses.
    this.queue.clear();
    this.log.warn("udp_peer_paused", { reason, pause_ms: KICK_PAUSE_MS });
    this.endpoint.pause(this);
  }
}

/** The bound socket and its peers; a Listener for the gateway (port(), stop()). */
export class UdpEndpoint implements Listener {
  readonly hostname: string;
  readonly port: number;
  private readonly peers = new Map<string, UdpPeer>();
  private readonly dirty = new Set<UdpPeer>();
  private readonly batch: CanFrame[] = [];
  private flushScheduled = false;
  /** A datagram the socket refused, sent first once it drains. */
  /** Datagrams the socket refused (pushed back): sent first on drain, in order. */
  private blocked: { peer: UdpPeer; datagrams: Uint8Array[] } | null = null;
  private stopped = false;
  private readonly pstats: ProtocolStats;
  /** One burst log per reason, so a flood of one kind does not hide the first of another. */
  private readonly refusals = new Map<UdpRefuseReason, RefusalLog>();
  private readonly sweep: ReturnType<typeof setInterval> | null;
  private readonly pauseTimers = new Set<ReturnType<typeof setTimeout>>();

  private constructor(
    readonly protocol: DatagramProtocol,
    private readonly socket: udp.Socket<"uint8array">,
    readonly options: UdpPeerOptions,
    readonly deps: UdpPeerDeps,
  ) {
    this.hostname = socket.hostname;
    this.port = socket.port;
    this.pstats = deps.stats.protocol(protocol.name);
    this.sweep = options.acceptAny ? setInterval(() => this.forgetIdle(), 5000) : null;
  }

  /** Binds the socket (":port" = every interface, dual-stack when IPv6 is there), resolves and attaches the peers. */
  static async start(address: string, protocol: DatagramProtocol, options: UdpPeerOptions, deps: UdpPeerDeps): Promise<UdpEndpoint> {
    const parsed = parseListenAddress(address);
    if (!parsed) throw new ListenError(`invalid listen address ${JSON.stringify(address)} for ${protocol.name}`);
    // Resolve first: a peer name that does not resolve is a start-up error, before anything is bound.
    const resolved: { address: string; port: number; text: string }[] = [];
    for (const text of options.peers) {
      const p = parsePeerAddress(text);
      if (!p) throw new ListenError(`invalid ${protocol.name} peer ${JSON.stringify(text)} (expected host:port)`);
      let ip: string;
      try {
        ip = (await lookup(p.host)).address;
      } catch (e) {
        throw new ListenError(`cannot resolve ${protocol.name} peer ${text}: ${e instanceof Error ? e.message : String(e)}`);
      }
      const address = normalizeAddress(ip);
      // A peer outside -allow would get the bus while its datagrams are refused: the operator
      // contradicts themselves, so say so instead of guessing which of the two they meant.
      if (!options.allow.allows(address)) {
        throw new ListenError(`${protocol.name} peer ${text}${address !== p.host ? ` (${address})` : ""} is outside -allow (${options.allow.toString()}): add it to -allow or remove the peer`);
      }
      resolved.push({ address, port: p.port, text });
    }

    let endpoint: UdpEndpoint | null = null;
    const unreachableLog = new BurstLog();
    const handler: udp.SocketHandler<"uint8array"> = {
      data: (_s, data, port, addr, flags) => endpoint?.onDatagram(data, port, addr, flags.truncated),
      drain: () => endpoint?.onDrain(),
      // Bun 1.4.5 calls this with the error as the first argument (its types say second), so take
      // whichever is an Error. ECONNREFUSED is the ICMP "port unreachable" of a peer that is not
      // listening (yet): normal for UDP, counted, logged once per burst, never fatal.
      error: (first: unknown, second?: unknown) => {
        const err = second instanceof Error ? second : first instanceof Error ? first : null;
        const code = err !== null && "code" in err ? String(err.code) : "";
        if (code === "ECONNREFUSED") {
          deps.stats.error("udp_send");
          const notLogged = unreachableLog.next();
          if (notLogged !== null) {
            deps.log.warn("udp_peer_unreachable", { protocol: protocol.name, hint: "a configured peer is not listening (ICMP port unreachable); datagrams to it are lost", not_logged_before: notLogged });
          }
          return;
        }
        deps.stats.error("internal");
        deps.log.error("udp_socket_error", { protocol: protocol.name, error: err?.message ?? String(second ?? first) });
      },
    };
    const hosts = address.startsWith(":") ? ["::", "0.0.0.0"] : [parsed.host];
    let socket: udp.Socket<"uint8array"> | null = null;
    let lastError: unknown = null;
    for (const hostname of hosts) {
      try {
        socket = await Bun.udpSocket({ hostname, port: parsed.port, binaryType: "uint8array", socket: handler });
        break;
      } catch (e) {
        lastError = e;
        const code = (e as { code?: unknown }).code;
        if (code === "EADDRINUSE" || code === "EACCES") break;
      }
    }
    if (!socket) throw new ListenError(describeListenFailure(lastError, `${address} (UDP)`, parsed.port, protocol.name, "udp"));
    endpoint = new UdpEndpoint(protocol, socket, options, deps);
    const bound = socket.hostname.includes(":") ? `[${socket.hostname}]:${socket.port}` : `${socket.hostname}:${socket.port}`;
    deps.log.info("udp_listen", {
      protocol: protocol.name,
      addr: bound,
      peers: resolved.map((r) => formatRemote(r.address, r.port)).join(",") || "none",
      accept_any: options.acceptAny,
      mtu: options.mtu,
    });
    for (const r of resolved) endpoint.addPeer(r.address, r.port, false);
    return endpoint;
  }

  /** The peers, configured and learned. */
  get allPeers(): readonly UdpPeer[] {
    return [...this.peers.values()];
  }

  stop(): void {
    if (this.stopped) return;
    this.flush(); // what the bus sent this turn still goes out
    this.stopped = true;
    if (this.sweep) clearInterval(this.sweep);
    for (const t of this.pauseTimers) clearTimeout(t);
    this.pauseTimers.clear();
    for (const peer of [...this.peers.values()]) this.removePeer(peer, "shutdown");
    this.socket.close();
  }

  private addPeer(address: string, port: number, learned: boolean): UdpPeer {
    const readOnly = !this.options.txAllow.allows(address);
    const peer = new UdpPeer(this.deps.allocateId(), address, port, readOnly, learned, this);
    this.peers.set(peerKey(address, port), peer);
    this.pstats.accepted++;
    this.pstats.clients++;
    // A learned peer is attached to the hub (gets the bus) once it has proven it is one.
    if (!learned) this.deps.hub.attach(peer);
    peer.log.info("udp_peer_added", { learned, ...(readOnly ? { read_only: true } : {}), ...(learned ? { awaiting_proof: PROOF_DATAGRAMS } : {}) });
    return peer;
  }

  private removePeer(peer: UdpPeer, reason: string): void {
    this.deps.hub.detach(peer);
    peer.receiving = false;
    peer.queue.clear();
    this.dirty.delete(peer);
    if (this.peers.delete(peerKey(peer.address, peer.port))) this.pstats.clients--;
    peer.lane.close();
    peer.log.info("udp_peer_removed", {
      reason,
      rx_frames: peer.rxFrames,
      tx_frames: peer.txFrames,
      rx_datagrams: peer.rxDatagrams,
      tx_datagrams: peer.txDatagrams,
      lost_datagrams: peer.lost,
      malformed: peer.malformed,
      dropped: peer.dropped,
      bus_tx_frames: peer.lane.sent,
      ...peer.lane.droppedFields("bus_tx_dropped_"),
    });
  }

  /** Called by a kicked peer: detached (the hub did that), re-attached after KICK_PAUSE_MS. */
  pause(peer: UdpPeer): void {
    this.dirty.delete(peer);
    const t = setTimeout(() => {
      this.pauseTimers.delete(t);
      if (!this.stopped && this.peers.get(peerKey(peer.address, peer.port)) === peer) this.deps.hub.attach(peer);
    }, KICK_PAUSE_MS);
    this.pauseTimers.add(t);
  }

  scheduleFlush(peer: UdpPeer): void {
    this.dirty.add(peer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Sends every dirty peer's queue as datagrams, until done or the socket pushes back. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.stopped) return;
    if (this.blocked) {
      const b = this.blocked;
      while (b.datagrams.length > 0) {
        if (!this.sendTo(b.peer, b.datagrams[0]!)) return;
        b.datagrams.shift();
      }
      this.blocked = null;
    }
    for (const peer of this.dirty) {
      while (peer.queue.length > 0) {
        const n = peer.queue.drainInto(this.batch, peer.queue.length);
        const datagrams = this.protocol.encode(this.batch.slice(0, n), peer.txSeq, this.options.mtu, peer.ipv6);
        this.batch.length = 0;
        peer.txSeq = (peer.txSeq + datagrams.length) & 0xff;
        for (let i = 0; i < datagrams.length; i++) {
          if (this.sendTo(peer, datagrams[i]!)) continue;
          // The socket pushed back: keep this datagram and the rest of the batch for the drain;
          // meanwhile the peer's queue fills and the hub's policy applies.
          this.blocked = { peer, datagrams: datagrams.slice(i) };
          return;
        }
      }
      this.dirty.delete(peer);
    }
  }

  private sendTo(peer: UdpPeer, bytes: Uint8Array): boolean {
    let ok: boolean;
    try {
      ok = this.socket.send(bytes, peer.port, peer.address);
    } catch (e) {
      // A destination the socket cannot reach (an IPv6 peer on an IPv4 socket): lost, counted.
      this.deps.stats.udpSendFailures++;
      peer.log.debug("udp_send_error", { error: e instanceof Error ? e.message : String(e) });
      return true;
    }
    if (!ok) return false;
    // Counted once the socket took it: a datagram kept for the drain, or one that could not be
    // sent, is not counted as sent frames.
    const frames = this.protocol.frameCount(bytes);
    peer.txFrames += frames;
    this.pstats.txFrames += frames;
    peer.txDatagrams++;
    this.deps.stats.udpTxDatagrams++;
    return true;
  }

  private onDrain(): void {
    this.flush();
  }

  private onDatagram(data: Uint8Array, port: number, rawAddress: string, truncated: boolean): void {
    if (this.stopped) return;
    const address = normalizeAddress(rawAddress);
    if (!this.options.allow.allows(address)) return this.refuse("not_allowed", address, port);
    let peer = this.peers.get(peerKey(address, port));
    if (!peer) {
      if (!this.options.acceptAny || !this.roomForLearned()) return this.refuse("unknown_peer", address, port);
      peer = this.addPeer(address, port, true);
    }
    if (truncated) return this.refuse("truncated", address, port);
    const d = this.protocol.decode(data);
    if (d.seq !== null) {
      const { verdict, lostBefore } = peer.seq.classify(d.seq);
      if (verdict === "duplicate" || verdict === "late") {
        // A datagram seen before (the network duplicated it, or someone replays it) or one
        // overtaken by newer ones: its frames would reach the bus twice or out of order.
        if (++peer.rejectRun >= RESYNC_AFTER) {
          peer.seq.reset();
          peer.rejectRun = 0;
          peer.log.info("udp_peer_resync", { reason: "sequence restarted", seq: d.seq });
        }
        peer.duplicates++;
        peer.inSequence = 0;
        return this.refuse(verdict === "duplicate" ? "duplicate" : "out_of_order", address, port);
      }
      peer.rejectRun = 0;
      if (lostBefore > 0) {
        peer.lost += lostBefore;
        this.deps.stats.udpLostDatagrams += lostBefore;
        peer.log.debug("udp_datagrams_lost", { lost: lostBefore, seq: d.seq });
      }
      peer.inSequence = verdict === "gap" ? 1 : peer.inSequence + 1;
    }
    peer.lastSeen = performance.now();
    peer.rxDatagrams++;
    this.deps.stats.udpRxDatagrams++;
    if (!peer.proven && peer.inSequence >= PROOF_DATAGRAMS && d.problems.length === 0) {
      peer.proven = true;
      this.deps.hub.attach(peer);
      peer.log.info("udp_peer_proven", { datagrams: peer.rxDatagrams });
    }
    for (const problem of d.problems) {
      peer.malformed++;
      this.pstats.malformed++;
      this.deps.stats.malformedFrames++;
      if (peer.malformed === 1) peer.log.warn("udp_datagram_malformed", { reason: problem });
      else peer.log.debug("udp_datagram_malformed", { reason: problem });
    }
    for (const f of d.frames) {
      peer.rxFrames++;
      this.pstats.rxFrames++;
      peer.lane.send(f);
    }
  }

  /**
   * Whether a new sender can be learned: below MAX_LEARNED_PEERS, or by forgetting the
   * longest-silent learned peer that never proved itself (spoofed senders cannot crowd out real ones).
   */
  private roomForLearned(): boolean {
    let n = 0;
    let stalest: UdpPeer | null = null;
    for (const p of this.peers.values()) {
      if (!p.learned) continue;
      n++;
      if (!p.proven && (stalest === null || p.lastSeen < stalest.lastSeen)) stalest = p;
    }
    if (n < MAX_LEARNED_PEERS) return true;
    if (stalest === null) return false;
    this.removePeer(stalest, "unproven");
    return true;
  }

  private forgetIdle(): void {
    const now = performance.now();
    for (const p of [...this.peers.values()]) if (p.learned && now - p.lastSeen > LEARNED_IDLE_MS) this.removePeer(p, "idle");
  }

  /** Counts a refused datagram; logs the first of a burst per reason. */
  private refuse(reason: UdpRefuseReason, address: string, port: number): void {
    const { stats, log } = this.deps;
    stats.udpRefused.set(reason, stats.udpRefused.get(reason)! + 1);
    let r = this.refusals.get(reason);
    if (!r) this.refusals.set(reason, (r = new RefusalLog(log, "udp_datagram_refused")));
    r.note({ protocol: this.protocol.name, reason, remote: formatRemote(address, port) });
  }
}
