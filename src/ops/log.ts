/**
 * Structured logger: `text` (logfmt key=value) or `json` lines, levels debug|info|warn|error,
 * stable event names as the message. Components receive a Logger (never a global), so a test can
 * capture what they report by passing its own sink.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export type LogFields = Record<string, string | number | boolean | bigint | null | undefined>;

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(event: string, fields?: LogFields): void;
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

export type LogSink = (line: string) => void;

function logfmtValue(v: unknown): string {
  const s = String(v);
  return s === "" || /[\s"=\\]/.test(s) ? JSON.stringify(s) : s;
}

export function formatLine(format: LogFormat, time: Date, level: LogLevel, event: string, fields: LogFields): string {
  if (format === "json") {
    const obj: Record<string, unknown> = { time: time.toISOString(), level, msg: event };
    for (const [k, v] of Object.entries(fields)) {
      if (v !== undefined) obj[k] = typeof v === "bigint" ? v.toString() : v;
    }
    return JSON.stringify(obj);
  }
  let line = `time=${time.toISOString()} level=${level} msg=${logfmtValue(event)}`;
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${logfmtValue(v)}`;
  return line;
}

class LineLogger implements Logger {
  constructor(
    private readonly format: LogFormat,
    private readonly min: number,
    private readonly sink: LogSink,
    private readonly base: LogFields,
  ) {}

  private write(level: LogLevel, event: string, fields?: LogFields): void {
    if (RANK[level] < this.min) return;
    this.sink(formatLine(this.format, new Date(), level, event, fields ? { ...this.base, ...fields } : this.base));
  }
  debug(event: string, fields?: LogFields): void {
    this.write("debug", event, fields);
  }
  info(event: string, fields?: LogFields): void {
    this.write("info", event, fields);
  }
  warn(event: string, fields?: LogFields): void {
    this.write("warn", event, fields);
  }
  error(event: string, fields?: LogFields): void {
    this.write("error", event, fields);
  }
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.min;
  }
  child(fields: LogFields): Logger {
    return new LineLogger(this.format, this.min, this.sink, { ...this.base, ...fields });
  }
}

/** Logs go to stderr by default (stdout stays free for -version and -help). */
export function createLogger(format: LogFormat, level: LogLevel, sink: LogSink = (l) => process.stderr.write(l + "\n")): Logger {
  return new LineLogger(format, RANK[level], sink, {});
}

/** A logger that keeps lines in memory: for tests. */
export function memoryLogger(level: LogLevel = "debug"): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger("json", level, (l) => lines.push(l)), lines };
}

export const silentLogger: Logger = createLogger("text", "error", () => {});
