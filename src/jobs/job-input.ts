/**
 * What a transmit job is, as the API (POST/PATCH bodies), the configuration file (`[[job]]`) and
 * the state file give it: pure validation, values in, a JobSpec out; every problem a JobInputError
 * naming the field.
 */
import type { CanFrame } from "../can/frame.ts";
import { FrameJsonError, frameFromJson } from "../can/frame-json.ts";

export class JobInputError extends Error {
  override readonly name = "JobInputError";
}

/** Frames in one job's sequence at most. */
export const MAX_JOB_FRAMES = 64;
/** Shortest period: 1 ms (a 1 Mbit/s bus carries ~17 frames per ms; shorter is a flood, not a cycle). */
export const MIN_PERIOD_MS = 1;
/** Longest period: one day. */
export const MAX_PERIOD_MS = 86_400_000;
/** Longest job name. */
export const MAX_NAME = 64;

/** A job's definition (what the state file keeps). */
export interface JobSpec {
  /** One frame is sent per transmission: frames[k mod length] (a sequence cycles). */
  readonly frames: readonly CanFrame[];
  /** Time between transmissions; null: one transmission only (count must be 1). */
  readonly periodMs: number | null;
  /** Transmissions in all; null: until stopped. */
  readonly count: number | null;
  /** Wall-clock ms (Unix epoch) of the first transmission; null: now. */
  readonly startAt: number | null;
  readonly name: string;
}

const KEYS = new Set(["frame", "frames", "period_ms", "count", "start_at", "name", "bus", "id"]);

function int(v: unknown, key: string, min: number, max: number): number {
  if (typeof v === "bigint") v = Number(v);
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new JobInputError(`${key} must be an integer ${min}..${max}`);
  return v;
}

function frames(o: Record<string, unknown>): CanFrame[] {
  try {
    if (o.frames !== undefined) {
      if (o.frame !== undefined) throw new JobInputError('give either "frame" or "frames", not both');
      if (!Array.isArray(o.frames) || o.frames.length === 0 || o.frames.length > MAX_JOB_FRAMES) throw new JobInputError(`frames must be a list of 1..${MAX_JOB_FRAMES} frames`);
      return o.frames.map((f, i) => frameFromJson(f, `frames[${i}]`));
    }
    if (o.frame === undefined) throw new JobInputError('a job needs "frame" (or "frames", a sequence)');
    return [frameFromJson(o.frame, "frame")];
  } catch (e) {
    if (e instanceof FrameJsonError) throw new JobInputError(e.message);
    throw e;
  }
}

function startAt(v: unknown): number | null {
  if (v === undefined || v === null) return null;
  if (typeof v === "number" && Number.isFinite(v) && v >= 0) return Math.round(v);
  if (v instanceof Date) return v.getTime();
  if (typeof v === "string") {
    const t = Date.parse(v);
    if (Number.isFinite(t)) return t;
  }
  throw new JobInputError('start_at must be a time: an ISO 8601 string ("2026-12-07T05:00:00Z") or Unix milliseconds');
}

/** A new job from an object (API body, `[[job]]` table, state file entry). */
export function parseJobInput(v: unknown): JobSpec {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new JobInputError('a job is an object: {"frame": {...}, "period_ms": 100}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!KEYS.has(k)) throw new JobInputError(`${k} is not a job field (frame, frames, period_ms, count, start_at, name)`);
  const fs = frames(o);
  const periodMs = o.period_ms === undefined || o.period_ms === null ? null : int(o.period_ms, "period_ms", MIN_PERIOD_MS, MAX_PERIOD_MS);
  const count = o.count === undefined || o.count === null ? null : int(o.count, "count", 1, Number.MAX_SAFE_INTEGER);
  if (periodMs === null && count !== 1) throw new JobInputError("period_ms is needed (only a job with count 1 may go without)");
  const name = o.name ?? "";
  if (typeof name !== "string" || name.length > MAX_NAME) throw new JobInputError(`name must be a string of at most ${MAX_NAME} characters`);
  return { frames: fs, periodMs, count, startAt: startAt(o.start_at), name };
}

/** What a PATCH may change: frames (in place, the next transmission uses them), period, count, name. */
export interface JobPatch {
  readonly frames?: readonly CanFrame[];
  readonly periodMs?: number;
  readonly count?: number | null;
  readonly name?: string;
}

export function parseJobPatch(v: unknown): JobPatch {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new JobInputError('a change is an object: {"frame": {...}}');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (k === "start_at") throw new JobInputError("start_at cannot be changed; delete the job and create a new one");
    if (!KEYS.has(k) || k === "bus" || k === "id") throw new JobInputError(`${k} cannot be changed (frame, frames, period_ms, count, name)`);
  }
  const patch: { frames?: CanFrame[]; periodMs?: number; count?: number | null; name?: string } = {};
  if (o.frame !== undefined || o.frames !== undefined) patch.frames = frames(o);
  if (o.period_ms !== undefined) patch.periodMs = int(o.period_ms, "period_ms", MIN_PERIOD_MS, MAX_PERIOD_MS);
  if (o.count !== undefined) patch.count = o.count === null ? null : int(o.count, "count", 1, Number.MAX_SAFE_INTEGER);
  if (o.name !== undefined) {
    if (typeof o.name !== "string" || o.name.length > MAX_NAME) throw new JobInputError(`name must be a string of at most ${MAX_NAME} characters`);
    patch.name = o.name;
  }
  if (Object.keys(patch).length === 0) throw new JobInputError("nothing to change: give frame, frames, period_ms, count or name");
  return patch;
}
