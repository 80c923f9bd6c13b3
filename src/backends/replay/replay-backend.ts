/**
 * `-backend replay -replay-file FILE`: plays a candump log (`candump -l`, python-can's
 * CanutilsLogWriter, this gateway's -record files) onto the hub with the original timing, scaled
 * by `-replay-speed`, once or in a loop (`-replay-loop`). People develop against a recorded
 * installation without hardware. The bus is "up" as long as the backend runs (also after the
 * last frame). Client frames are accepted and counted like on the virtual bus (so they are echoed
 * per the hub's echo rules). A malformed line is skipped, counted and logged with its line
 * number (the first MAX_LOGGED; then a summary); FD frames are skipped (counted) unless -fd.
 *
 * The file is read and parsed once at start (at most MAX_FILE_BYTES; a -record file is 16 MiB by
 * default). Timing is absolute (each frame is due at start + (t − t₀)/speed), so timer jitter
 * never accumulates; a timestamp that goes backwards (concatenated logs) plays at once.
 */
import { readFile, stat } from "node:fs/promises";
import type { CanFrame } from "../../can/frame.ts";
import { parseCandumpLog, type CandumpLogRecord } from "../../can/candump-log.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { BackendFatalError, commonTxRefusal, type Backend, type BackendListener, type SendResult, type TxRequest } from "../backend.ts";

export const MAX_FILE_BYTES = 256 * 1024 * 1024;
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

/** -replay-speed text → number, or why not. */
export function parseReplaySpeed(text: string): number {
  const n = Number(text.trim());
  if (text.trim() === "" || !Number.isFinite(n) || n <= 0 || n > 10_000) {
    throw new BackendFatalError(`-replay-speed must be a number above 0 and at most 10000 (e.g. 1, 2, 0.5), got ${JSON.stringify(text)}`);
  }
  return n;
}

export class ReplayBackend implements Backend {
  readonly kind = "replay" as const;
  readonly fdCapable: boolean;
  /** Frames played onto the hub. */
  rxFrames = 0;
  /** Client frames "written" to the replayed bus. */
  txFrames = 0;
  /** Lines that did not parse, and the first line numbers. */
  malformedLines = 0;
  readonly malformedLineNumbers: number[] = [];
  /** FD frames skipped because -fd is off. */
  skippedFd = 0;
  /** Times the file was played to its end. */
  passes = 0;
  private records: readonly CandumpLogRecord[] = [];
  private listener: BackendListener | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private next = 0;
  private startedAt = 0;

  constructor(private readonly opts: ReplayBackendOptions) {
    this.fdCapable = opts.fd;
  }

  get up(): boolean {
    return this.listener !== null;
  }

  get downReason(): string {
    return this.listener ? "" : "replay stopped";
  }

  /** Frames in the file (after skipping malformed lines). */
  get frameCount(): number {
    return this.records.length;
  }

  /** Position in the current pass. */
  get position(): number {
    return this.next;
  }

  async start(listener: BackendListener): Promise<void> {
    const { file, log } = this.opts;
    let text: string;
    try {
      const st = await stat(file);
      if (st.size > MAX_FILE_BYTES) throw new BackendFatalError(`replay file ${file} is ${st.size} bytes; at most ${MAX_FILE_BYTES} are read (split it, e.g. with split -l)`);
      text = await readFile(file, "latin1");
    } catch (e) {
      if (e instanceof BackendFatalError) throw e;
      throw new BackendFatalError(`cannot read replay file ${JSON.stringify(file)}: ${(e as Error).message}`);
    }
    const parsed = parseCandumpLog(text);
    this.malformedLines = parsed.errors.length;
    for (const err of parsed.errors) {
      if (this.malformedLineNumbers.length < 100) this.malformedLineNumbers.push(err.line);
      if (this.malformedLineNumbers.length <= MAX_LOGGED) log.warn("replay_malformed_line", { file, line: err.line, reason: err.reason });
    }
    const records = this.opts.fd ? parsed.records : parsed.records.filter((r) => !r.frame.fd);
    this.skippedFd = parsed.records.length - records.length;
    this.records = records;
    log.info("replay_loaded", {
      file,
      frames: records.length,
      malformed_lines: this.malformedLines,
      skipped_fd: this.skippedFd,
      ignored_lines: parsed.skipped,
      duration_s: records.length > 1 ? (records[records.length - 1]!.timestampUs - records[0]!.timestampUs) / 1e6 : 0,
      speed: this.opts.speed,
      loop: this.opts.loop,
    });
    this.listener = listener;
    this.opts.stats.backendUp = true;
    listener.state(true, `replaying ${file}`);
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
    l?.state(false, "replay stopped");
  }

  private beginPass(): void {
    this.next = 0;
    this.startedAt = performance.now();
    this.schedule();
  }

  /** Milliseconds after the pass started at which record i is due. */
  private dueAt(i: number): number {
    const t0 = this.records[0]!.timestampUs;
    return Math.max(0, this.records[i]!.timestampUs - t0) / 1000 / this.opts.speed;
  }

  private schedule(): void {
    if (!this.listener) return;
    if (this.next >= this.records.length) {
      this.passes++;
      if (this.opts.loop && this.records.length > 0) {
        // One frame interval (at least 1 ms) between passes, so a loop never spins.
        this.timer = setTimeout(() => this.beginPass(), 1);
        return;
      }
      this.opts.log.info("replay_finished", { file: this.opts.file, frames: this.rxFrames });
      return;
    }
    const wait = this.dueAt(this.next) - (performance.now() - this.startedAt);
    this.timer = setTimeout(this.tick, Math.max(0, wait));
  }

  private readonly tick = (): void => {
    this.timer = null;
    const l = this.listener;
    if (!l) return;
    const elapsed = performance.now() - this.startedAt;
    let n = 0;
    let lastTs = this.next > 0 ? this.records[this.next - 1]!.timestampUs : -Infinity;
    while (this.next < this.records.length && n < MAX_PER_TURN) {
      const r = this.records[this.next]!;
      // Due, or a timestamp that went backwards (plays at once).
      if (this.dueAt(this.next) > elapsed && r.timestampUs >= lastTs) break;
      lastTs = r.timestampUs;
      this.next++;
      n++;
      this.rxFrames++;
      l.frame(r.frame);
      if (!this.listener) return;
    }
    this.schedule();
  };
}
