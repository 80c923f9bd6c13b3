/**
 * A remote bus over TCP: the shared half of `-backend cannelloni-client` and `-backend
 * socketcand-client` (a bus that lives in another gateway: another can-server, real cannelloni,
 * a cannelloni ESP32, socketcand). This file owns the connection: connect to -remote with
 * Bun.connect, run the protocol's handshake (./cannelloni-wire.ts, ./socketcand-wire.ts), and
 * only then report up; any close, error, handshake failure or timeout reports down once and
 * reconnects with capped backoff through the shared link-state machine (../link-state.ts), the
 * backoff starting small again only after a connection stayed up for a while.
 *
 * Transmit follows the Backend contract (../backend.ts) like the serial backend: a short queue
 * (DEFAULT_REMOTE_TX_QUEUE_LIMIT frames, "busy" beyond it, txReady() once there is room); frames
 * offered in the same tick leave in one write; a frame counts as sent() once all its bytes went
 * into the TCP socket (what the far end does with it is its own bus's business), a frame that
 * waited past expiresAt is lost("expired") and never written late, and what waits when the
 * connection breaks is lost("backend_down"). TCP pushes back through partial writes: the rest
 * waits for the socket's drain. Keep-alive probes notice a far end that vanished silently.
 */
import type { Socket } from "bun";
import type { CanFrame } from "../../can/frame.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { type Backend, type BackendListener, commonTxRefusal, type SendResult, type TxRequest } from "../backend.ts";
import type { BackoffOptions } from "../backoff.ts";
import { LinkState } from "../link-state.ts";

/** What the protocol session tells the connection. */
export interface RemoteSessionEvents {
  /** A frame from the remote bus. */
  frame(frame: CanFrame): void;
  /** The handshake is complete: frames may flow. */
  ready(): void;
  /** The remote broke the protocol or refused us: the connection is dropped and retried. */
  fail(reason: string): void;
  /** Handshake bytes to send now. */
  write(bytes: Uint8Array): void;
}

/** One connection's protocol state (handshake, then frames). */
export interface RemoteSession {
  /** Bytes received from the remote. */
  push(chunk: Uint8Array): void;
}

/** A protocol a remote bus is reached with. */
export interface RemoteWire {
  readonly kind: "cannelloni-client" | "socketcand-client";
  /** Starts a session on a fresh connection (it may write its hello at once). */
  open(events: RemoteSessionEvents): RemoteSession;
  /** Why the protocol cannot carry a frame the common rules allow (null if it can). */
  txRefusal(frame: CanFrame, fd: boolean): string | null;
  /** The bytes of one frame, for a frame txRefusal() accepted. */
  encode(frame: CanFrame): Uint8Array;
}

export interface RemoteBackendOptions {
  readonly host: string;
  readonly port: number;
  readonly wire: RemoteWire;
  /** Carry CAN FD frames (where the protocol can). */
  readonly fd: boolean;
  readonly stats: Stats;
  readonly log: Logger;
  /** Reconnect delays (default 100 ms doubling to 5 s). */
  readonly reconnect?: BackoffOptions;
  /** The handshake must complete within this long (default 5 s). */
  readonly handshakeTimeoutMs?: number;
  /** Accepted frames not yet written; past this send() answers "busy" (default 256). */
  readonly txQueueLimit?: number;
  /** The backoff restarts small only after a connection stayed up this long (default 2 s). */
  readonly stableUpMs?: number;
}

export const DEFAULT_REMOTE_RECONNECT: BackoffOptions = { initialMs: 100, maxMs: 5000, factor: 2 };
export const DEFAULT_REMOTE_TX_QUEUE_LIMIT = 256;
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
const DEFAULT_STABLE_UP_MS = 2000;
/** Keep-alive probes start after this much silence (a far end that lost power sends no FIN). */
const KEEPALIVE_MS = 10_000;

interface Queued {
  readonly req: TxRequest;
  readonly bytes: Uint8Array;
}

/** One connection attempt and, once it succeeds, the connection. */
interface Connection {
  socket: Socket<undefined> | null;
  session: RemoteSession | null;
  ready: boolean;
  closed: boolean;
  handshakeTimer: ReturnType<typeof setTimeout> | null;
}

export class RemoteBackend implements Backend {
  readonly kind: "cannelloni-client" | "socketcand-client";
  readonly fdCapable: boolean;

  private readonly host: string;
  private readonly port: number;
  private readonly wire: RemoteWire;
  private readonly stats: Stats;
  private readonly log: Logger;
  private readonly link: LinkState;
  private readonly handshakeTimeoutMs: number;
  private readonly txLimit: number;
  private readonly target: string;

  private listener: BackendListener | null = null;
  private conn: Connection | null = null;
  /** Accepted frames not fully written, oldest first; the first may be partly written (`headOffset`). */
  private queue: Queued[] = [];
  private headOffset = 0;
  private pumpScheduled = false;
  /** While TCP holds frames back: fires when the oldest waiting frame expires (reported on time). */
  private expiryTimer: ReturnType<typeof setTimeout> | null = null;
  /** The cause last logged while the remote stays unreachable, so a retry loop logs each cause once. */
  private lastFailure = "";
  /** Frames received from and written to the remote bus. */
  rxFrames = 0;
  txFrames = 0;
  /** Writes TCP took only part of (the far end is not reading fast enough); the rest waited for drain. */
  txStalls = 0;

  constructor(options: RemoteBackendOptions) {
    this.host = options.host;
    this.port = options.port;
    this.wire = options.wire;
    this.kind = options.wire.kind;
    this.fdCapable = options.fd;
    this.stats = options.stats;
    this.target = `${options.host.includes(":") ? `[${options.host}]` : options.host}:${options.port}`;
    this.log = options.log.child({ backend: options.wire.kind, remote: this.target });
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.txLimit = Math.max(1, options.txQueueLimit ?? DEFAULT_REMOTE_TX_QUEUE_LIMIT);
    this.link = new LinkState({
      reconnect: options.reconnect ?? DEFAULT_REMOTE_RECONNECT,
      stableUpMs: options.stableUpMs ?? DEFAULT_STABLE_UP_MS,
      stats: this.stats,
      log: this.log,
      name: "remote",
    });
  }

  get up(): boolean {
    return this.link.up;
  }

  get downReason(): string {
    return this.link.downReason;
  }

  /** Times the connection came back after an outage. */
  get reconnects(): number {
    return this.link.reconnects;
  }

  /** Accepted requests not yet reported sent or lost. */
  get txPending(): number {
    return this.queue.length;
  }

  start(listener: BackendListener): Promise<void> {
    this.listener = listener;
    this.link.attach(listener);
    this.connect();
    return Promise.resolve();
  }

  txRefusal(frame: CanFrame): string | null {
    return commonTxRefusal(frame, this.fdCapable) ?? this.wire.txRefusal(frame, this.fdCapable);
  }

  send(req: TxRequest): SendResult {
    if (!this.link.up || this.conn === null || !this.conn.ready) return "down";
    if (this.txRefusal(req.frame) !== null) return "unsupported";
    if (this.queue.length >= this.txLimit) {
      this.link.markBusy();
      return "busy";
    }
    this.queue.push({ req, bytes: this.wire.encode(req.frame) });
    if (!this.pumpScheduled) {
      // Frames offered in the same tick leave in one write.
      this.pumpScheduled = true;
      queueMicrotask(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
    return "accepted";
  }

  async stop(): Promise<void> {
    this.link.stop();
    const conn = this.conn;
    this.conn = null;
    this.link.report(this.takeQueue(), "backend_down");
    if (conn !== null) this.closeConnection(conn);
    this.log.debug("remote_stopped");
  }

  private connect(): void {
    if (this.link.isStopped) return;
    const conn: Connection = { socket: null, session: null, ready: false, closed: false, handshakeTimer: null };
    this.conn = conn;
    conn.handshakeTimer = setTimeout(() => this.failed(conn, `no ${this.wire.kind} handshake from ${this.target} within ${this.handshakeTimeoutMs} ms`), this.handshakeTimeoutMs);
    Bun.connect<undefined>({
      hostname: this.host,
      port: this.port,
      socket: {
        open: (socket) => {
          if (conn.closed) {
            socket.terminate();
            return;
          }
          conn.socket = socket;
          socket.setNoDelay(true);
          socket.setKeepAlive(true, KEEPALIVE_MS);
          conn.session = this.wire.open({
            frame: (f) => this.received(conn, f),
            ready: () => this.ready(conn),
            fail: (reason) => this.failed(conn, `${this.target}: ${reason}`),
            write: (bytes) => {
              if (!conn.closed) socket.write(bytes);
            },
          });
        },
        data: (_socket, chunk) => {
          if (conn.closed || conn.session === null) return;
          try {
            conn.session.push(chunk);
          } catch (e) {
            // A listener fault must not be mistaken for a remote fault: log and keep reading.
            this.log.error("remote_rx_dispatch_failed", { error: errorText(e) });
          }
        },
        drain: () => {
          if (conn === this.conn && conn.ready) this.pump();
        },
        close: (_socket, error) => this.failed(conn, error ? `connection to ${this.target} failed: ${errorText(error)}` : `${this.target} closed the connection`),
        end: () => this.failed(conn, `${this.target} closed the connection`),
        error: (_socket, error) => this.failed(conn, `connection to ${this.target} failed: ${errorText(error)}`),
        connectError: (_socket, error) => this.failed(conn, `cannot connect to ${this.target}: ${errorText(error)}`),
      },
    }).catch((error: unknown) => this.failed(conn, `cannot connect to ${this.target}: ${errorText(error)}`));
  }

  private received(conn: Connection, frame: CanFrame): void {
    if (conn.closed || !conn.ready) return;
    this.rxFrames++;
    // serial_rx_frames_total counts bus ingress whatever the backend (as for SocketCAN).
    this.stats.serialRxFrames++;
    this.listener?.frame(frame);
  }

  private ready(conn: Connection): void {
    if (conn.closed || conn.ready || conn !== this.conn) return;
    conn.ready = true;
    if (conn.handshakeTimer !== null) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    this.lastFailure = "";
    const recovery = this.link.wentUp();
    this.log.info("remote_up", recovery.reconnect ? { reconnects: this.link.reconnects } : {});
    this.link.txReady(this.queue.length < this.txLimit);
  }

  /** The connection (or the attempt) is over: down once, lose what waits, reconnect later. */
  private failed(conn: Connection, reason: string): void {
    if (conn.closed) return;
    this.closeConnection(conn);
    if (conn !== this.conn || this.link.isStopped) return;
    this.conn = null;
    this.stats.error("remote_link");
    const wasUp = this.link.up;
    if (this.link.wentDown(reason) || reason !== this.lastFailure) {
      if (wasUp) this.log.warn("remote_down", { reason, retry: "reconnecting until the remote is back" });
      else this.log.error("remote_unreachable", { reason, retry: "reconnecting until the remote is back" });
    } else if (this.log.enabled("debug")) {
      this.log.debug("remote_retry", { reason });
    }
    this.lastFailure = reason;
    this.link.report(this.takeQueue(), "backend_down");
    this.link.scheduleRetry(() => this.connect());
  }

  private closeConnection(conn: Connection): void {
    conn.closed = true;
    if (conn.handshakeTimer !== null) clearTimeout(conn.handshakeTimer);
    conn.handshakeTimer = null;
    conn.socket?.terminate();
  }

  /** Writes queued frames until the queue is empty or TCP pushes back (the rest waits for drain). */
  private pump(): void {
    const conn = this.conn;
    if (conn === null || !conn.ready || conn.socket === null) return;
    const now = performance.now();
    const sent: TxRequest[] = [];
    const expired: TxRequest[] = [];
    // Frames not yet started that expired while they waited are dropped, never written late.
    if (this.queue.length > 0) {
      const start = this.headOffset > 0 ? 1 : 0;
      const keep = this.queue.slice(0, start);
      for (let i = start; i < this.queue.length; i++) {
        const q = this.queue[i]!;
        if (now > q.req.expiresAt) expired.push(q.req);
        else keep.push(q);
      }
      this.queue = keep;
    }
    let taken = 0;
    while (taken < this.queue.length) {
      // One write for everything waiting (a partly written head continues from its offset).
      const batch = this.batchFrom(taken);
      const n = conn.socket.write(batch.bytes);
      if (n < 0) break; // closing: close() reports the rest
      let left = n;
      let i = taken;
      let offset = this.headOffset;
      while (i < taken + batch.frames && left > 0) {
        const need = this.queue[i]!.bytes.length - offset;
        if (left >= need) {
          left -= need;
          sent.push(this.queue[i]!.req);
          i++;
          offset = 0;
        } else {
          offset += left;
          left = 0;
        }
      }
      this.headOffset = offset;
      const complete = i - taken;
      taken = i;
      if (complete < batch.frames || n < batch.bytes.length) {
        this.txStalls++;
        break; // TCP pushed back: drain() resumes
      }
    }
    this.queue.splice(0, taken);
    this.txFrames += sent.length;
    this.link.report(sent, "sent");
    this.link.report(expired, "expired");
    this.armExpiry();
    this.link.txReady(this.link.up && this.queue.length < this.txLimit);
  }

  /**
   * Frames still wait (TCP pushed back): pump again when the first not-yet-started one expires,
   * so it is reported lost("expired") on time, not only when the far end reads again.
   */
  private armExpiry(): void {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    let first = Infinity;
    for (let i = this.headOffset > 0 ? 1 : 0; i < this.queue.length; i++) first = Math.min(first, this.queue[i]!.req.expiresAt);
    if (first === Infinity) return;
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = null;
      this.pump();
    }, Math.max(1, Math.ceil(first - performance.now()) + 1));
  }

  /** The unwritten bytes of queue[from..], in one buffer (at most 64 KiB worth of frames). */
  private batchFrom(from: number): { bytes: Uint8Array; frames: number } {
    let size = 0;
    let end = from;
    while (end < this.queue.length && size < 65536) {
      size += this.queue[end]!.bytes.length - (end === from ? this.headOffset : 0);
      end++;
    }
    const out = new Uint8Array(size);
    let p = 0;
    for (let i = from; i < end; i++) {
      const b = this.queue[i]!.bytes;
      const part = i === from && this.headOffset > 0 ? b.subarray(this.headOffset) : b;
      out.set(part, p);
      p += part.length;
    }
    return { bytes: out, frames: end - from };
  }

  private takeQueue(): TxRequest[] {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    const out = this.queue.map((q) => q.req);
    this.queue = [];
    this.headOffset = 0;
    return out;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
