/**
 * `-backend replay -replay-file FILE`: plays a candump log (`candump -l`, python-can's
 * CanutilsLogWriter, this gateway's -record files) onto the hub with the original timing, scaled
 * by `-replay-speed`, once or in a loop (`-replay-loop`). People develop against a recorded
 * installation without hardware. The bus is "up" as long as the backend runs (also after the
 * last frame). Client frames are accepted and counted like on the virtual bus (so they are echoed
 * per the hub's echo rules). A malformed line is skipped, counted
 * (`errors_total{where="replay_malformed_line"}`) and logged with its line number (the first
 * MAX_LOGGED of the first pass); FD frames are skipped (counted) unless -fd.
 *
 * The file is streamed: read in CHUNK_BYTES pieces as playing needs them, lines parsed as they
 * are read, at most MAX_QUEUED parsed frames held, so memory does not depend on the file's size
 * and a malformed line costs a counter increment. A loop reads the file again from the start.
 * Timing is absolute (each frame is due at pass start + (t − t₀)/speed, t₀ the pass's first
 * frame), so timer jitter never accumulates; a timestamp that goes backwards (concatenated logs)
 * plays at once.
 */
import { open, type FileHandle } from "node:fs/promises";
import type { CanFrame } from "../../can/frame.ts";
import { CandumpLogReader, type CandumpLogRecord } from "../../can/candump-log.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { REPLAY_SPEED_HELP, replaySpeedValue } from "./config.ts";
import { BackendFatalError, commonTxRefusal, type Backend, type BackendListener, type SendResult, type TxRequest } from "../backend.ts";

/** Bytes read from the file at a time. */
export const CHUNK_BYTES = 64 * 1024;
/** Parsed frames held ahead of playing; reading pauses above this. */
const MAX_QUEUED = 4096;
/** Reading resumes when fewer frames than this are queued. */
const LOW_WATER = 1024;
/** Malformed lines logged one by one; later ones are only counted. */
const MAX_LOGGED = 20;
/** Frames delivered in one timer turn at most (a burst of equal timestamps yields after this). */
const MAX_PER_TURN = 2048;

export interface ReplayBackendOptions {
  readonly file: string;
  readonly loop: boolean;
  /** Time scale: 2 = twice as fast. */
  readonly speed: number;
  readonly fd: boolean;
  readonly stats: Stats;
  readonly log: Logger;
}

/** -replay-speed text → number (checked when flags are read too: src/cli/parse.ts). */
export function parseReplaySpeed(text: string): number {
  const n = replaySpeedValue(text);
  if (n === null) throw new BackendFatalError(`-replay-speed must be ${REPLAY_SPEED_HELP}, got ${JSON.stringify(text)}`);
  return n;
}

export class ReplayBackend implements Backend {
  readonly kind = "replay" as const;
  readonly fdCapable: boolean;
  /** Frames played onto the hub. */
  rxFrames = 0;
  /** Client frames "written" to the replayed bus. */
  txFrames = 0;
  /** Lines that did not parse (first pass), and the first line numbers. */
  malformedLines = 0;
  readonly malformedLineNumbers: number[] = [];
  /** FD frames skipped because -fd is off (first pass). */
  skippedFd = 0;
  /** Times the file was played to its end. */
  passes = 0;
  /** Frames played in the current pass. */
  private played = 0;
  private listener: BackendListener | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private fh: FileHandle | null = null;
  private readonly buf = new Uint8Array(CHUNK_BYTES);
  /** File offset of the next read, and whether this pass has read the whole file. */
  private readPos = 0;
  private eof = false;
  private reading: Promise<void> | null = null;
  private reader: CandumpLogReader;
  /** Parsed frames not played yet: queue[head..]. */
  private queue: CandumpLogRecord[] = [];
  private head = 0;
  /** Pass timing: performance.now() and the log time of the pass's first frame. */
  private startedAt = 0;
  private t0: number | null = null;
  private lastTs = -Infinity;
  private firstTs = 0;
  private lastPassTs = 0;

  constructor(private readonly opts: ReplayBackendOptions) {
    this.fdCapable = opts.fd;
    this.reader = this.newReader();
  }

  get up(): boolean {
    return this.listener !== null;
  }

  get downReason(): string {
    return this.listener ? "" : "replay stopped";
  }

  /** Parsed frames held in memory, waiting to be played (at most MAX_QUEUED + one chunk's worth). */
  get queued(): number {
    return this.queue.length - this.head;
  }

  /** Frames played in the current pass. */
  get position(): number {
    return this.played;
  }

  async start(listener: BackendListener): Promise<void> {
    const { file, log } = this.opts;
    try {
      this.fh = await open(file, "r");
      const st = await this.fh.stat();
      if (!st.isFile()) throw new Error("not a regular file");
      log.info("replay_started", { file, bytes: st.size, speed: this.opts.speed, loop: this.opts.loop });
    } catch (e) {
      await this.fh?.close().catch(() => {});
      this.fh = null;
      throw new BackendFatalError(`cannot read replay file ${JSON.stringify(file)}: ${(e as Error).message}`);
    }
    this.listener = listener;
    this.opts.stats.backendUp = true;
    listener.state(true, `replaying ${file}`);
    await this.fill();
    this.beginPass();
  }

  txRefusal(frame: CanFrame): string | null {
    return commonTxRefusal(frame, this.fdCapable);
  }

  send(req: TxRequest): SendResult {
    if (!this.listener) return "down";
    if (this.txRefusal(req.frame) !== null) return "unsupported";
    this.txFrames++;
    req.sent();
    return "accepted";
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const l = this.listener;
    this.listener = null;
    this.opts.stats.backendUp = false;
    await this.reading?.catch(() => {});
    const fh = this.fh;
    this.fh = null;
    await fh?.close().catch(() => {});
    this.queue = [];
    this.head = 0;
    l?.state(false, "replay stopped");
  }

  private newReader(): CandumpLogReader {
    return new CandumpLogReader({
      record: (rec) => {
        if (rec.frame.fd && !this.opts.fd) {
          if (this.passes === 0) this.skippedFd++;
          return;
        }
        this.queue.push(rec);
      },
      error: (err) => {
        // Counted and logged on the first pass only: a loop reads the same lines again.
        if (this.passes > 0) return;
        this.malformedLines++;
        this.opts.stats.error("replay_malformed_line");
        if (this.malformedLineNumbers.length < 100) this.malformedLineNumbers.push(err.line);
        if (this.malformedLines <= MAX_LOGGED) this.opts.log.warn("replay_malformed_line", { file: this.opts.file, line: err.line, reason: err.reason });
      },
    });
  }

  /** Reads chunks until MAX_QUEUED frames are queued or the file ends. One read at a time. */
  private fill(): Promise<void> {
    if (this.reading) return this.reading;
    const run = async (): Promise<void> => {
      try {
        while (this.fh && !this.eof && this.queued < MAX_QUEUED) {
          const { bytesRead } = await this.fh.read(this.buf, 0, CHUNK_BYTES, this.readPos);
          if (!this.listener) return;
          if (bytesRead === 0) {
            this.eof = true;
            this.reader.end();
          } else {
            this.readPos += bytesRead;
            this.reader.push(this.buf.subarray(0, bytesRead));
          }
        }
      } catch (e) {
        // The file vanished or became unreadable while playing: end the pass with what was read.
        this.opts.log.error("replay_read_failed", { file: this.opts.file, error: (e as Error).message });
        this.eof = true;
      } finally {
        this.reading = null;
      }
    };
    this.reading = run();
    return this.reading;
  }

  private beginPass(): void {
    this.played = 0;
    this.t0 = null;
    this.lastTs = -Infinity;
    this.startedAt = performance.now();
    this.schedule();
  }

  private endPass(): void {
    this.passes++;
    if (this.passes === 1) {
      this.opts.log.info("replay_pass_finished", {
        file: this.opts.file,
        frames: this.played,
        malformed_lines: this.malformedLines,
        skipped_fd: this.skippedFd,
        ignored_lines: this.reader.skipped,
        duration_s: this.played > 1 ? (this.lastPassTs - this.firstTs) / 1e6 : 0,
      });
    }
    if (this.opts.loop && this.played > 0) {
      // Read again from the start; one frame interval (at least 1 ms) between passes, so a loop
      // never spins.
      this.readPos = 0;
      this.eof = false;
      this.reader = this.newReader();
      this.timer = setTimeout(() => {
        this.timer = null;
        void this.fill().then(() => this.beginPass());
      }, 1);
      return;
    }
    this.opts.log.info("replay_finished", { file: this.opts.file, frames: this.rxFrames });
  }

  /** Milliseconds after the pass started at which a frame with this log time is due. */
  private dueAt(ts: number): number {
    return Math.max(0, ts - (this.t0 ?? ts)) / 1000 / this.opts.speed;
  }

  private schedule(): void {
    if (!this.listener) return;
    if (this.queued < LOW_WATER && !this.eof) void this.fill();
    if (this.queued === 0) {
      if (this.eof && !this.reading) {
        this.endPass();
        return;
      }
      // Waiting for the file: play on when the read is done.
      void this.fill().then(() => this.schedule());
      return;
    }
    const next = this.queue[this.head]!;
    if (this.t0 === null) {
      this.t0 = next.timestampUs;
      this.firstTs = next.timestampUs;
      this.startedAt = performance.now();
    }
    const wait = this.dueAt(next.timestampUs) - (performance.now() - this.startedAt);
    this.timer = setTimeout(this.tick, Math.max(0, wait));
  }

  private readonly tick = (): void => {
    this.timer = null;
    const l = this.listener;
    if (!l) return;
    const elapsed = performance.now() - this.startedAt;
    let n = 0;
    while (this.head < this.queue.length && n < MAX_PER_TURN) {
      const r = this.queue[this.head]!;
      // Due, or a timestamp that went backwards (plays at once).
      if (this.dueAt(r.timestampUs) > elapsed && r.timestampUs >= this.lastTs) break;
      this.lastTs = r.timestampUs;
      this.lastPassTs = r.timestampUs;
      this.head++;
      n++;
      this.played++;
      this.rxFrames++;
      l.frame(r.frame);
      if (!this.listener) return;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      // Drop played frames from the front (amortised: at most once per half queue).
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    this.schedule();
  };
}
