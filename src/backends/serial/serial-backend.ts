/**
 * The Ampio USB adapter backend: a tty opened through ./ffi.ts, read with `Bun.file(fd).stream()`
 * into the Ampio streaming decoder, written with `fs.writeSync` on the non-blocking fd from a
 * bounded TX queue (short writes and EAGAIN resume on a short timer; never `Bun.write` or
 * `Bun.file(fd).writer()`, which restart at offset 0 after EAGAIN or clear O_NONBLOCK). When the
 * device vanishes (read stream ends or fails, EIO on write, ENOENT on open) the backend reports
 * down once, drops and counts client TX, and reopens with capped exponential backoff until the
 * adapter is back; a device missing at start-up is handled the same way.
 */
import fs from "node:fs";
import type { CanFrame } from "../../can/frame.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { BoundedQueue } from "../../hub/bounded-queue.ts";
import { AmpioSerialDecoder, ampioTxRefusal, encodeAmpioTx } from "../../protocols/ampio-serial/codec.ts";
import { type Backend, BackendFatalError, type BackendListener } from "../backend.ts";
import { Backoff, type BackoffOptions } from "../backoff.ts";
import { closeSerial, loadSerialLibrary, openSerial, SerialOpenError } from "./ffi.ts";

export interface SerialBackendOptions {
  /** Device path, e.g. /dev/ttyUSB0. */
  readonly path: string;
  readonly baud: number;
  readonly stats: Stats;
  readonly log: Logger;
  /** Frames waiting for the tty beyond this are dropped and counted (serial_tx_overflow). */
  readonly txQueueLimit?: number;
  /** Reopen delays; defaults to 20 ms doubling up to 1 s. */
  readonly reconnect?: BackoffOptions;
  /** Delay before retrying a write that hit EAGAIN (the tty buffer is full). */
  readonly writeRetryMs?: number;
}

export const DEFAULT_SERIAL_TX_QUEUE_LIMIT = 1024;
export const DEFAULT_SERIAL_RECONNECT: BackoffOptions = { initialMs: 20, maxMs: 1000, factor: 2 };
const DEFAULT_WRITE_RETRY_MS = 2;
/** One write syscall carries at most this many bytes (~250 frames); the rest waits its turn. */
const TX_BATCH_BYTES = 4096;
const MAX_TX_FRAME_BYTES = 18;
/**
 * The backoff restarts from its first delay only after the device stayed up this long, so a
 * device that opens and hangs up at once (a dying adapter) is retried at the capped rate rather
 * than in a tight loop.
 */
const STABLE_UP_MS = 1000;

function errnoOf(e: unknown): string {
  if (e instanceof Error && "code" in e && typeof e.code === "string") return e.code;
  return e instanceof Error ? e.message : String(e);
}

export class SerialBackend implements Backend {
  readonly kind = "serial";
  readonly fdCapable = false;

  private readonly path: string;
  private readonly baud: number;
  private readonly stats: Stats;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly writeRetryMs: number;
  private readonly txQueue: BoundedQueue<Uint8Array>;
  private readonly decoder: AmpioSerialDecoder;

  private listener: BackendListener | null = null;
  private started = false;
  private stopped = false;
  private fd = -1;
  /** Bumped on every close so a read loop of an older fd never acts on the new one. */
  private generation = 0;
  /** The current fd's stream reader; cancelled before the fd is closed. */
  private reader: { cancel(): Promise<void> } | null = null;
  private readLoopDone: Promise<void> = Promise.resolve();
  private reopenTimer: ReturnType<typeof setTimeout> | null = null;
  private writeTimer: ReturnType<typeof setTimeout> | null = null;
  private pumpScheduled = false;
  private everUp = false;
  private upSince = 0;
  /** Why the device was lost last ("" before the first loss); kept in downReason while reopening. */
  private lostReason = "";
  private reconnectCount = 0;
  /** errno of the last failed open that was logged, so a retry loop logs each cause once. */
  private lastOpenError = "";

  // The write in flight: bytes [batchOff, batchLen) of batch still have to reach the tty.
  private readonly batch = new Uint8Array(TX_BATCH_BYTES);
  private batchOff = 0;
  private batchLen = 0;
  private batchFrames = 0;

  private _up = false;
  private _downReason = "not started";
  /** Bytes of line noise skipped by the decoder (not frames, so not in malformed_frames_total). */
  skippedBytes = 0;
  /** Writes that found the tty full (EAGAIN) and were retried on a timer. */
  txRetries = 0;

  constructor(options: SerialBackendOptions) {
    this.path = options.path;
    this.baud = options.baud;
    this.stats = options.stats;
    this.log = options.log.child({ backend: "serial", device: options.path });
    this.backoff = new Backoff(options.reconnect ?? DEFAULT_SERIAL_RECONNECT);
    this.writeRetryMs = options.writeRetryMs ?? DEFAULT_WRITE_RETRY_MS;
    this.txQueue = new BoundedQueue<Uint8Array>(options.txQueueLimit ?? DEFAULT_SERIAL_TX_QUEUE_LIMIT);
    this.decoder = new AmpioSerialDecoder({
      frame: (f) => {
        this.stats.serialRxFrames++;
        this.listener?.frame(f);
      },
      reject: () => {
        this.stats.malformedFrames++;
      },
      skip: (n) => {
        this.skippedBytes += n;
      },
    });
  }

  get up(): boolean {
    return this._up;
  }

  get downReason(): string {
    return this._downReason;
  }

  /** Times the device came back after an outage. (stats.backendReconnects is counted by the
   * gateway from state() events, so it is not incremented here as well.) */
  get reconnects(): number {
    return this.reconnectCount;
  }

  start(listener: BackendListener): Promise<void> {
    if (this.started) return Promise.resolve();
    try {
      loadSerialLibrary();
    } catch (e) {
      return Promise.reject(new BackendFatalError(e instanceof Error ? e.message : String(e)));
    }
    this.started = true;
    this.listener = listener;
    this.tryOpen();
    return Promise.resolve();
  }

  send(frame: CanFrame): void {
    if (!this._up) {
      this.stats.error("backend_down_tx");
      this.stats.backendTxDropped++;
      return;
    }
    const refusal = ampioTxRefusal(frame);
    if (refusal !== null) {
      this.stats.error("backend_unsupported_frame");
      this.stats.backendTxDropped++;
      if (this.log.enabled("debug")) this.log.debug("serial_tx_refused", { reason: refusal });
      return;
    }
    if (!this.txQueue.offer(encodeAmpioTx(frame)!)) {
      this.stats.error("serial_tx_overflow");
      this.stats.backendTxDropped++;
      return;
    }
    if (!this.pumpScheduled && this.writeTimer === null) {
      // Frames sent in the same tick leave in one write.
      this.pumpScheduled = true;
      queueMicrotask(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reopenTimer !== null) clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    const wasOpen = this.fd >= 0;
    this.closeDevice();
    this.dropQueued(false);
    this._up = false;
    this._downReason = "stopped";
    this.stats.backendUp = false;
    await this.readLoopDone;
    if (wasOpen) this.log.info("serial_closed");
  }

  /** Opens the device; on failure logs the cause once and schedules the next attempt. */
  private tryOpen(): void {
    this.reopenTimer = null;
    if (this.stopped) return;
    let fd: number;
    let baud: number;
    try {
      ({ fd, baud } = openSerial(this.path, this.baud));
    } catch (e) {
      const code = e instanceof SerialOpenError ? e.code : errnoOf(e);
      const message = e instanceof Error ? e.message : String(e);
      const delay = this.backoff.next();
      this._downReason = this.lostReason ? `${this.lostReason}; reopening: ${message}` : message;
      if (code !== this.lastOpenError) {
        this.lastOpenError = code;
        const fields = { error: message, code, retry_ms: delay };
        if (this.everUp) this.log.warn("serial_open_failed", fields);
        else this.log.error("serial_open_failed", fields);
      } else if (this.log.enabled("debug")) {
        this.log.debug("serial_open_retry", { code, retry_ms: delay });
      }
      this.reopenTimer = setTimeout(() => this.tryOpen(), delay);
      return;
    }
    this.fd = fd;
    const generation = ++this.generation;
    this.upSince = Date.now();
    this.lastOpenError = "";
    this.decoder.reset();
    this._up = true;
    this._downReason = "";
    this.stats.backendUp = true;
    if (this.everUp) {
      this.reconnectCount++;
      this.log.info("serial_up", { baud, reconnects: this.reconnectCount });
    } else {
      this.log.info("serial_up", { baud });
    }
    this.everUp = true;
    this.listener?.state(true, "");
    this.readLoopDone = this.readLoop(fd, generation);
  }

  private async readLoop(fd: number, generation: number): Promise<void> {
    const reader = Bun.file(fd).stream().getReader();
    this.reader = reader;
    let reason: string;
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (generation !== this.generation) return;
        this.stats.error("serial_read");
        reason = `device vanished: read failed: ${errnoOf(e)}`;
        break;
      }
      if (generation !== this.generation) return;
      if (chunk.done) {
        reason = "device vanished: read stream ended (hang-up)";
        break;
      }
      try {
        this.decoder.push(chunk.value);
      } catch (e) {
        // A listener fault must not be mistaken for a device fault: log and keep reading.
        this.log.error("serial_rx_dispatch_failed", { error: e instanceof Error ? e.message : String(e) });
      }
    }
    this.deviceLost(reason);
  }

  /** Writes queued frames until the queue is empty, the tty is full (EAGAIN) or the device fails. */
  private pump(): void {
    this.writeTimer = null;
    while (this.fd >= 0) {
      if (this.batchOff >= this.batchLen && !this.fillBatch()) return;
      let n: number;
      try {
        n = fs.writeSync(this.fd, this.batch, this.batchOff, this.batchLen - this.batchOff);
      } catch (e) {
        const code = errnoOf(e);
        if (code === "EAGAIN" || code === "EWOULDBLOCK") {
          // The tty's output buffer is full: the UART drains it at line rate.
          this.txRetries++;
          this.writeTimer = setTimeout(() => this.pump(), this.writeRetryMs);
          return;
        }
        this.stats.error("serial_write");
        this.deviceLost(`device vanished: write failed: ${code}`);
        return;
      }
      this.batchOff += n;
      if (this.batchOff >= this.batchLen) {
        this.stats.serialTxFrames += this.batchFrames;
        this.batchOff = this.batchLen = this.batchFrames = 0;
      }
    }
  }

  /** Moves queued frames into the write buffer; false if there is nothing to write. */
  private fillBatch(): boolean {
    this.batchOff = this.batchLen = this.batchFrames = 0;
    while (this.txQueue.length > 0 && this.batchLen + MAX_TX_FRAME_BYTES <= TX_BATCH_BYTES) {
      const bytes = this.txQueue.poll()!;
      this.batch.set(bytes, this.batchLen);
      this.batchLen += bytes.length;
      this.batchFrames++;
    }
    return this.batchLen > 0;
  }

  /** The device is gone: release it, report down once, and start reopening. */
  private deviceLost(reason: string): void {
    if (this.fd < 0 || this.stopped) return;
    this.closeDevice();
    this.dropQueued(true);
    this.decoder.reset();
    this._up = false;
    this._downReason = this.lostReason = reason;
    this.stats.backendUp = false;
    this.log.warn("serial_down", { reason });
    this.listener?.state(false, reason);
    if (Date.now() - this.upSince >= STABLE_UP_MS) this.backoff.reset();
    const delay = this.backoff.next();
    this.reopenTimer = setTimeout(() => this.tryOpen(), delay);
  }

  private closeDevice(): void {
    this.generation++;
    if (this.writeTimer !== null) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    const reader = this.reader;
    this.reader = null;
    // Cancel before close so the stream stops polling the fd before its number can be reused.
    if (reader) reader.cancel().catch(() => {});
    if (this.fd >= 0) {
      // closeSerial discards unsent TX first, so a stalled adapter cannot hold close() for
      // the UART's closing_wait. After a hang-up the flush fails with EIO: nothing to drain.
      const flushError = closeSerial(this.fd);
      if (flushError !== null) this.log.debug("serial_tx_flush_failed", { error: flushError });
      this.fd = -1;
    }
  }

  /** Frames accepted but not yet written: lost with the device, counted if `count`. */
  private dropQueued(count: boolean): void {
    const lost = this.txQueue.length + this.batchFrames;
    this.txQueue.clear();
    this.batchOff = this.batchLen = this.batchFrames = 0;
    if (count && lost > 0) {
      this.stats.error("backend_down_tx", lost);
      this.stats.backendTxDropped += lost;
    }
  }
}
