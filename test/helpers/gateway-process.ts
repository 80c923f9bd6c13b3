/**
 * The gateway as its own process (`bun src/main.ts …`, JSON logs), so a test can measure what
 * the process itself costs (RssAnon and RssFile from /proc/PID/status, CPU from /proc/PID/stat)
 * while real clients hurt it, and can send it signals. Ports are ephemeral and read back from the
 * log. An optional shell prefix (e.g. `ulimit -n 256;`) runs before exec.
 */
import type { Subprocess } from "bun";
import { readdirSync, readFileSync } from "node:fs";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

export type LogLine = { msg: string; [k: string]: unknown };

export interface GatewayProcess {
  readonly proc: Subprocess<"ignore", "ignore", "pipe">;
  readonly lines: LogLine[];
  /** Bound port per protocol ("cannelloni", "waveshare", …) and "http". */
  readonly ports: Record<string, number>;
  waitFor(msg: string, ms?: number, pred?: (l: LogLine) => boolean): Promise<LogLine>;
  /** Private (anonymous) and file-backed resident memory in KiB. */
  memory(): { rssAnonKiB: number; rssFileKiB: number };
  /** User+system CPU seconds so far. */
  cpuSeconds(): number;
  openFds(): number;
  /** GET on the HTTP endpoint; resolves with status, body and how long it took. */
  http(path: string, timeoutMs?: number): Promise<{ status: number; body: string; ms: number }>;
  /** A counter or gauge from /metrics (sum over label sets matching `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<number>;
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) env[k] = v;
  return env;
}

export interface GatewayProcessOptions {
  /** Shell commands run before exec, e.g. "ulimit -n 256;". */
  readonly shellPrefix?: string;
  /** A compiled can-server binary to run instead of `bun src/main.ts`. */
  readonly binary?: string;
  /**
   * Which log lines to keep in `lines` (default all); every line is still passed to `onLine`.
   * A long soak keeps only the few it reads, so the harness's memory stays bounded.
   */
  readonly keep?: (line: LogLine) => boolean;
  readonly onLine?: (line: LogLine) => void;
}

export async function startGatewayProcess(args: string[], opts: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const all = ["-backend", "virtual", "-listen", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", ...args, "-log-format", "json"];
  const exe = opts.binary ? [opts.binary] : [process.execPath, MAIN];
  const cmd = opts.shellPrefix ? ["bash", "-c", `${opts.shellPrefix} exec "$0" "$@"`, ...exe, ...all] : [...exe, ...all];
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "ignore", stderr: "pipe", env: cleanEnv() });
  const lines: LogLine[] = [];
  void (async () => {
    let buf = "";
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let parsed: LogLine;
        try {
          parsed = JSON.parse(line) as LogLine;
        } catch {
          parsed = { msg: "unparsed", line };
        }
        opts.onLine?.(parsed);
        if (!opts.keep || opts.keep(parsed)) lines.push(parsed);
      }
    }
  })();
  const waitFor = async (msg: string, ms = 10_000, pred: (l: LogLine) => boolean = () => true): Promise<LogLine> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const l = lines.find((x) => x.msg === msg && pred(x));
      if (l) return l;
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no ${msg} line within ${ms} ms; got ${lines.map((x) => x.msg).join(",")}`);
      await Bun.sleep(10);
    }
  };
  const ports: Record<string, number> = {};
  try {
    // `listening`: the ports are open (`ready` follows only once the backend is up).
    const ready = await waitFor("listening", 15_000);
    for (const pair of String(ready.listeners).split(",")) {
      const [name, port] = pair.split("=");
      if (name && port) ports[name] = Number(port);
    }
    const metricsLine = await waitFor("metrics_listen");
    ports.http = Number(String(metricsLine.addr).split(":").pop());
  } catch (e) {
    // No caller holds the process yet: do not leave it running (a failed soak left gateways behind).
    proc.kill("SIGKILL");
    await proc.exited;
    throw e;
  }
  const status = (): string => readFileSync(`/proc/${proc.pid}/status`, "utf8");
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status())?.[1] ?? NaN);
  const http = async (path: string, timeoutMs = 5000): Promise<{ status: number; body: string; ms: number }> => {
    const t0 = performance.now();
    const r = await fetch(`http://127.0.0.1:${ports.http}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await r.text();
    return { status: r.status, body, ms: performance.now() - t0 };
  };
  return {
    proc,
    lines,
    ports,
    waitFor,
    memory: () => ({ rssAnonKiB: kib("RssAnon"), rssFileKiB: kib("RssFile") }),
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${proc.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
    },
    openFds: () => readdirSync(`/proc/${proc.pid}/fd`).length,
    http,
    metric: async (name, labels = {}) => {
      const { body } = await http("/metrics");
      let sum = 0;
      for (const line of body.split("\n")) {
        if (!line.startsWith(name)) continue;
        const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
        if (!m || m[1] !== name) continue;
        const ok = Object.entries(labels).every(([k, v]) => (m[2] ?? "").includes(`${k}="${v}"`));
        if (ok) sum += Number(m[3]);
      }
      return sum;
    },
    stop: async () => {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
}
