/**
 * The USB-serial adapter backend: a tty opened through ./ffi.ts, read with `Bun.file(fd).stream()`
 * into the adapter's streaming decoder (./wire.ts: the Ampio adapter by default, a Lawicel slcan
 * adapter with ../slcan/slcan-wire.ts), written with `fs.writeSync` on the non-blocking fd from a short
 * TX queue (short writes and EAGAIN resume on a short timer; never `Bun.write` or
 * `Bun.file(fd).writer()`, which restart at offset 0 after EAGAIN or clear O_NONBLOCK).
 *
 * Transmit follows the Backend contract (../backend.ts): `send` answers "accepted" while the queue
 * (DEFAULT_SERIAL_TX_QUEUE_LIMIT frames, a couple of write batches) has room and "busy" when it is
 * full, then calls `listener.txReady()` once there is room again. A request is reported `sent()`
 * once all of its bytes went into the tty with `fs.writeSync`; one that expired while it waited is
 * `lost("expired")` instead of being written late; a failed write loses the frames of its batch
 * (`write_failed`), and everything else still waiting is `lost("backend_down")` with the device or
 * on stop(). The hub counts those drops; this file counts only its own I/O errors and the frames
 * it really wrote.
 *
 * When the device vanishes (read stream ends or fails, EIO on write, ENOENT on open) the backend
 * reports down once, and reopens with capped exponential backoff until the adapter is back; a
 * device missing at start-up is handled the same way (the shared rules: ../link-state.ts). The fd is closed only after its read loop
 * has ended, so a reopened device that gets the same fd number never shares it with the old loop.
 */
import fs from "node:fs";
import type { CanFrame } from "../../can/frame.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { type Backend, BackendFatalError, type BackendListener, commonTxRefusal, type SendResult, type TxRequest } from "../backend.ts";
import type { BackoffOptions } from "../backoff.ts";
import { LinkState } from "../link-state.ts";
import { closeSerial, loadSerialLibrary, openSerial, pendingOutput, SerialOpenError } from "./ffi.ts";
import { ampioWire, type SerialWire, type WireDecoder } from "./wire.ts";

export interface SerialBackendOptions {
  /** Device path, e.g. /dev/ttyUSB0. */
  readonly path: string;
  readonly baud: number;
  readonly stats: Stats;
  readonly log: Logger;
  /** Accepted frames not yet written; past this send() answers "busy". */
  readonly txQueueLimit?: number;
  /** Reopen delays; defaults to 20 ms doubling up to 1 s. */
  readonly reconnect?: BackoffOptions;
  /** Delay before retrying a write that hit EAGAIN (the tty buffer is full). */
  readonly writeRetryMs?: number;
  /** What the adapter speaks (default: the Ampio adapter). */
  readonly wire?: SerialWire;
}

/** Two write batches: about 100 ms of line time at 115200 baud. The real queueing is in the hub. */
export const DEFAULT_SERIAL_TX_QUEUE_LIMIT = 64;
/** One write syscall carries at most this many frames (≤ 32 × 18 bytes); the rest waits its turn. */
export const SERIAL_TX_BATCH_FRAMES = 32;
export const DEFAULT_SERIAL_RECONNECT: BackoffOptions = { initialMs: 20, maxMs: 1000, factor: 2 };
const DEFAULT_WRITE_RETRY_MS = 2;
/** Noise since the last valid frame that makes serial_no_valid_frames worth saying: about 90 ms
 * of line time at 115200 baud, far more than a hot-plug glitch; or as many rejected frames. */
const NOISE_WARN_BYTES = 1024;
const NOISE_WARN_REJECTS = 16;
/** stop(): the longest wait for the close sequence to leave the tty, and the least (a pty's
 * reader, a USB CDC endpoint: TIOCOUTQ may say 0 before the bytes were taken). */
const CLOSE_SEQUENCE_DRAIN_MS = 100;
const CLOSE_SEQUENCE_MIN_WAIT_MS = 20;
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

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A frame accepted for the tty, with its wire bytes. */
interface QueuedTx {
  readonly req: TxRequest;
  readonly bytes: Uint8Array;
}

export class SerialBackend implements Backend {
  readonly kind: "serial" | "slcan";
  readonly fdCapable = false;

  private readonly path: string;
  private readonly baud: number;
  private readonly stats: Stats;
  private readonly log: Logger;
  private readonly link: LinkState;
  private readonly writeRetryMs: number;
  private readonly txLimit: number;
  private readonly wire: SerialWire;
  private readonly decoder: WireDecoder;

  private listener: BackendListener | null = null;
  private started = false;
  private fd = -1;
  /** Bumped on every close so a read loop of an older fd never acts on the new one. */
  private generation = 0;
  /** The current fd's stream reader; cancelled (and its loop awaited) before the fd is closed. */
  private reader: { cancel(): Promise<void> } | null = null;
  /** Settles once the current fd's read loop has left its last read. */
  private readerExited: Promise<void> = Promise.resolve();
  /** The close of a lost or stopped device in progress (the reopen waits for it). */
  private closing: Promise<void> = Promise.resolve();
  private writeTimer: ReturnType<typeof setTimeout> | null = null;
  private pumpScheduled = false;
  /** Why the device was lost last ("" before the first loss); kept in downReason while reopening. */
  private lostReason = "";
  /** errno of the last failed open that was logged, so a retry loop logs each cause once. */
  private lastOpenError = "";

  /** Accepted frames waiting for a write batch, oldest first. */
  private txQueue: QueuedTx[] = [];
  // The write in flight: bytes [batchOff, batchLen) of batch still have to reach the tty;
  // batchReqs[i] is fully written once batchOff reaches batchEnds[i]; the first batchDone are.
  private readonly batch: Uint8Array;
  private batchOff = 0;
  private batchLen = 0;
  private batchReqs: TxRequest[] = [];
  private readonly batchEnds: number[] = [];
  private batchDone = 0;

  /** Bytes of line noise skipped by the decoder (not frames, so not in malformed_frames_total). */
  skippedBytes = 0;
  /** Writes that found the tty full (EAGAIN) and were retried on a timer. */
  txRetries = 0;
  /** Commands or frames the adapter refused (slcan BEL). */
  adapterRefusals = 0;
  // Noise since the last valid frame (or the open): enough of it with no frame is worth a warning.
  private noiseSinceFrame = 0;
  private rejectsSinceFrame = 0;
  private noiseWarned = false;
  private openedBaud = 0;

  constructor(options: SerialBackendOptions) {
    this.path = options.path;
    this.baud = options.baud;
    this.stats = options.stats;
    this.wire = options.wire ?? ampioWire;
    this.kind = this.wire.kind;
    this.batch = new Uint8Array(SERIAL_TX_BATCH_FRAMES * this.wire.maxFrameBytes);
    this.log = options.log.child({ backend: this.wire.kind, device: options.path });
    this.link = new LinkState({ reconnect: options.reconnect ?? DEFAULT_SERIAL_RECONNECT, stableUpMs: STABLE_UP_MS, stats: this.stats, log: this.log, name: "serial" });
    this.writeRetryMs = options.writeRetryMs ?? DEFAULT_WRITE_RETRY_MS;
    this.txLimit = Math.max(1, options.txQueueLimit ?? DEFAULT_SERIAL_TX_QUEUE_LIMIT);
    this.decoder = this.wire.decoder({
      frame: (f) => {
        this.stats.serialRxFrames++;
        this.noiseSinceFrame = this.rejectsSinceFrame = 0;
        this.noiseWarned = false;
        this.listener?.frame(f);
      },
      reject: () => {
        this.stats.malformedFrames++;
        this.rejectsSinceFrame++;
        this.checkNoise();
      },
      skip: (n) => {
        this.skippedBytes += n;
        this.stats.serialRxNoiseBytes += n;
        this.noiseSinceFrame += n;
        this.checkNoise();
      },
      nack: (what, opening) => {
        // A refused frame was already reported sent (written): counted, and logged loudly the
        // first time and whenever the open sequence is refused (the adapter may not be on the bus).
        this.stats.error("adapter_refused");
        if (this.adapterRefusals++ === 0 || opening) {
          this.log.warn("adapter_refused", { refused: what, hint: "the adapter answered BEL (bus off, buffer full, unsupported bit rate?); counted in errors_total{where=\"adapter_refused\"}" });
        } else if (this.log.enabled("debug")) this.log.debug("adapter_refused", { refused: what, total: this.adapterRefusals });
      },
    });
  }

  get up(): boolean {
    return this.link.up;
  }

  get downReason(): string {
    return this.link.downReason;
  }

  /** Times the device came back after an outage. */
  get reconnects(): number {
    return this.link.reconnects;
  }

  /** Accepted requests not yet reported sent or lost. */
  get txPending(): number {
    return this.txQueue.length + this.batchReqs.length - this.batchDone;
  }

  start(listener: BackendListener): Promise<void> {
    if (this.started) return Promise.resolve();
    try {
      loadSerialLibrary();
    } catch (e) {
      return Promise.reject(new BackendFatalError(errorText(e)));
    }
    this.started = true;
    this.listener = listener;
    this.link.attach(listener);
    this.tryOpen();
    return Promise.resolve();
  }

  txRefusal(frame: CanFrame): string | null {
    return commonTxRefusal(frame, this.fdCapable) ?? this.wire.txRefusal(frame);
  }

  send(req: TxRequest): SendResult {
    if (!this.link.up) return "down";
    if (this.txRefusal(req.frame) !== null) return "unsupported";
    if (this.txPending >= this.txLimit) {
      this.link.markBusy();
      return "busy";
    }
    this.txQueue.push({ req, bytes: this.wire.encode(req.frame) });
    if (!this.pumpScheduled && this.writeTimer === null) {
      // Frames sent in the same tick leave in one write.
      this.pumpScheduled = true;
      queueMicrotask(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
    return "accepted";
  }

  async stop(): Promise<void> {
    const wasOpen = this.fd >= 0;
    this.link.stop();
    const lost = this.takeUnwritten();
    this.link.report(lost, "backend_down");
    if (wasOpen && this.wire.closeSequence !== undefined) await this.writeCloseSequence(this.fd);
    if (wasOpen) this.closing = this.closeDevice();
    await this.closing;
    if (wasOpen) this.log.info("serial_closed");
  }

  /**
   * Best effort, bounded: writes the adapter's close sequence (slcan `C`) and gives it up to
   * CLOSE_SEQUENCE_DRAIN_MS to leave the tty, since closing flushes unsent output.
   */
  private async writeCloseSequence(fd: number): Promise<void> {
    try {
      fs.writeSync(fd, this.wire.closeSequence!);
    } catch {
      return; // the adapter is gone already
    }
    const deadline = performance.now() + CLOSE_SEQUENCE_DRAIN_MS;
    do await Bun.sleep(CLOSE_SEQUENCE_MIN_WAIT_MS);
    while (pendingOutput(fd) > 0 && performance.now() < deadline);
  }

  /** Opens the device; on failure logs the cause once and schedules the next attempt. */
  private tryOpen(): void {
    if (this.link.isStopped) return;
    let fd: number;
    let baud: number;
    try {
      ({ fd, baud } = openSerial(this.path, this.baud));
      this.writeOpenSequence(fd);
    } catch (e) {
      const code = e instanceof SerialOpenError ? e.code : errnoOf(e);
      const message = errorText(e);
      const delay = this.link.nextDelay();
      // Told to the listener only when an up device is lost (deviceLost), not on each failed open.
      this.link.stillDown(this.lostReason ? `${this.lostReason}; reopening: ${message}` : message);
      if (code !== this.lastOpenError) {
        this.lastOpenError = code;
        const fields = { error: message, code, retry_ms: delay };
        if (this.link.wasEverUp) this.log.warn("serial_open_failed", fields);
        else this.log.error("serial_open_failed", fields);
      } else if (this.log.enabled("debug")) {
        this.log.debug("serial_open_retry", { code, retry_ms: delay });
      }
      this.link.scheduleRetry(() => this.tryOpen(), delay);
      return;
    }
    this.fd = fd;
    const generation = ++this.generation;
    this.lastOpenError = "";
    this.decoder.reset();
    this.noiseSinceFrame = this.rejectsSinceFrame = 0;
    this.noiseWarned = false;
    this.openedBaud = baud;
    const exited = this.readLoop(fd, generation);
    this.readerExited = exited.then(() => undefined);
    void exited.then((reason) => {
      if (reason !== null) this.deviceLost(reason);
    });
    const { reconnect } = this.link.wentUp();
    if (reconnect) this.log.info("serial_up", { baud, reconnects: this.link.reconnects });
    else this.log.info("serial_up", { baud });
    this.txReadyIfRoom();
  }

  /**
   * Bytes keep arriving but none of them forms a frame: almost always a wrong -baud (or a tty
   * that is not this adapter). Said once per episode (again only after a valid frame or a
   * reopen); every noise byte is counted in serial_rx_noise_bytes_total regardless.
   */
  private checkNoise(): void {
    if (this.noiseWarned) return;
    if (this.noiseSinceFrame < NOISE_WARN_BYTES && this.rejectsSinceFrame < NOISE_WARN_REJECTS) return;
    this.noiseWarned = true;
    this.log.warn("serial_no_valid_frames", {
      noise_bytes: this.noiseSinceFrame,
      rejected_frames: this.rejectsSinceFrame,
      baud: this.openedBaud,
      hint: `bytes are arriving from ${this.path} but none forms a valid ${this.kind === "slcan" ? "slcan line" : "Ampio frame"}: wrong -baud, or not the adapter? (counted in serial_rx_noise_bytes_total and malformed_frames_total)`,
    });
  }

  /** Sends the adapter's open sequence (slcan: close, bit rate, open); a failure closes the fd and throws. */
  private writeOpenSequence(fd: number): void {
    const seq = this.wire.openSequence;
    if (seq === undefined) return;
    try {
      // A few bytes into a freshly opened, empty tty buffer: one write takes them all.
      const n = fs.writeSync(fd, seq);
      if (n !== seq.length) throw new Error(`short write of the open sequence (${n} of ${seq.length} bytes)`);
    } catch (e) {
      closeSerial(fd);
      throw e;
    }
  }

  /**
   * Reads until the stream ends, fails or is cancelled. Resolves with the reason the device was
   * lost, or null when this loop was ended on purpose (its fd is being closed). Never rejects.
   */
  private async readLoop(fd: number, generation: number): Promise<string | null> {
    // Runs synchronously up to the first await: this.reader is set before tryOpen() goes on.
    const reader = Bun.file(fd).stream().getReader();
    this.reader = reader;
    let reason: string;
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        if (generation !== this.generation) break;
        this.stats.error("serial_read");
        reason = `device vanished: read failed: ${errnoOf(e)}`;
        return this.readerGone(generation, reason);
      }
      if (generation !== this.generation) break;
      if (chunk.done) return this.readerGone(generation, "device vanished: read stream ended (hang-up)");
      try {
        this.decoder.push(chunk.value);
      } catch (e) {
        // A listener fault must not be mistaken for a device fault: log and keep reading.
        this.log.error("serial_rx_dispatch_failed", { error: errorText(e) });
      }
    }
    if (this.log.enabled("debug")) this.log.debug("serial_reader_done", { generation });
    return null;
  }

  private readerGone(generation: number, reason: string): string {
    if (this.log.enabled("debug")) this.log.debug("serial_reader_done", { generation });
    return reason;
  }

  /** Writes queued frames until the queue is empty, the tty is full (EAGAIN) or the device fails. */
  private pump(): void {
    this.writeTimer = null;
    const written: TxRequest[] = [];
    this.unbatchUnstarted();
    const expired = this.expireQueued();
    let failure = "";
    while (this.fd >= 0) {
      if (this.batchOff >= this.batchLen && !this.fillBatch()) break;
      let n: number;
      try {
        n = fs.writeSync(this.fd, this.batch, this.batchOff, this.batchLen - this.batchOff);
      } catch (e) {
        const code = errnoOf(e);
        if (code === "EAGAIN" || code === "EWOULDBLOCK") {
          // The tty's output buffer is full: the UART drains it at line rate.
          this.txRetries++;
          this.writeTimer = setTimeout(() => this.pump(), this.writeRetryMs);
          break;
        }
        failure = code;
        break;
      }
      this.batchOff += n;
      while (this.batchDone < this.batchReqs.length && this.batchEnds[this.batchDone]! <= this.batchOff) {
        written.push(this.batchReqs[this.batchDone++]!);
      }
      if (this.batchOff >= this.batchLen) this.clearBatch();
    }
    this.stats.serialTxFrames += written.length;
    this.link.report(written, "sent");
    this.link.report(expired, "expired");
    if (failure !== "") {
      this.stats.error("serial_write");
      // The frames of the failed batch never fully reached the tty.
      const failed = this.batchReqs.slice(this.batchDone);
      this.clearBatch();
      this.link.report(failed, "write_failed");
      this.deviceLost(`device vanished: write failed: ${failure}`);
      return;
    }
    this.txReadyIfRoom();
  }

  /**
   * After a stall (EAGAIN), frames of the batch whose first byte has not reached the tty go back
   * to the front of the queue, so they expire like any waiting frame instead of going out late
   * when the tty drains. A frame already partly written stays: cutting it would corrupt the line.
   */
  private unbatchUnstarted(): void {
    if (this.batchOff >= this.batchLen) return;
    let k = this.batchDone;
    while (k < this.batchReqs.length && (k === 0 ? 0 : this.batchEnds[k - 1]!) < this.batchOff) k++;
    if (k >= this.batchReqs.length) return;
    const cut = k === 0 ? 0 : this.batchEnds[k - 1]!;
    const back: { req: TxRequest; bytes: Uint8Array }[] = [];
    for (let i = k; i < this.batchReqs.length; i++) {
      const start = i === 0 ? 0 : this.batchEnds[i - 1]!;
      back.push({ req: this.batchReqs[i]!, bytes: this.batch.slice(start, this.batchEnds[i]!) });
    }
    this.txQueue.unshift(...back);
    this.batchReqs.length = k;
    this.batchEnds.length = k;
    this.batchLen = cut;
    if (this.batchOff >= this.batchLen) this.clearBatch();
  }

  /** Takes queued requests that expired while they waited out of the queue. */
  private expireQueued(): TxRequest[] {
    const now = performance.now();
    if (!this.txQueue.some((q) => now > q.req.expiresAt)) return [];
    const expired: TxRequest[] = [];
    this.txQueue = this.txQueue.filter((q) => {
      if (now <= q.req.expiresAt) return true;
      expired.push(q.req);
      return false;
    });
    return expired;
  }

  /** Moves queued frames into the write buffer; false if there is nothing to write. */
  private fillBatch(): boolean {
    this.clearBatch();
    let taken = 0;
    while (taken < this.txQueue.length && this.batchReqs.length < SERIAL_TX_BATCH_FRAMES) {
      const { req, bytes } = this.txQueue[taken++]!;
      this.batch.set(bytes, this.batchLen);
      this.batchLen += bytes.length;
      this.batchReqs.push(req);
      this.batchEnds.push(this.batchLen);
    }
    this.txQueue.splice(0, taken);
    return this.batchLen > 0;
  }

  private clearBatch(): void {
    this.batchOff = this.batchLen = this.batchDone = 0;
    this.batchReqs = [];
    this.batchEnds.length = 0;
  }

  /** Every accepted request not yet written, taken out of the queue and the batch. */
  private takeUnwritten(): TxRequest[] {
    const out = this.batchReqs.slice(this.batchDone);
    for (const q of this.txQueue) out.push(q.req);
    this.txQueue = [];
    this.clearBatch();
    return out;
  }

  /** Tells the hub there is room again, once after each "busy", while the device is up. */
  private txReadyIfRoom(): void {
    this.link.txReady(this.link.up && this.txPending < this.txLimit);
  }

  /** The device is gone: report down once, release it, and reopen once it is closed. */
  private deviceLost(reason: string): void {
    if (this.fd < 0 || this.link.isStopped) return;
    this.lostReason = reason;
    // Down first (as on SocketCAN): a lost() callback that offers a frame again hears "down".
    this.link.wentDown(reason);
    this.link.report(this.takeUnwritten(), "backend_down");
    this.log.warn("serial_down", { reason });
    const delay = this.link.nextDelay();
    this.closing = this.closeDevice().then(() => this.link.scheduleRetry(() => this.tryOpen(), delay));
  }

  /**
   * Stops writing, ends the read loop and waits for it, then closes the fd. Closing first would
   * let a read still in flight on the old stream run on whatever file next gets the fd number
   * (the reopened adapter), swallowing its bytes.
   */
  private async closeDevice(): Promise<void> {
    this.generation++;
    if (this.writeTimer !== null) clearTimeout(this.writeTimer);
    this.writeTimer = null;
    // Released at once, so nothing writes to it or closes it twice while the reader winds down.
    const fd = this.fd;
    this.fd = -1;
    const reader = this.reader;
    this.reader = null;
    if (reader) await reader.cancel().catch(() => {});
    await this.readerExited;
    if (fd >= 0) {
      // closeSerial discards unsent TX first, so a stalled adapter cannot hold close() for
      // the UART's closing_wait. After a hang-up the flush fails with EIO: nothing to drain.
      const flushError = closeSerial(fd);
      if (flushError !== null) this.log.debug("serial_tx_flush_failed", { error: flushError });
      if (this.log.enabled("debug")) this.log.debug("serial_fd_closed", { fd });
    }
  }
}
