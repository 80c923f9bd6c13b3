/**
 * The jobs' state file (`<state-dir>/jobs.json`): written atomically (a temporary file in the same
 * directory, fsync, rename, fsync of the directory), so a power cut leaves the old file or the new
 * one, never half of one. A file that cannot be read back is set aside (`jobs.json.bad-<time>`),
 * never overwritten, and the reason logged.
 */
import { accessSync, constants, mkdirSync, readFileSync, renameSync } from "node:fs";
import { mkdir, open, rename } from "node:fs/promises";
import { join } from "node:path";

export const STATE_FILE = "jobs.json";

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/**
 * Writes `text` to dir/name atomically; asynchronous, so the fsyncs never hold up the event loop
 * (the jobs' timer). Rejects on an I/O error (the caller logs and counts it).
 */
export async function writeAtomic(dir: string, name: string, text: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, final);
  // The rename itself is durable only once the directory is.
  const dh = await open(dir, "r");
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** The file's text, or null when there is none yet. */
export function readState(dir: string): string | null {
  try {
    return readFileSync(statePath(dir), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Moves an unreadable state file aside; returns its new name. */
export function setAside(dir: string): string {
  const to = `${statePath(dir)}.bad-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  renameSync(statePath(dir), to);
  return to;
}

/** Why `dir` cannot hold the state (created if missing), or null: a start-up configuration check. */
export function stateDirProblem(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK | constants.X_OK);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "EACCES" || code === "EPERM" ? "permission denied" : code === "ENOTDIR" || code === "EEXIST" ? "not a directory" : code === "EROFS" ? "read-only file system" : code === "ENOENT" ? "it does not exist and cannot be created" : e instanceof Error ? e.message : String(e);
    return `-state-dir ${dir}: cannot write there (${why})`;
  }
}
