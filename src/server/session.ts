/**
 * One client connection, whatever its protocol: handshake → decode → hub (to the bus), and
 * hub → bounded queue → batched encode → write pump (to the client). The session never touches
 * `Bun.listen` itself; it talks to a SessionSocket, so it can be driven in memory as well as over
 * real TCP. Frames queued in one event-loop turn go out in one write (at most BATCH_FRAMES per
 * write), flushed in a microtask at the end of the turn instead of on a fixed tick.
 */
import type { CanFrame } from "../can/frame.ts";
import { BoundedQueue } from "../hub/bounded-queue.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import type { Logger } from "../ops/log.ts";
import type { ProtocolName, ProtocolStats, Stats } from "../ops/stats.ts";
import type { ViolationKind, WireProtocol, WireSession } from "../protocols/protocol.ts";
import { WritePump, type ByteSink } from "./write-pump.ts";

/** Frames encoded into one socket write at most. */
export const BATCH_FRAMES = 64;

export interface SessionSocket extends ByteSink {
  /** Flushes what the kernel has and closes gracefully. */
  end(): void;
}

export interface SessionOptions {
  readonly queueFrames: number;
  readonly handshakeTimeoutMs: number;
  /** A client whose socket takes none of the pending bytes for this long is disconnected. */
  readonly stallTimeoutMs: number;
  readonly fd: boolean;
  readonly busName: string;
}

export interface SessionContext {
  readonly hub: Hub;
  readonly stats: Stats;
  readonly log: Logger;
  readonly options: SessionOptions;
  /** Called once when the session has closed (for whatever reason). */
  readonly closed: (session: ClientSession) => void;
}

export type CloseReason = "client_closed" | "handshake_failed" | "protocol_violation" | "kicked" | "stalled" | "shutdown" | "socket_error";

export class ClientSession implements HubClient {
  receiving = false;
  dropped = 0;
  rxFrames = 0;
  txFrames = 0;
  readonly log: Logger;

  private readonly queue: BoundedQueue<CanFrame>;
  private readonly batch: CanFrame[] = [];
  private readonly replies: Uint8Array[] = [];
  private readonly pump: WritePump;
  private readonly wire: WireSession;
  private readonly pstats: ProtocolStats;
  private handshakeDone = false;
  private flushScheduled = false;
  private closing: CloseReason | null = null;
  private finished = false;
  private handshakeTimer: ReturnType<typeof setTimeout> | null = null;
  private stallTimer: ReturnType<typeof setTimeout> | null = null;
  private streamTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly flushTask = (): void => this.flush();

  constructor(
    readonly id: number,
    readonly remote: string,
    private readonly socket: SessionSocket,
    private readonly wireProtocol: WireProtocol,
    private readonly ctx: SessionContext,
  ) {
    this.queue = new BoundedQueue<CanFrame>(ctx.options.queueFrames);
    this.pump = new WritePump(socket);
    this.pstats = ctx.stats.protocol(wireProtocol.name);
    this.log = ctx.log.child({ conn_id: id, remote, protocol: wireProtocol.name });
    this.wire = wireProtocol.open(
      {
        frame: (f) => this.onClientFrame(f),
        reply: (bytes) => {
          this.replies.push(bytes);
          this.scheduleFlush();
        },
        ready: () => this.onHandshakeDone(),
        rejected: (reason) => {
          ctx.stats.malformedFrames++;
          this.pstats.malformed++;
          this.log.debug("frame_rejected", { reason });
        },
        fail: (kind, reason) => this.onViolation(kind, reason),
      },
      { fd: ctx.options.fd, busName: ctx.options.busName },
    );
  }

  get protocol(): ProtocolName {
    return this.wireProtocol.name;
  }

  get queued(): number {
    return this.queue.length;
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
    this.wire.receive(chunk);
  }

  /** The socket can take more bytes. */
  onDrain(): void {
    if (this.finished) return;
    if (!this.pump.resume()) return this.close("socket_error");
    if (!this.pump.busy) this.clearStallTimer();
    this.flush();
  }

  // HubClient
  accepts(frame: CanFrame): boolean {
    return this.wire.accepts(frame);
  }

  enqueue(frame: CanFrame): boolean {
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

  private onClientFrame(frame: CanFrame): void {
    if (this.closing) return;
    this.rxFrames++;
    this.pstats.rxFrames++;
    this.ctx.stats.tcpRxFrames++;
    this.ctx.hub.fromClient(this, frame);
  }

  private onHandshakeDone(): void {
    if (this.handshakeDone || this.closing) return;
    this.handshakeDone = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.log.info("client_ready");
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

  /** Writes replies, then queued frames in batches, until done or the socket pushes back. */
  flush(): void {
    this.flushScheduled = false;
    if (this.finished) return;
    const { stats } = this.ctx;
    while (!this.pump.busy) {
      const reply = this.replies.shift();
      if (reply) {
        if (!this.pump.write(reply)) return this.close("socket_error");
        continue;
      }
      if (!this.receiving) break;
      const n = this.queue.drainInto(this.batch, BATCH_FRAMES);
      if (n === 0) break;
      const bytes = this.wire.encode(this.batch, n);
      this.batch.length = 0; // release the frames now, not when the next batch overwrites them
      this.txFrames += n;
      this.pstats.txFrames += n;
      stats.tcpTxFrames += n;
      if (!this.pump.write(bytes)) return this.close("socket_error");
    }
    if (this.pump.busy) {
      this.armStallTimer();
      return;
    }
    if (this.closing) {
      // Everything that was owed has been written: now close.
      this.finish();
      return;
    }
    if (this.handshakeDone && !this.receiving && this.streamTimer === null) this.startStreaming();
  }

  /** Handshake replies are all written: from now on the hub may send frames. */
  private startStreaming(): void {
    const delay = this.wireProtocol.streamDelayMs ?? 0;
    const go = (): void => {
      this.streamTimer = null;
      if (this.closing) return;
      this.receiving = true;
      this.pstats.clients++;
      this.ctx.hub.attach(this);
      this.scheduleFlush();
    };
    if (delay > 0) this.streamTimer = setTimeout(go, delay);
    else go();
  }

  private armStallTimer(): void {
    if (this.stallTimer) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (!this.pump.busy || this.finished) return;
      this.ctx.stats.error("tcp_write");
      this.log.warn("client_stalled", { pending_bytes: this.pump.pendingBytes, queued: this.queue.length, timeout_ms: this.ctx.options.stallTimeoutMs });
      if (this.closing) this.finish();
      else this.close("stalled");
    }, this.ctx.options.stallTimeoutMs);
  }

  private clearStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /**
   * Closes the session. Handshake errors and shutdown first flush what is owed (an error reply,
   * queued frames), bounded by the stall timer or the shutdown deadline; other reasons close now.
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
    const flushFirst = reason === "shutdown" || reason === "handshake_failed" || reason === "protocol_violation";
    if (flushFirst) {
      // Keep receiving=true on shutdown so queued frames are still written.
      this.flush();
      return;
    }
    this.finish();
  }

  /** Ends the session now, without flushing (shutdown deadline passed). */
  abort(): void {
    if (!this.closing) this.closing = "shutdown";
    this.detachFromHub();
    this.finish();
  }

  /** Called by the listener when the socket has closed. */
  onSocketClosed(error?: Error): void {
    if (error) {
      this.ctx.stats.error("tcp_read");
      this.log.debug("socket_error", { error: error.message });
    }
    if (!this.closing) this.closing = error ? "socket_error" : "client_closed";
    this.detachFromHub();
    this.finish();
  }

  private detachFromHub(): void {
    this.ctx.hub.detach(this);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearStallTimer();
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    if (this.streamTimer) clearTimeout(this.streamTimer);
    if (this.receiving) this.pstats.clients--;
    this.receiving = false;
    this.queue.clear();
    try {
      this.socket.end();
    } catch {
      // already closed
    }
    this.log.info("client_disconnected", {
      reason: this.closing ?? "client_closed",
      rx_frames: this.rxFrames,
      tx_frames: this.txFrames,
      dropped: this.dropped,
    });
    this.ctx.closed(this);
  }
}
