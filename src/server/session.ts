/**
 * One client connection, whatever its protocol: handshake → decode → hub TX lane (to the bus),
 * and hub → bounded queue → batched encode → write pump (to the client). The session never
 * touches `Bun.listen` itself; it talks to a SessionSocket, so it can be driven in memory as well
 * as over real TCP. Frames queued in one event-loop turn go out in one write (at most
 * BATCH_FRAMES per write), flushed in a microtask at the end of the turn instead of on a tick.
 *
 * Transmit is paced, never policed (issue 18): the session decodes what the client sends in slices
 * of at most PACED_SLICE_BYTES and, as soon as its TX lane has no room (the client is over its
 * host's rate or the bus is busy), keeps the undecoded rest and stops reading the socket until the
 * lane has room again. TCP backpressure then slows the client to its share of the bus; nothing it
 * sent is dropped for rate or queue reasons, and its replies (slcan/GVRET acks) still flow.
 *
 * Every client is a tenant with hard limits: while the socket does not take what the session
 * owes it, the session stops reading from it (so a client that never reads cannot make it pile
 * up replies); replies owed are capped in bytes (past MAX_OWED_REPLY_BYTES the client is
 * disconnected, counted); one flush does bounded work and yields; a session that failed its
 * handshake or broke its protocol stops being read at once and is closed after flushing its
 * error reply for at most CLOSE_GRACE_MS.
 */
import type { CanFrame, StampedFrame } from "../can/frame.ts";
import { BoundedQueue } from "../hub/bounded-queue.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import { PACED_BYTES_PER_FRAME, PACED_SLICE_BYTES, type TxLane } from "../hub/tx-scheduler.ts";
import type { Logger } from "../ops/log.ts";
import type { ProtocolName, ProtocolStats, Stats } from "../ops/stats.ts";
import type { ViolationKind, WireProtocol, WireSession } from "../protocols/protocol.ts";
import { WritePump, type ByteSink } from "./write-pump.ts";

/** Frames encoded into one socket write at most. */
export const BATCH_FRAMES = 64;
const EMPTY = new Uint8Array(0);
/** Reply bytes a session may owe its client; beyond this the client is disconnected. */
export const MAX_OWED_REPLY_BYTES = 256 * 1024;
/** Socket writes one flush makes before it yields to the event loop (a backlog never blocks it). */
export const MAX_WRITES_PER_FLUSH = 32;
/** How long a session closing after a violation may take to flush its error reply. */
export const CLOSE_GRACE_MS = 1000;

export interface SessionSocket extends ByteSink {
  /** Flushes what the kernel has and closes gracefully. */
  end(): void;
  /** Closes at once, discarding unsent bytes. */
  terminate(): void;
  /** Stops reading from the client (TCP backpressure reaches it). */
  pause(): void;
  resume(): void;
}

export interface SessionOptions {
  readonly queueFrames: number;
  readonly handshakeTimeoutMs: number;
  /** A client whose socket takes none of the pending bytes for this long is disconnected. */
  readonly stallTimeoutMs: number;
  readonly fd: boolean;
  readonly busName: string;
  /** The bus bit rate, for protocols that report it (slcan, GVRET). */
  readonly busBitrate?: number;
}

/** Per-connection facts decided at accept. */
export interface SessionIdentity {
  readonly id: number;
  readonly remote: string;
  /** Outside -tx-allow: receives the bus, its frames are dropped and counted. */
  readonly readOnly: boolean;
}

/** A bus a multi-bus session can select (src/gateway.ts Bus). */
export interface SessionBus {
  readonly name: string;
  readonly hub: Hub;
  readonly stats: Stats;
  /** Its bit rate (GVRET reports it); 0 when unknown. */
  readonly bitrate?: number;
}

export interface SessionContext {
  readonly hub: Hub;
  /**
   * Every bus of the gateway, for multi-bus protocols (socketcand `< open NAME >`); read when the
   * client selects one. Absent: the session serves `hub` only.
   */
  readonly buses?: () => readonly SessionBus[];
  readonly stats: Stats;
  readonly log: Logger;
  readonly options: SessionOptions;
  /**
   * Frames a client gets first, right after its handshake, before any live bus frame (e.g. the
   * latest Ampio state broadcasts with -ampio-state-replay). Optional.
   */
  readonly initialFrames?: (session: ClientSession) => readonly StampedFrame[];
  /** Called once when the handshake is complete (the session now counts as a client). */
  readonly established?: (session: ClientSession) => void;
  /** Called once when the session has closed (for whatever reason). */
  readonly closed: (session: ClientSession) => void;
}

export type CloseReason =
  | "client_closed"
  | "handshake_failed"
  | "protocol_violation"
  | "kicked"
  | "stalled"
  | "over_limit"
  | "rejected"
  | "shutdown"
  | "socket_error";

export class ClientSession implements HubClient {
  receiving = false;
  dropped = 0;
  rxFrames = 0;
  txFrames = 0;
  readonly id: number;
  readonly remote: string;
  readonly readOnly: boolean;
  readonly log: Logger;
  /** When the connection was accepted (Date.now()). */
  readonly connectedAt = Date.now();

  private readonly queue: BoundedQueue<StampedFrame>;
  private readonly batch: StampedFrame[] = [];
  /** Replies owed, oldest at replyHead; replyBytes is their total size. */
  private replies: Uint8Array[] = [];
  private replyHead = 0;
  private replyBytes = 0;
  /** The bus this session is on: the listener's, or the one the client selected. */
  private hub: Hub;
  private stats: Stats;
  private lane: TxLane;
  /**
   * A protocol that carries every bus (GVRET bus numbers): its TX lanes on the other buses, by
   * bus index, opened at its first frame for that bus; and the hubs it is attached to.
   */
  private readonly otherLanes = new Map<number, TxLane>();
  private attachedHubs: Hub[] = [];
  /** The bus the client opened by name (socketcand), when not its listener's. */
  private selectedBus: string | null = null;
  private readonly pump: WritePump;
  /** The socket is paused (not read). */
  private paused = false;
  /** The client is not taking what it is owed (the write pump is busy). */
  private writeBlocked = false;
  /** The TX lane has no room: the client is not read until it has. */
  private laneBlocked = false;
  /** Bytes read from the socket but not decoded yet (the lane filled up in the middle of them). */
  private held: Uint8Array | null = null;
  /** The client closed while bytes were held: they are still decoded (paced) before finishing. */
  private tail = false;
  /** Bus frames wait in the queue until the protocol's start delay has passed. */
  private holdFrames = false;
  private yieldScheduled = false;
  private attachedCounted = false;
  private graceTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly wire: WireSession;
  private pstats: ProtocolStats;
  private handshakeDone = false;
  private flushScheduled = false;
  private closing: CloseReason | null = null;
  private finished = false;
  private handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  private stallTimer: ReturnType<typeof setTimeout> | null = null;
  private streamTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly flushTask = (): void => this.flush();

  constructor(
    identity: SessionIdentity,
    private readonly socket: SessionSocket,
    private readonly wireProtocol: WireProtocol,
    private readonly ctx: SessionContext,
  ) {
    this.id = identity.id;
    this.remote = identity.remote;
    this.readOnly = identity.readOnly;
    this.queue = new BoundedQueue<StampedFrame>(ctx.options.queueFrames);
    this.pump = new WritePump(socket);
    this.hub = ctx.hub;
    this.stats = ctx.stats;
    this.pstats = ctx.stats.protocol(wireProtocol.name);
    this.log = ctx.log.child({ conn_id: this.id, remote: this.remote, protocol: wireProtocol.name });
    this.lane = ctx.hub.openTx(this, this.readOnly, "paced");
    this.lane.onRoom = () => this.onLaneRoom();
    this.wire = wireProtocol.open(
      {
        frame: (f, bus) => this.onClientFrame(f, bus),
        reply: (bytes) => this.onReply(bytes),
        ready: () => this.onHandshakeDone(),
        rejected: (reason) => {
          this.stats.malformedFrames++;
          this.pstats.malformed++;
          this.log.debug("frame_rejected", { reason });
        },
        fail: (kind, reason) => this.onViolation(kind, reason),
        ...(ctx.buses ? { selectBus: (name: string) => this.selectBus(name) } : {}),
      },
      {
        fd: ctx.options.fd,
        busName: ctx.options.busName,
        ...(ctx.buses ? { busNames: ctx.buses().map((b) => b.name), busBitrates: ctx.buses().map((b) => b.bitrate ?? 0) } : {}),
        busBitrate: ctx.options.busBitrate,
        notice: (text) => this.log.info("client_notice", { note: text }),
        clock: ctx.hub.clock,
      },
    );
  }

  /**
   * Moves the session to the bus named `name` before its handshake completes: its TX lane is
   * reopened on that bus's hub (nothing was sent yet) and it will attach to that hub; its frame
   * counters go to that bus. False when the gateway has no such bus.
   */
  private selectBus(name: string): boolean {
    const bus = this.ctx.buses?.().find((b) => b.name === name);
    if (!bus) return false;
    if (this.handshakeDone || this.receiving) return false;
    if (bus.hub === this.hub) {
      this.selectedBus = name;
      return true;
    }
    this.lane.close();
    this.hub = bus.hub;
    this.stats = bus.stats;
    this.pstats = bus.stats.protocol(this.wireProtocol.name);
    this.lane = bus.hub.openTx(this, this.readOnly, "paced");
    this.lane.onRoom = () => this.onLaneRoom();
    this.selectedBus = name;
    this.log.info("client_bus", { bus: name });
    return true;
  }

  /** The bus this client is on (its listener's, or the one it opened); "" = every bus (GVRET). */
  get bus(): string {
    if (this.wireProtocol.allBuses === true && this.ctx.buses) return "";
    return this.selectedBus ?? this.ctx.options.busName;
  }

  get protocol(): ProtocolName {
    return this.wireProtocol.name;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Why the session closed or is closing (null while open). */
  get closeReason(): CloseReason | null {
    return this.closing;
  }

  /** Whether the handshake is complete. */
  get established(): boolean {
    return this.handshakeDone;
  }

  /** Frames this client sent that reached the bus / were dropped (by reason). */
  get txLane(): TxLane {
    return this.lane;
  }

  /** Called once the socket is open: greet and start the handshake clock. */
  start(): void {
    this.handshakeTimer = setTimeout(() => {
      this.handshakeTimer = null;
      if (!this.handshakeDone) this.onViolation("handshake", `no handshake within ${this.ctx.options.handshakeTimeoutMs} ms`);
    }, this.ctx.options.handshakeTimeoutMs);
    this.wire.start();
  }

  /** Bytes from the client. */
  onData(chunk: Uint8Array): void {
    if (this.closing) return;
    if (this.held !== null) {
      // Read before the pause took effect: behind what is already waiting, in order.
      const all = new Uint8Array(this.held.length + chunk.length);
      all.set(this.held);
      all.set(chunk, this.held.length);
      this.held = all;
      this.setLaneBlocked(true);
      return;
    }
    this.decode(chunk, false);
  }

  /**
   * Decodes `bytes` slice by slice while the TX lane has room; the rest is kept (copied unless
   * `owned`: Bun reuses its read buffer) and the socket paused until onLaneRoom.
   */
  private decode(bytes: Uint8Array, owned: boolean): void {
    let off = 0;
    while (off < bytes.length) {
      if (!this.lanesHaveRoom()) {
        this.held = owned ? bytes.subarray(off) : bytes.slice(off);
        break;
      }
      const slice = this.sliceBytes();
      const end = bytes.length - off <= slice ? bytes.length : off + slice;
      this.wire.receive(off === 0 && end === bytes.length ? bytes : bytes.subarray(off, end));
      off = end;
      if (this.closing && !this.tail) return;
    }
    this.setLaneBlocked(this.held !== null || !this.lanesHaveRoom());
  }

  /** The TX lane has room again: decode what was held, then read the socket again. */
  private onLaneRoom(): void {
    if (this.finished) return;
    const held = this.held;
    if (held !== null) {
      this.held = null;
      this.decode(held, true);
    } else {
      this.setLaneBlocked(!this.lanesHaveRoom());
    }
    if (this.tail && this.held === null) {
      this.tail = false;
      this.finish();
    }
  }

  /**
   * How many bytes to decode next: about what the fullest lane has room for (so a host's many
   * lanes, each with a small part of its budget, do not each take 512 bytes' worth beyond it).
   */
  private sliceBytes(): number {
    let room = this.lane.roomFrames;
    for (const l of this.otherLanes.values()) room = Math.min(room, l.roomFrames);
    return Math.max(PACED_BYTES_PER_FRAME, Math.min(PACED_SLICE_BYTES, room * PACED_BYTES_PER_FRAME));
  }

  /** Every TX lane of this client has room (one full lane pauses the whole connection: TCP has one window). */
  private lanesHaveRoom(): boolean {
    if (!this.lane.hasRoom) return false;
    for (const l of this.otherLanes.values()) if (!l.hasRoom) return false;
    return true;
  }

  /** The TX lane for bus `index` (a multi-bus protocol's frame), or null when there is no such bus. */
  private laneFor(index: number): TxLane | null {
    const bus = this.ctx.buses?.()[index];
    if (!bus) return index === 0 ? this.lane : null;
    if (bus.hub === this.hub) return this.lane;
    let lane = this.otherLanes.get(index);
    if (!lane) {
      lane = bus.hub.openTx(this, this.readOnly, "paced");
      lane.onRoom = () => this.onLaneRoom();
      this.otherLanes.set(index, lane);
    }
    return lane;
  }

  private setLaneBlocked(blocked: boolean): void {
    this.laneBlocked = blocked;
    this.updatePause();
  }

  /** The socket can take more bytes. */
  onDrain(): void {
    if (this.finished) return;
    const before = this.pump.pendingBytes;
    if (!this.pump.resume()) return this.close("socket_error");
    // Progress, even partial, restarts the stall clock: a slow but steady reader is not stalled.
    if (!this.pump.busy || this.pump.pendingBytes < before) this.clearStallTimer();
    this.flush();
  }

  // HubClient
  accepts(frame: CanFrame): boolean {
    return this.wire.accepts(frame);
  }

  enqueue(frame: StampedFrame): boolean {
    if (!this.queue.offer(frame)) return false;
    // A full batch goes out now, so the queue only fills when the socket really pushes back.
    if (this.queue.length >= Math.min(BATCH_FRAMES, this.queue.capacity) && !this.pump.busy) this.flush();
    else this.scheduleFlush();
    return true;
  }

  kick(reason: string): void {
    this.log.debug("client_kick", { reason });
    this.close("kicked");
  }

  private onClientFrame(frame: CanFrame, bus?: number): void {
    if (this.closing && !this.tail) return;
    const lane = bus === undefined ? this.lane : this.laneFor(bus);
    if (lane === null) {
      this.stats.malformedFrames++;
      this.pstats.malformed++;
      this.log.debug("frame_rejected", { reason: `no bus ${bus}` });
      return;
    }
    this.rxFrames++;
    this.pstats.rxFrames++;
    this.stats.tcpRxFrames++;
    lane.send(frame);
  }

  private onReply(bytes: Uint8Array): void {
    if (this.closing && this.closing !== "handshake_failed" && this.closing !== "protocol_violation") return;
    if (this.replyBytes + bytes.length > MAX_OWED_REPLY_BYTES) {
      this.overLimit(`owes more than ${MAX_OWED_REPLY_BYTES} reply bytes`);
      return;
    }
    this.replies.push(bytes);
    this.replyBytes += bytes.length;
    this.scheduleFlush();
  }

  private nextReply(): Uint8Array | undefined {
    if (this.replyHead >= this.replies.length) return undefined;
    const r = this.replies[this.replyHead]!;
    this.replies[this.replyHead++] = EMPTY;
    this.replyBytes -= r.length;
    if (this.replyHead === this.replies.length) {
      this.replies = [];
      this.replyHead = 0;
    }
    return r;
  }

  private overLimit(reason: string): void {
    if (this.finished) return;
    this.ctx.stats.clientsOverLimit++;
    this.log.warn("client_over_limit", { reason, pending_bytes: this.pump.pendingBytes, queued: this.queue.length });
    this.closing = "over_limit";
    this.detachFromHub();
    this.finish(true);
  }

  private onHandshakeDone(): void {
    if (this.handshakeDone || this.closing) return;
    this.handshakeDone = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.log.info("client_ready", this.readOnly ? { read_only: true } : {});
    this.ctx.established?.(this);
    this.scheduleFlush();
  }

  private onViolation(kind: ViolationKind, reason: string): void {
    if (this.closing) return;
    const { stats } = this.ctx;
    if (kind === "handshake") {
      stats.handshakeFailures++;
      stats.error("handshake");
      this.pstats.handshakeFailures++;
      this.log.warn("handshake_failed", { reason });
      this.close("handshake_failed");
    } else {
      stats.malformedFrames++;
      this.pstats.malformed++;
      this.log.warn("protocol_violation", { reason });
      this.close("protocol_violation");
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(this.flushTask);
  }

  /**
   * Writes replies, then queued frames in batches, until done, the socket pushes back, or
   * MAX_WRITES_PER_FLUSH writes were made (then it yields and continues in a later turn).
   */
  flush(): void {
    this.flushScheduled = false;
    if (this.finished) return;
    const stats = this.stats;
    let writes = 0;
    while (!this.pump.busy) {
      if (writes++ >= MAX_WRITES_PER_FLUSH) {
        this.yieldFlush();
        return;
      }
      const reply = this.nextReply();
      if (reply) {
        if (!this.pump.write(reply)) return this.close("socket_error");
        continue;
      }
      if (!this.receiving || this.holdFrames) break;
      const drained = this.queue.drainInto(this.batch, BATCH_FRAMES);
      if (drained === 0) break;
      // Frames the client stopped accepting while they were queued (slcan after `C`) are left
      // out, so they are not counted as written.
      let n = 0;
      for (let i = 0; i < drained; i++) {
        const f = this.batch[i]!;
        if (this.wire.accepts(f)) this.batch[n++] = f;
      }
      if (n === 0) {
        this.batch.length = 0;
        continue;
      }
      const bytes = this.wire.encode(this.batch, n);
      this.batch.length = 0; // release the frames now, not when the next batch overwrites them
      this.txFrames += n;
      this.pstats.txFrames += n;
      stats.tcpTxFrames += n;
      if (!this.pump.write(bytes)) return this.close("socket_error");
    }
    if (this.pump.busy) {
      // The client is not taking what it is owed: stop reading from it until it does.
      this.writeBlocked = true;
      this.updatePause();
      this.armStallTimer();
      return;
    }
    this.writeBlocked = false;
    this.updatePause();
    if (this.closing) {
      // Everything that was owed has been written: now close.
      this.finish();
      return;
    }
    if (this.handshakeDone && !this.receiving) this.startStreaming();
  }

  private yieldFlush(): void {
    if (this.yieldScheduled) return;
    this.yieldScheduled = true;
    setImmediate(() => {
      this.yieldScheduled = false;
      this.flush();
    });
  }

  /** Read the socket only while the client takes what it is owed and its TX lane has room. */
  private updatePause(): void {
    this.setPaused(this.writeBlocked || this.laneBlocked);
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused || this.finished) return;
    // A closing session stays paused: nothing it sends is read any more.
    if (!paused && this.closing) return;
    this.paused = paused;
    try {
      if (paused) this.socket.pause();
      else this.socket.resume();
    } catch {
      // socket already closed
    }
  }

  /**
   * Handshake replies are all written: from now on the hub queues bus frames for this client.
   * A protocol with a start delay (socketcand) gets its frames queued during the delay and
   * written after it, so nothing is lost in that window.
   */
  private startStreaming(): void {
    const delay = this.wireProtocol.streamDelayMs ?? 0;
    this.receiving = true;
    this.pstats.clients++;
    this.attachedCounted = true;
    if (delay > 0) this.holdFrames = true;
    // Queued only (no synchronous write here): they go out with the first flush, after the
    // protocol's start delay like any frame, and a socket failing meanwhile cannot leave a
    // finished session attached to the hub.
    // Initial frames are the listener's bus's (e.g. its Ampio state): not for a client of another bus.
    const initial = this.hub === this.ctx.hub ? (this.ctx.initialFrames?.(this) ?? []) : [];
    for (const f of initial) if (this.wire.accepts(f) && !this.queue.offer(f)) this.dropped++;
    // A protocol that carries the bus in each frame (GVRET) is a client of every bus.
    const all = this.wireProtocol.allBuses === true ? this.ctx.buses?.() : undefined;
    this.attachedHubs = all ? all.map((b) => b.hub) : [this.hub];
    for (const h of this.attachedHubs) h.attach(this);
    this.scheduleFlush();
    if (delay > 0) {
      this.streamTimer = setTimeout(() => {
        this.streamTimer = null;
        this.holdFrames = false;
        this.scheduleFlush();
      }, delay);
    }
  }

  private armStallTimer(): void {
    if (this.stallTimer) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (!this.pump.busy || this.finished) return;
      this.ctx.stats.error("tcp_write");
      this.log.warn("client_stalled", { pending_bytes: this.pump.pendingBytes, queued: this.queue.length, timeout_ms: this.ctx.options.stallTimeoutMs });
      // A stalled socket's backlog is discarded (reset), not left to the kernel to keep trying.
      if (this.closing) this.finish(true);
      else this.close("stalled");
    }, this.ctx.options.stallTimeoutMs);
  }

  private clearStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /**
   * Closes the session. Handshake errors and violations first flush their error reply (the
   * socket is no longer read, and CLOSE_GRACE_MS bounds the wait); shutdown flushes queued frames
   * too, bounded by the shutdown deadline; other reasons close now.
   */
  close(reason: CloseReason): void {
    if (this.closing) {
      if (reason === "socket_error" || reason === "client_closed") this.finish();
      return;
    }
    this.closing = reason;
    this.detachFromHub();
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.streamTimer) clearTimeout(this.streamTimer);
    this.handshakeTimer = this.streamTimer = null;
    this.holdFrames = false;
    if (reason === "handshake_failed" || reason === "protocol_violation") {
      // Nothing more is read from a client that broke the protocol.
      this.setPaused(true);
      this.queue.clear();
      this.receiving = false;
      this.graceTimer = setTimeout(() => {
        this.graceTimer = null;
        this.finish(true);
      }, CLOSE_GRACE_MS);
      this.flush();
      return;
    }
    if (reason === "shutdown") {
      // Keep receiving=true on shutdown so queued frames are still written.
      this.flush();
      return;
    }
    // A client dropped for not reading is reset: a graceful close would leave its whole send
    // buffer orphaned in the kernel (FIN-WAIT-1) for minutes.
    this.finish(reason === "stalled" || reason === "kicked");
  }

  /** Ends the session now, discarding what was not written (shutdown deadline passed). */
  abort(): void {
    if (!this.closing) this.closing = "shutdown";
    this.detachFromHub();
    this.finish(true);
  }

  /** Called by the listener when the socket has closed. */
  onSocketClosed(error?: Error): void {
    if (error) {
      this.ctx.stats.error("tcp_read");
      this.log.debug("socket_error", { error: error.message });
    }
    if (!this.closing) this.closing = error ? "socket_error" : "client_closed";
    this.detachFromHub();
    if (this.held !== null && this.closing === "client_closed" && !this.finished) {
      // What the client sent before its FIN still goes to the bus, paced; then the session ends.
      this.tail = true;
      return;
    }
    this.finish();
  }

  private detachFromHub(): void {
    this.hub.detach(this);
    for (const h of this.attachedHubs) h.detach(this);
    this.attachedHubs = [];
  }

  /** Releases everything; `now` discards unwritten bytes instead of a graceful end. */
  private finish(now = false): void {
    if (this.finished) return;
    this.finished = true;
    this.clearStallTimer();
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.streamTimer) clearTimeout(this.streamTimer);
    if (this.graceTimer) clearTimeout(this.graceTimer);
    if (this.attachedCounted) this.pstats.clients--;
    this.attachedCounted = false;
    this.receiving = false;
    this.queue.clear();
    this.replies = [];
    this.replyHead = this.replyBytes = 0;
    this.held = null;
    this.tail = false;
    try {
      if (now) this.socket.terminate();
      else this.socket.end();
    } catch {
      // already closed
    }
    const lane = this.lane;
    lane.close();
    let otherSent = 0;
    for (const l of this.otherLanes.values()) {
      l.close();
      otherSent += l.sent;
    }
    this.log.info("client_disconnected", {
      reason: this.closing ?? "client_closed",
      rx_frames: this.rxFrames,
      tx_frames: this.txFrames,
      dropped: this.dropped,
      bus_tx_frames: lane.sent + otherSent,
      ...lane.droppedFields("bus_tx_dropped_"),
    });
    this.ctx.closed(this);
  }
}
