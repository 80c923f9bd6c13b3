import { accessSync, constants, statSync } from "node:fs";

/** `-replay-speed` text → time scale (2 = twice as fast), or null when it is not one. Pure. */
export function replaySpeedValue(text: string): number | null {
  const t = text.trim();
  const n = Number(t);
  if (t === "" || !Number.isFinite(n) || n <= 0 || n > 10_000) return null;
  return n;
}

export const REPLAY_SPEED_HELP = "a number above 0 and at most 10000 (e.g. 1, 2, 0.5)";

/**
 * Why `-replay-file` cannot be played, or null: checked before start-up (exit 2 with one line,
 * like every configuration error) rather than failing as the backend starts.
 */
export function replayFileProblem(path: string): string | null {
  try {
    const st = statSync(path);
    if (!st.isFile()) return `-replay-file ${JSON.stringify(path)} is not a regular file`;
    accessSync(path, constants.R_OK);
    return null;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === "ENOENT" ? "no such file" : err.code === "EACCES" ? "permission denied" : err.message;
    return `-replay-file ${JSON.stringify(path)} cannot be read: ${why}`;
  }
}
