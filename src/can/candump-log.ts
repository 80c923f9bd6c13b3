/**
 * The candump log line (docs/protocols.md §9): `(SEC.USEC) IFACE FRAME` with FRAME in the
 * candump/cansend text syntax of frame.ts, optionally followed by a direction token ` R`/` T`
 * (`candump -x`). This is what `candump -l` writes, what `canplayer -I` replays, what can-utils'
 * `canlogserver` streams and what python-can's CanutilsLogReader/Writer read and write. Pure:
 * a formatter, a line parser, a whole-text parser and a resumable byte-stream line reader, all
 * reporting errors with line numbers. No I/O.
 */
import { CANFD_FDF, type CanFrame, formatFrame, FrameSyntaxError, parseFrame } from "./frame.ts";

/** One log line. `timestampUs` is microseconds since the Unix epoch (an integer, exact up to 2^53). */
export interface CandumpLogRecord {
  readonly timestampUs: number;
  readonly iface: string;
  readonly frame: CanFrame;
  /** `candump -x` direction: R received, T transmitted by this host; absent in plain logs. */
  readonly direction?: "R" | "T";
}

/** Longest interface name Linux allows (IFNAMSIZ - 1). */
export const CANDUMP_MAX_IFACE = 15;
/** Longest line the stream reader keeps: an FD frame with 64 bytes and separators fits easily. */
export const CANDUMP_MAX_LINE = 512;

export class CandumpLogSyntaxError extends Error {
  override readonly name = "CandumpLogSyntaxError";
  constructor(
    readonly line: number,
    readonly reason: string,
  ) {
    super(`line ${line}: ${reason}`);
  }
}

/** `SEC.USEC` with six microsecond digits for an integer microsecond timestamp. */
export function formatLogTimestamp(timestampUs: number): string {
  const us = Math.max(0, Math.floor(timestampUs));
  const sec = Math.floor(us / 1_000_000);
  return `${sec}.${String(us - sec * 1_000_000).padStart(6, "0")}`;
}

/**
 * Formats one line without its newline. FD frames carry the FDF bit (0x04) in their flags digit,
 * as can-utils ≥ 2023 writes them (`123##5…` for BRS); readers mask BRS/ESI from it.
 */
export function formatCandumpLogLine(rec: CandumpLogRecord): string {
  let text = formatFrame(rec.frame);
  if (rec.frame.fd) {
    const at = text.indexOf("##") + 2;
    const flags = (rec.frame.fdFlags & 0x3) | CANFD_FDF;
    text = text.slice(0, at) + flags.toString(16).toUpperCase() + text.slice(at + 1);
  }
  const line = `(${formatLogTimestamp(rec.timestampUs)}) ${rec.iface} ${text}`;
  return rec.direction ? `${line} ${rec.direction}` : line;
}

const TIMESTAMP = /^\((\d{1,12})\.(\d{1,9})\)$/;
const IFACE = /^[^\s()]{1,15}$/;

/**
 * Parses one line (without newline; a trailing CR is tolerated). Throws CandumpLogSyntaxError
 * naming `lineNumber` and the reason.
 */
export function parseCandumpLogLine(text: string, lineNumber = 1): CandumpLogRecord {
  const words = text.trim().split(/[ \t]+/);
  if (words.length < 3 || words.length > 4) {
    throw new CandumpLogSyntaxError(lineNumber, `expected "(SEC.USEC) IFACE FRAME", got ${words.length} fields`);
  }
  const [tsWord, iface, frameWord, dirWord] = words as [string, string, string, string | undefined];
  const ts = TIMESTAMP.exec(tsWord);
  if (!ts) throw new CandumpLogSyntaxError(lineNumber, `bad timestamp "${tsWord.slice(0, 40)}"`);
  const frac = ts[2]!.padEnd(6, "0").slice(0, 6);
  const timestampUs = Number(ts[1]) * 1_000_000 + Number(frac);
  if (!IFACE.test(iface)) throw new CandumpLogSyntaxError(lineNumber, `bad interface name "${iface.slice(0, 40)}"`);
  let frame: CanFrame;
  try {
    frame = parseFrame(frameWord);
  } catch (e) {
    const reason = e instanceof FrameSyntaxError ? e.message : String(e);
    throw new CandumpLogSyntaxError(lineNumber, reason);
  }
  if (dirWord === undefined) return { timestampUs, iface, frame };
  if (dirWord !== "R" && dirWord !== "T") throw new CandumpLogSyntaxError(lineNumber, `bad direction "${dirWord.slice(0, 40)}" (R or T)`);
  return { timestampUs, iface, frame, direction: dirWord };
}

export interface CandumpLogParseResult {
  readonly records: CandumpLogRecord[];
  readonly errors: CandumpLogSyntaxError[];
  /** Lines that do not start with `(` (blank lines, comments): ignored, as canplayer does. */
  readonly skipped: number;
}

/** Parses a whole log text; a bad line is reported and the rest still parsed. */
export function parseCandumpLog(text: string): CandumpLogParseResult {
  const records: CandumpLogRecord[] = [];
  const errors: CandumpLogSyntaxError[] = [];
  let skipped = 0;
  const lines = text.split("\n");
  // A final newline leaves one empty string behind: not a line.
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, "");
    if (!line.trimStart().startsWith("(")) {
      skipped++;
      continue;
    }
    try {
      records.push(parseCandumpLogLine(line, i + 1));
    } catch (e) {
      if (e instanceof CandumpLogSyntaxError) errors.push(e);
      else throw e;
    }
  }
  return { records, errors, skipped };
}

/**
 * Runs fn with stack capture off: a malformed line's error is a value here, never debugged by its
 * stack, and capturing one costs most of the time a bad line takes (a file of 260,000 malformed
 * lines took 8 s to skip with stacks).
 */
function withoutStacks(fn: () => void): void {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

export interface CandumpLogReaderEvents {
  record(rec: CandumpLogRecord): void;
  /** A line that could not be parsed (or was longer than CANDUMP_MAX_LINE); reading goes on. */
  error(err: CandumpLogSyntaxError): void;
}

/**
 * Resumable line reader for a byte stream of log lines (a file read in chunks, a canlogserver
 * socket). Holds at most CANDUMP_MAX_LINE bytes of one unfinished line; a longer line is
 * reported once and skipped up to its newline. Line numbers count from 1.
 */
export class CandumpLogReader {
  private pending = "";
  private overlong = false;
  private lineNo = 0;
  private skippedLines = 0;

  constructor(private readonly events: CandumpLogReaderEvents) {}

  /** Bytes held for an unfinished line. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Lines ignored because they do not start with `(`. */
  get skipped(): number {
    return this.skippedLines;
  }

  push(chunk: Uint8Array): void {
    withoutStacks(() => {
      let start = 0;
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== 0x0a) continue;
        this.take(chunk, start, i);
        this.endLine();
        start = i + 1;
      }
      this.take(chunk, start, chunk.length);
    });
  }

  /** Ends the stream: a last line without newline is parsed too. */
  end(): void {
    if (this.pending.length > 0 || this.overlong) withoutStacks(() => this.endLine());
  }

  private take(chunk: Uint8Array, from: number, to: number): void {
    if (this.overlong || from >= to) return;
    if (this.pending.length + (to - from) > CANDUMP_MAX_LINE) {
      this.overlong = true;
      this.pending = "";
      return;
    }
    // latin1: one character per byte, whatever the bytes are (a log line is ASCII).
    this.pending += Buffer.from(chunk.buffer, chunk.byteOffset + from, to - from).toString("latin1");
  }

  private endLine(): void {
    this.lineNo++;
    const line = this.pending.replace(/\r$/, "");
    this.pending = "";
    if (this.overlong) {
      this.overlong = false;
      this.events.error(new CandumpLogSyntaxError(this.lineNo, `line longer than ${CANDUMP_MAX_LINE} bytes`));
      return;
    }
    if (!line.trimStart().startsWith("(")) {
      this.skippedLines++;
      return;
    }
    let rec: CandumpLogRecord;
    try {
      rec = parseCandumpLogLine(line, this.lineNo);
    } catch (e) {
      if (e instanceof CandumpLogSyntaxError) this.events.error(e);
      else throw e;
      return;
    }
    this.events.record(rec);
  }
}
