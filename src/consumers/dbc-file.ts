/**
 * Reads and parses the -dbc file (the I/O edge of src/dbc/): one line for every failure, naming
 * the file and line. start-up checks it once (exit 2), the consumers take the same parse (kept
 * while the file is unchanged), and SIGHUP reads it again.
 */
import { readFileSync, statSync } from "node:fs";
import { DbcCodec, DbcParseError, dbcText, parseDbc } from "../dbc/index.ts";

export class DbcFileError extends Error {
  override name = "DbcFileError";
}

let last: { path: string; mtimeMs: number; size: number; codec: DbcCodec } | null = null;

/** The parsed file; throws DbcFileError with a one-line message. */
export function loadDbcFile(path: string): DbcCodec {
  let bytes: Uint8Array;
  let mtimeMs: number;
  let size: number;
  try {
    const st = statSync(path);
    mtimeMs = st.mtimeMs;
    size = st.size;
    if (last !== null && last.path === path && last.mtimeMs === mtimeMs && last.size === size) return last.codec;
    bytes = readFileSync(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new DbcFileError(`cannot read DBC file ${path}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : e instanceof Error ? e.message : String(e)}`);
  }
  try {
    const codec = new DbcCodec(parseDbc(dbcText(bytes), path));
    last = { path, mtimeMs, size, codec };
    return codec;
  } catch (e) {
    if (e instanceof DbcParseError) throw new DbcFileError(`DBC file ${e.message}`);
    throw e;
  }
}
