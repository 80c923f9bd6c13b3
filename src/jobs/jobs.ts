/**
 * Transmit jobs the gateway owns (issue 21 item 2): a job sends a frame (or cycles through a
 * sequence) every period, or a number of times, from now or from a given time. It belongs to the
 * gateway, not to the client that created it, and it survives a restart when -state-dir is set
 * (./state-file.ts); jobs from the configuration file (`[[job]]`) are created at every start.
 *
 * Each job is its own TX producer: its own lane (own share, so its own -client-tx-rate bucket),
 * counted per job. A job is never sent late: the n-th transmission is due at start + n·period on
 * the monotonic clock (no drift); one that cannot go when due — the previous one still waiting in
 * its lane, the bus down, the process stalled past half a period — is skipped and counted, never
 * queued up behind.
 *
 * One timer for all jobs: it wakes at the earliest due time and sends every job due within
 * SLACK_MS, so 100 jobs at 10 ms cost at most one wake per millisecond, not 10,000 timers a second.
 */
import { randomBytes } from "node:crypto";
import type { CanFrame } from "../can/frame.ts";
import type { Hub } from "../hub/hub.ts";
import type { TxLane, TxOutcome } from "../hub/tx-scheduler.ts";
import type { Logger } from "../ops/log.ts";
import { frameToJson, type FrameJson } from "../can/frame-json.ts";
import { parseJobInput, type JobPatch, type JobSpec } from "./job-input.ts";
import { readState, setAside, STATE_FILE, statePath, writeAtomic } from "./state-file.ts";

/** A job due this close to now is sent in the same wake (setTimeout has 1 ms resolution). */
export const SLACK_MS = 1;
/** Jobs at most (all buses). */
export const MAX_JOBS = 1000;
/** A transmission later than this share of its period (capped) is skipped as late. */
const LATE_SHARE = 0.5;
const LATE_CAP_MS = 100;
/** setTimeout's longest delay (2^31-1 ms, 24.8 days): a longer one fires after 1 ms instead. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export type JobSource = "api" | "config";
export type JobState = "scheduled" | "running" | "finished";
/** Why a transmission was skipped: its predecessor still waiting, the process too late, or the lane's drop reason. */
export type SkipReason = "pending" | "late" | Exclude<TxOutcome, "sent">;

export interface JobBus {
  readonly name: string;
  readonly hub: Hub;
}

export interface JobsOptions {
  readonly buses: readonly JobBus[];
  readonly log: Logger;
  /** -state-dir ("" = jobs created by the API live in memory only). */
  readonly stateDir: string;
  readonly allocateId: () => number;
}

/** Totals over all jobs (metrics). */
export interface JobTotals {
  sent: number;
  readonly skipped: Map<SkipReason, number>;
  stateWriteFailures: number;
}

export class JobError extends Error {
  override readonly name = "JobError";
  constructor(
    message: string,
    /** HTTP status the API answers with. */
    readonly status: number,
  ) {
    super(message);
  }
}

export class Job {
  /** Transmissions due so far (sent or skipped). */
  k = 0;
  sent = 0;
  readonly skipped = new Map<SkipReason, number>();
  /** Monotonic ms of transmission 0. */
  start: number;
  /** Monotonic ms the next transmission is due. */
  nextDue: number;
  /** Starts "now": its clock starts at the first wake of the timer, so set-up work is not lateness. */
  startsNow: boolean;
  /** A frame in its lane whose outcome is not known yet. */
  pending = false;
  finished = false;
  readonly createdAt = Date.now();
  /** The frame of the last transmission that reached the bus. */
  lastSent: CanFrame | null = null;

  constructor(
    readonly id: string,
    readonly bus: JobBus,
    public spec: JobSpec,
    readonly source: JobSource,
    readonly lane: TxLane,
    now: number,
  ) {
    this.startsNow = spec.startAt === null;
    const wait = spec.startAt === null ? 0 : spec.startAt - Date.now();
    this.start = now + wait;
    if (wait < 0 && spec.periodMs !== null) {
      // Started in the past (a restart): keep its phase, go on with the next period boundary.
      this.k = Math.ceil(-wait / spec.periodMs);
      this.start = now + wait;
    }
    this.nextDue = this.start + this.k * (spec.periodMs ?? 0);
    if (spec.count !== null && this.k >= spec.count) this.finished = true;
  }

  get state(): JobState {
    if (this.finished) return "finished";
    return this.k === 0 && this.nextDue > performance.now() ? "scheduled" : "running";
  }

  skip(reason: SkipReason, totals: JobTotals): void {
    this.skipped.set(reason, (this.skipped.get(reason) ?? 0) + 1);
    totals.skipped.set(reason, (totals.skipped.get(reason) ?? 0) + 1);
  }
}

export interface JobJson {
  id: string;
  bus: string;
  name: string;
  source: JobSource;
  state: JobState;
  frames: FrameJson[];
  period_ms: number | null;
  count: number | null;
  start_at: string | null;
  created_at: string;
  transmissions: number;
  sent: number;
  skipped: Record<string, number>;
  /** Wall-clock time of the next transmission (null when finished). */
  next_at: string | null;
  persistent: boolean;
}

export class Jobs {
  private readonly jobs = new Map<string, Job>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = Infinity;
  private stopped = false;
  /** A state write is under way / another one is wanted after it. */
  private writing: Promise<void> | null = null;
  private dirty = false;
  readonly totals: JobTotals = { sent: 0, skipped: new Map(), stateWriteFailures: 0 };

  constructor(private readonly opts: JobsOptions) {}

  /** Whether API-created jobs survive a restart (-state-dir set). */
  get persistent(): boolean {
    return this.opts.stateDir !== "";
  }

  get size(): number {
    return this.jobs.size;
  }

  /** Starts the configuration file's jobs, then those the state file kept. */
  load(configJobs: readonly { readonly bus: string; readonly spec: JobSpec; readonly id: string }[]): void {
    for (const c of configJobs) this.add(c.bus, c.spec, "config", c.id);
    if (!this.persistent) return;
    const dir = this.opts.stateDir;
    let text: string | null;
    try {
      text = readState(dir);
    } catch (e) {
      this.opts.log.warn("jobs_state_unreadable", { path: statePath(dir), error: e instanceof Error ? e.message : String(e) });
      return;
    }
    if (text === null) return;
    let entries: { id: string; bus: string; spec: JobSpec }[];
    try {
      const doc = JSON.parse(text) as { version?: unknown; jobs?: unknown };
      if (doc.version !== 1 || !Array.isArray(doc.jobs)) throw new Error("not a version 1 jobs file");
      entries = doc.jobs.map((j: unknown) => {
        const o = j as Record<string, unknown>;
        if (typeof o.id !== "string" || typeof o.bus !== "string") throw new Error("a job without id or bus");
        const { id, bus, ...rest } = o;
        return { id, bus, spec: parseJobInput(rest) };
      });
    } catch (e) {
      const aside = setAside(dir);
      this.opts.log.warn("jobs_state_unreadable", { path: statePath(dir), set_aside: aside, error: e instanceof Error ? e.message : String(e) });
      return;
    }
    let n = 0;
    for (const e of entries) {
      if (!this.opts.buses.some((b) => b.name === e.bus)) {
        this.opts.log.warn("job_dropped", { job: e.id, bus: e.bus, reason: "no such bus in this configuration" });
        continue;
      }
      if (this.jobs.has(e.id)) continue;
      this.add(e.bus, e.spec, "api", e.id);
      n++;
    }
    this.opts.log.info("jobs_restored", { jobs: n, path: statePath(dir) });
    // Jobs for buses that are gone are not kept.
    if (n !== entries.length) void this.save();
  }

  list(bus?: string): Job[] {
    return [...this.jobs.values()].filter((j) => bus === undefined || j.bus.name === bus);
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** Creates and starts a job (API); saved to the state file when there is one. */
  create(bus: string, spec: JobSpec): Job {
    if (this.stopped) throw new JobError("the gateway is shutting down", 503);
    if (this.jobs.size >= MAX_JOBS) {
      // Finished jobs stay listed (their counts) until deleted, or until their place is needed.
      const done = [...this.jobs.values()].find((j) => j.finished && j.source === "api");
      if (!done) throw new JobError(`there are already ${MAX_JOBS} jobs; delete some first`, 409);
      this.jobs.delete(done.id);
      done.lane.close();
    }
    const job = this.add(bus, spec, "api", newId());
    void this.save();
    return job;
  }

  update(job: Job, patch: JobPatch): void {
    if (job.source === "config") throw new JobError("this job comes from the configuration file; change it there", 409);
    const spec = job.spec;
    const periodMs = patch.periodMs ?? spec.periodMs;
    job.spec = {
      frames: patch.frames ?? spec.frames,
      periodMs,
      count: patch.count !== undefined ? patch.count : spec.count,
      startAt: spec.startAt,
      name: patch.name ?? spec.name,
    };
    if (patch.periodMs !== undefined && patch.periodMs !== spec.periodMs && !job.finished) {
      // A new period starts counting from the next transmission (no burst to catch up, no gap).
      job.start = job.nextDue - job.k * patch.periodMs;
    }
    if (job.spec.count !== null && job.k >= job.spec.count) job.finished = true;
    void this.save();
    this.arm();
  }

  remove(job: Job): void {
    if (job.source === "config") throw new JobError("this job comes from the configuration file; remove it there", 409);
    this.jobs.delete(job.id);
    job.finished = true;
    job.lane.close();
    this.opts.log.info("job_stopped", { job: job.id, bus: job.bus.name, sent: job.sent, ...Object.fromEntries([...job.skipped].map(([r, n]) => [`skipped_${r}`, n])) });
    void this.save();
    this.arm();
  }

  /** Stops every timer (shutdown) and writes what counted jobs have left; resolves once written. */
  async stop(): Promise<void> {
    if (this.stopped) return this.flushed();
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const j of this.jobs.values()) j.lane.close();
    if (this.jobs.size > 0) void this.save();
    await this.flushed();
  }

  /** Resolves once every change so far is in the state file (or its write failed, logged). */
  async flushed(): Promise<void> {
    while (this.writing) await this.writing;
  }

  toJson(job: Job): JobJson {
    const p = job.spec.periodMs;
    return {
      id: job.id,
      bus: job.bus.name,
      name: job.spec.name,
      source: job.source,
      state: job.state,
      frames: job.spec.frames.map(frameToJson),
      period_ms: p,
      count: job.spec.count,
      start_at: job.spec.startAt === null ? null : new Date(job.spec.startAt).toISOString(),
      created_at: new Date(job.createdAt).toISOString(),
      transmissions: job.k,
      sent: job.sent,
      skipped: Object.fromEntries(job.skipped),
      next_at: job.finished ? null : new Date(Date.now() + Math.max(0, job.nextDue - performance.now())).toISOString(),
      persistent: job.source === "config" || this.persistent,
    };
  }

  private add(busName: string, spec: JobSpec, source: JobSource, id: string): Job {
    const bus = this.opts.buses.find((b) => b.name === busName);
    if (!bus) throw new JobError(`no bus ${busName}`, 404);
    const lane = bus.hub.openTx({ id: this.opts.allocateId(), protocol: "job", remote: `job/${id}` }, false, "buffered");
    const job = new Job(id, bus, spec, source, lane, performance.now());
    this.jobs.set(id, job);
    this.opts.log.info("job_started", { job: id, bus: busName, source, period_ms: spec.periodMs, count: spec.count, frames: spec.frames.length, ...(spec.name ? { name: spec.name } : {}) });
    this.arm();
    return job;
  }

  /**
   * Writes the API jobs to the state file (atomically, in the background: one write at a time, the
   * latest state after it); a failure is logged and counted, the jobs keep running.
   */
  private save(): Promise<void> {
    if (!this.persistent) return Promise.resolve();
    this.dirty = true;
    this.writing ??= (async () => {
      while (this.dirty) {
        this.dirty = false;
        await this.writeOnce();
      }
      this.writing = null;
    })();
    return this.writing;
  }

  private async writeOnce(): Promise<void> {
    const jobs = [...this.jobs.values()]
      .filter((j) => j.source === "api" && !j.finished)
      .map((j) => ({
        id: j.id,
        bus: j.bus.name,
        name: j.spec.name,
        frames: j.spec.frames.map((f) => {
          const { text: _text, ...rest } = frameToJson(f);
          return rest;
        }),
        period_ms: j.spec.periodMs,
        // What is left of a counted job.
        count: j.spec.count === null ? null : Math.max(1, j.spec.count - j.k),
        ...(j.spec.startAt !== null && j.k === 0 ? { start_at: j.spec.startAt } : {}),
      }));
    try {
      await writeAtomic(this.opts.stateDir, STATE_FILE, `${JSON.stringify({ version: 1, jobs }, null, 1)}\n`);
    } catch (e) {
      this.totals.stateWriteFailures++;
      this.opts.log.error("jobs_state_write_failed", { path: statePath(this.opts.stateDir), error: e instanceof Error ? e.message : String(e) });
    }
  }

  /** Sets the one timer to the earliest due job. */
  private arm(): void {
    if (this.stopped) return;
    let due = Infinity;
    for (const j of this.jobs.values()) if (!j.finished && j.nextDue < due) due = j.nextDue;
    if (due === this.timerAt && this.timer !== null) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = due;
    if (due === Infinity) return;
    // A job further ahead than setTimeout can wait: wake at the limit and arm again.
    this.timer = setTimeout(() => this.wake(), Math.min(MAX_TIMER_MS, Math.max(0, due - performance.now())));
  }

  private wake(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = performance.now();
    let finishedSome = false;
    for (const j of this.jobs.values()) {
      if (j.finished || j.nextDue > now + SLACK_MS) continue;
      this.transmit(j, now);
      if (j.finished) finishedSome = true;
    }
    if (finishedSome) void this.save();
    this.arm();
  }

  /** The job's due transmission(s) at `now`: missed ones skipped, the current one sent or skipped. */
  private transmit(j: Job, now: number): void {
    if (j.startsNow) {
      j.startsNow = false;
      j.start = j.nextDue = now;
    }
    const p = j.spec.periodMs;
    const count = j.spec.count;
    if (p !== null) {
      // Periods the process slept through entirely: skipped, never sent in a burst.
      const behind = Math.floor((now - j.nextDue) / p);
      for (let i = 0; i < behind && !(count !== null && j.k >= count); i++) {
        j.skip("late", this.totals);
        j.k++;
      }
    }
    if (count !== null && j.k >= count) {
      j.finished = true;
      return;
    }
    const due = j.start + j.k * (p ?? 0);
    const late = now - due;
    const frame = j.spec.frames[j.k % j.spec.frames.length]!;
    j.k++;
    const allowance = Math.min(LATE_CAP_MS, (p ?? Infinity) * LATE_SHARE);
    if (late > allowance) j.skip("late", this.totals);
    else if (j.pending) j.skip("pending", this.totals);
    else {
      j.pending = true;
      // Its deadline is the job's allowance, not -tx-max-age: a frame held up in its lane or the
      // backend (a stalled bus) past it is dropped as expired, never sent late when the bus recovers.
      const maxAgeMs = Math.max(1, allowance - Math.max(0, late));
      j.lane.send(frame, (o) => {
        j.pending = false;
        if (o === "sent") {
          j.sent++;
          j.lastSent = frame;
          this.totals.sent++;
        } else j.skip(o, this.totals);
      }, maxAgeMs);
    }
    if (count !== null && j.k >= count) j.finished = true;
    j.nextDue = j.start + j.k * (p ?? 0);
  }
}

function newId(): string {
  return randomBytes(6).toString("hex");
}
