/**
 * `-record DIR`: every bus frame (direction token `R`) and every client frame the gateway put on
 * the bus (`T`, once the hub reports it sent) appended to candump log files (`candump -l` format
 * with `candump -x` direction tokens; src/can/candump-log.ts), which `canplayer -I` replays and
 * python-can's CanutilsLogReader reads. Timestamps are receive times (when the hub handed the
 * frame over, in the event-loop turn the backend delivered it).
 *
 * Never blocks and never grows without bound: frames wait in a bounded queue; one asynchronous
 * write at a time takes a batch of up to 8,192 lines (node:fs/promises: Bun does the write(2) on
 * a worker thread, checked with strace). The batch is formatted LINES_PER_TURN lines per
 * event-loop turn (setImmediate in between), so a backlog never holds the loop for long. A full
 * queue drops frames here (counted; `enqueue` still answers true, so the hub never counts or
 * kicks the recorder). Files rotate by size and age; only the newest `maxFiles` of our own files
 * are kept, so disk use stays under maxFiles × maxBytes. A failing disk (ENOSPC, EACCES, a
 * vanished directory) is logged once per failure streak (`recorder_error`), the lines of the
 * failed batch are counted as dropped, and the recorder retries with a back-off — it never throws.
 * A failed write leaves no litter: the file is cut back to its last whole line, and deleted if it
 * holds none (a full disk used to leave an empty file per retry, which rotation then counted
 * against the real recordings). Every drop, queue full or disk error, is counted in
 * `consumer_dropped_frames_total{consumer="recorder"}`.
 */
import { mkdir, open, readdir, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { CanFrame, StampedFrame } from "../can/frame.ts";
import { formatCandumpLogLine } from "../can/candump-log.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import { BoundedQueue } from "../hub/bounded-queue.ts";
import type { Logger } from "../ops/log.ts";
import type { ConsumerCounters } from "../capture/counters.ts";

export interface RecorderOptions {
  readonly id: number;
  readonly dir: string;
  /**
   * Interface name written on each line, by bus index (StampedFrame.bus): each bus's name (can0,
   * the SocketCAN interface, a `[[bus]]` name), so canplayer and CanutilsLogReader (`channel`)
   * tell the buses apart. A frame of an unknown index gets the first name.
   */
  readonly ifaces: readonly string[];
  /** Rotate once a file holds this many bytes. */
  readonly maxBytes: number;
  /** Files kept (the oldest of ours beyond this are deleted). */
  readonly maxFiles: number;
  /** Rotate a file this old (ms; 0 = size only). */
  readonly maxAgeMs: number;
  readonly counters: ConsumerCounters;
  readonly log: Logger;
  /** Frames held while a write is in flight; default 32768 (≈ 3.5 s of a saturated 1 Mbit/s bus). */
  readonly queueFrames?: number;
  /** Batch delay in ms (default 100): lines arriving meanwhile go out in one write. */
  readonly flushMs?: number;
}

interface Line {
  /** Carries its time: when it reached the gateway (StampedFrame.ts). */
  readonly frame: StampedFrame;
  readonly dir: "R" | "T";
}

/**
 * Our file names: can-server-YYYYMMDD-HHMMSS-mmm.log (sortable = chronological), the UTC time of
 * the file's first frame — the same clock as the lines in it.
 */
const FILE_RE = /^can-server-\d{8}-\d{6}-\d{3}\.log$/;
const LINES_PER_WRITE = 8192;
/**
 * Lines formatted in one event-loop turn. Formatting costs 1–4 µs a line, so a whole 8,192-line
 * batch in one turn held the loop for 24–47 ms while a full 32,768-line backlog drained; in
 * slices of 1,024 the longest turn was 10–17 ms (most of it the write flattening the batch's
 * string), and the sessions' socket writes run in between. At 9,000 frames/s a 100 ms batch is
 * ~900 lines, one slice.
 */
const LINES_PER_TURN = 1024;
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 30_000;

const nextTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

function fileName(ms: number): string {
  const d = new Date(ms);
  const p = (v: number, w = 2): string => String(v).padStart(w, "0");
  const base = `can-server-${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}-${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}-${p(d.getUTCMilliseconds(), 3)}`;
  return `${base}.log`;
}

export class Recorder implements HubClient {
  readonly protocol = "recorder";
  /** Client frames come through the hub's onSent hook instead, written as `T`. */
  readonly wantsEcho = false;
  readonly remote: string;
  readonly id: number;
  readonly connectedAt = Date.now();
  dropped = 0;
  /** Lines written to disk. */
  txFrames = 0;
  /** The file being written ("" while none is open). */
  currentFile = "";
  /** The last disk error ("" while writing works). */
  lastError = "";
  private readonly queue: BoundedQueue<Line>;
  private file: FileHandle | null = null;
  private fileBytes = 0;
  private fileOpenedAt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private writing: Promise<void> | null = null;
  private retryAt = 0;
  private retryMs = RETRY_MIN_MS;
  private stopped = false;
  private prunePending = false;

  constructor(private readonly opts: RecorderOptions) {
    this.id = opts.id;
    this.remote = opts.dir;
    this.queue = new BoundedQueue<Line>(opts.queueFrames ?? 32768);
  }

  get receiving(): boolean {
    return !this.stopped;
  }

  get queued(): number {
    return this.queue.length;
  }

  accepts(_frame: CanFrame): boolean {
    return true;
  }

  /** A bus frame (from the hub's fan-out). */
  enqueue(frame: StampedFrame): boolean {
    this.add(frame, "R");
    return true;
  }

  /** A client frame the backend wrote to the bus (the hub's sent hook). */
  recordSent(frame: StampedFrame): void {
    this.add(frame, "T");
  }

  kick(_reason: string): void {
    // Never kicked for being slow: the recorder drops and counts instead (see enqueue).
  }

  /** Creates the directory (an error is logged and retried later, never thrown). */
  async start(): Promise<void> {
    try {
      await mkdir(this.opts.dir, { recursive: true });
    } catch (e) {
      this.fail(e);
    }
    this.opts.log.info("recorder_started", { dir: this.opts.dir, max_bytes: this.opts.maxBytes, max_files: this.opts.maxFiles, max_age_ms: this.opts.maxAgeMs });
  }

  /** Writes what is queued (bounded by deadlineMs), closes the file. */
  async stop(deadlineMs = 2000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Intervals on the monotonic clock: a wall-clock step must not stretch or cut them.
    const deadline = performance.now() + deadlineMs;
    this.retryAt = 0;
    while (performance.now() < deadline) {
      if (this.writing) await this.writing;
      if (this.queue.length === 0 || this.lastError) break;
      this.writing = this.writeBatch();
    }
    if (this.writing) await this.writing;
    this.countDrops(this.queue.length);
    this.queue.clear();
    await this.closeFile();
    this.opts.log.info("recorder_stopped", { frames: this.txFrames, dropped: this.dropped });
  }

  private add(frame: StampedFrame, dir: "R" | "T"): void {
    if (this.stopped) return;
    if (!this.queue.offer({ frame, dir })) {
      this.countDrops(1);
      return;
    }
    if (!this.timer && !this.writing) this.timer = setTimeout(this.tick, this.opts.flushMs ?? 100);
  }

  private readonly tick = (): void => {
    this.timer = null;
    if (this.writing || this.stopped) return;
    this.writing = this.writeBatch().finally(() => {
      this.writing = null;
      if (this.queue.length > 0 && !this.stopped) this.timer = setTimeout(this.tick, this.queue.length >= LINES_PER_WRITE ? 0 : (this.opts.flushMs ?? 100));
    });
  };

  private countDrops(n: number): void {
    if (n <= 0) return;
    this.dropped += n;
    this.opts.counters.byKind.recorder.dropped += n;
  }

  private async writeBatch(): Promise<void> {
    const n = Math.min(this.queue.length, LINES_PER_WRITE);
    if (n === 0) return;
    if (performance.now() < this.retryAt) {
      // Still backing off after a disk error: these lines are lost (counted).
      for (let i = 0; i < n; i++) this.queue.poll();
      this.countDrops(n);
      return;
    }
    // Only this method takes from the queue (stop() clears it only once no batch is in flight), so
    // the n lines counted above are still there after each yield.
    const lines: string[] = new Array<string>(n);
    const stamps = new Float64Array(n);
    for (let i = 0; i < n; ) {
      const end = Math.min(n, i + LINES_PER_TURN);
      for (; i < end; i++) {
        const l = this.queue.poll()!;
        stamps[i] = l.frame.ts;
        const iface = this.opts.ifaces[l.frame.bus] ?? this.opts.ifaces[0]!;
        lines[i] = formatCandumpLogLine({ timestampUs: l.frame.ts, iface, frame: l.frame, direction: l.dir }) + "\n";
      }
      if (i < n) await nextTurn();
    }
    let done = 0;
    try {
      while (done < n) {
        const now = performance.now();
        if (this.file && (this.fileBytes >= this.opts.maxBytes || (this.opts.maxAgeMs > 0 && now - this.fileOpenedAt >= this.opts.maxAgeMs))) await this.closeFile();
        if (!this.file) await this.openFile(Math.floor(stamps[done]! / 1000), now);
        // As many lines as fit in this file (at least one: a file is never left empty).
        // `+=` builds a rope that the write flattens natively: measured cheaper than join("")
        // (8,192 lines: 0.5 ms + 3–11 ms in the write vs 7–25 ms for the join).
        let text = lines[done]!;
        let end = done + 1;
        while (end < n && this.fileBytes + text.length + lines[end]!.length <= this.opts.maxBytes) text += lines[end++]!;
        if (this.fileBytes > 0 && this.fileBytes + text.length > this.opts.maxBytes) {
          await this.closeFile();
          continue;
        }
        const { bytesWritten } = await this.file!.write(text);
        // A short write is the disk filling up mid-batch (write(2) returns what fit).
        if (bytesWritten !== text.length) throw Object.assign(new Error(`short write: ${bytesWritten} of ${text.length} bytes (disk full?)`), { code: "ENOSPC" });
        this.fileBytes += text.length;
        if (this.prunePending) {
          this.prunePending = false;
          await this.prune();
        }
        this.txFrames += end - done;
        this.opts.counters.byKind.recorder.frames += end - done;
        done = end;
      }
      if (this.lastError) {
        this.opts.log.info("recorder_recovered", { file: this.currentFile });
        this.lastError = "";
      }
      this.retryMs = RETRY_MIN_MS;
    } catch (e) {
      this.countDrops(n - done);
      this.fail(e);
      await this.discardFailedWrite();
    }
  }

  /**
   * After a failed write: cut the file back to its last whole line (a partial write leaves half
   * a line), close it, and delete it if it holds no line at all. A full disk must leave no
   * litter: an empty file per retry would also count against -record-max-files and push real
   * recordings out.
   */
  private async discardFailedWrite(): Promise<void> {
    const f = this.file;
    const name = this.currentFile;
    const bytes = this.fileBytes;
    this.file = null;
    if (!f) return;
    await f.truncate(bytes).catch(() => undefined);
    await f.close().catch(() => undefined);
    if (bytes === 0 && name) {
      await unlink(join(this.opts.dir, name)).catch(() => undefined);
      this.currentFile = "";
    }
  }

  private fail(e: unknown): void {
    const err = e as NodeJS.ErrnoException;
    const reason = err.code === "ENOSPC" ? "disk full" : err.code === "EACCES" || err.code === "EPERM" ? "permission denied" : err.code === "ENOENT" ? "directory missing" : err.code === "EROFS" ? "read-only file system" : (err.code ?? "error");
    const message = `${reason}: ${err.message ?? String(e)}`;
    if (!this.lastError) this.opts.log.error("recorder_error", { dir: this.opts.dir, file: this.currentFile, reason, error: err.message ?? String(e), retry_ms: this.retryMs });
    this.lastError = message;
    this.retryAt = performance.now() + this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
  }

  /** `nameMs`: wall-clock ms the file is named after; `monoNow`: performance.now() for its age. */
  private async openFile(nameMs: number, monoNow: number): Promise<void> {
    await mkdir(this.opts.dir, { recursive: true });
    let name = fileName(nameMs);
    for (let i = 1; i < 100; i++) {
      try {
        this.file = await open(join(this.opts.dir, name), "wx");
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        // Same millisecond as an existing file: take the next one, so names stay chronological.
        name = fileName(nameMs + i);
      }
    }
    if (!this.file) throw new Error("could not create a new file name");
    this.currentFile = name;
    this.fileBytes = 0;
    this.fileOpenedAt = monoNow;
    this.opts.log.info("recorder_file", { file: join(this.opts.dir, name) });
    // Older files are pruned once this one holds a line (see writeBatch): a file that a full disk
    // keeps empty is deleted again and must not push a real recording out.
    this.prunePending = true;
  }

  /** Deletes our oldest files beyond maxFiles (the current one counts). */
  private async prune(): Promise<void> {
    const ours = (await readdir(this.opts.dir)).filter((f) => FILE_RE.test(f)).sort();
    const excess = ours.length - this.opts.maxFiles;
    for (let i = 0; i < excess; i++) {
      if (ours[i] === this.currentFile) continue;
      await unlink(join(this.opts.dir, ours[i]!)).catch(() => undefined);
    }
  }

  private async closeFile(): Promise<void> {
    const f = this.file;
    this.file = null;
    if (!f) return;
    await f.close().catch(() => undefined);
  }
}

/** A bus the recorder records: its hub and the interface name its lines carry. */
export interface RecordedBus {
  readonly name: string;
  readonly hub: Pick<Hub, "attach" | "detach" | "onSent">;
}

/**
 * Starts the recorder of `-record DIR` on every bus (one file set for all, as `candump -l any`:
 * each line names its bus); the returned function stops it. `buses` in bus-index order.
 */
export async function startRecorder(
  config: { readonly record: string; readonly recordMaxBytes: number; readonly recordMaxFiles: number; readonly recordMaxAgeMs: number },
  deps: { readonly buses: readonly RecordedBus[]; readonly allocateId: () => number; readonly counters: ConsumerCounters; readonly log: Logger },
): Promise<{ readonly recorder: Recorder; stop(deadlineMs?: number): Promise<void> }> {
  if (deps.buses.length === 0) throw new Error("startRecorder: no bus");
  const recorder = new Recorder({
    id: deps.allocateId(),
    dir: config.record,
    ifaces: deps.buses.map((b) => b.name),
    maxBytes: config.recordMaxBytes,
    maxFiles: config.recordMaxFiles,
    maxAgeMs: config.recordMaxAgeMs,
    counters: deps.counters,
    log: deps.log.child({ consumer: "recorder" }),
  });
  await recorder.start();
  const unsubscribes = deps.buses.map((b) => {
    b.hub.attach(recorder);
    return b.hub.onSent((frame) => recorder.recordSent(frame));
  });
  return {
    recorder,
    async stop(deadlineMs?: number) {
      for (const u of unsubscribes) u();
      for (const b of deps.buses) b.hub.detach(recorder);
      await recorder.stop(deadlineMs);
    },
  };
}
