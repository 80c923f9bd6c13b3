/**
 * Starts the processes a benchmark measures and learns their ports: can-server itself
 * (`bun src/main.ts …` or a compiled binary, JSON logs, ports read from its `ready` line) and the
 * reference forwarders (which print "port N"). Only loopback addresses are used. The C reference
 * is compiled once into .cache/ with the system's cc; without a compiler it is skipped.
 */
import type { Subprocess } from "bun";
import { existsSync, mkdirSync, statSync } from "node:fs";
import path from "node:path";

const ROOT = path.resolve(import.meta.dir, "../..");
export const MAIN = path.join(ROOT, "src/main.ts");

export interface Launched {
  readonly proc: Subprocess<"pipe", "pipe", "pipe">;
  readonly pid: number;
  /** Bound port per protocol ("cannelloni", "waveshare", …). */
  readonly ports: Record<string, number>;
  /** Log lines (JSON objects for can-server, raw text otherwise) seen on stderr so far. */
  readonly log: string[];
  stop(): Promise<void>;
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) env[k] = v;
  return env;
}

function collect(stream: ReadableStream<Uint8Array>, into: string[], onLine?: (line: string) => void): void {
  void (async () => {
    let buf = "";
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (into.length < 10_000) into.push(line);
        onLine?.(line);
      }
    }
  })();
}

async function until<T>(get: () => T | undefined, ms: number, what: string, proc: Subprocess): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${what} not seen within ${ms} ms (exit ${proc.exitCode})`);
    await Bun.sleep(5);
  }
}

function stopper(proc: Subprocess<"pipe", "pipe", "pipe">): () => Promise<void> {
  return async () => {
    try {
      proc.stdin.end();
    } catch {
      // already closed
    }
    if (proc.exitCode === null) proc.kill("SIGTERM");
    const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
    await proc.exited;
    clearTimeout(t);
  };
}

/**
 * can-server with `args` (JSON logs added). `runner` is the command before the arguments:
 * default `bun src/main.ts`; a compiled binary's path; or `bun --smol src/main.ts`.
 * `shellPrefix` (e.g. `ulimit -n 4096;`) runs before exec.
 */
export async function launchCanServer(
  args: readonly string[],
  opts: { runner?: readonly string[]; shellPrefix?: string; env?: Record<string, string>; readyTimeoutMs?: number } = {},
): Promise<Launched> {
  const runner = opts.runner ?? [process.execPath, MAIN];
  const all = [...runner, ...args, "-log-format", "json"];
  const cmd = opts.shellPrefix ? ["bash", "-c", `${opts.shellPrefix} exec "$@"`, "bash", ...all] : all;
  const proc = Bun.spawn(cmd, { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...cleanEnv(), ...opts.env } });
  const log: string[] = [];
  let listeners: string | undefined;
  collect(proc.stderr, log, (line) => {
    if (listeners !== undefined || !line.includes('"msg":"ready"')) return;
    try {
      listeners = String((JSON.parse(line) as { listeners?: unknown }).listeners ?? "");
    } catch {
      // not JSON
    }
  });
  collect(proc.stdout, []);
  const text = await until(() => listeners, opts.readyTimeoutMs ?? 15_000, "can-server ready line", proc);
  const ports: Record<string, number> = {};
  for (const pair of text.split(",")) {
    const [name, port] = pair.split("=");
    if (name && port) ports[name] = Number(port);
  }
  return { proc, pid: proc.pid, ports, log, stop: stopper(proc) };
}

/** A process that prints "port N" on stdout once listening (the reference forwarders). */
export async function launchPortPrinter(cmd: readonly string[], env?: Record<string, string>): Promise<Launched> {
  const proc = Bun.spawn([...cmd], { stdin: "pipe", stdout: "pipe", stderr: "pipe", env: { ...cleanEnv(), ...env } });
  const log: string[] = [];
  let port: number | undefined;
  collect(proc.stdout, log, (line) => {
    const m = /^port (\d+)/.exec(line);
    if (m && port === undefined) port = Number(m[1]);
  });
  collect(proc.stderr, log);
  const p = await until(() => port, 15_000, `"port N" from ${cmd.join(" ")}`, proc);
  return { proc, pid: proc.pid, ports: { cannelloni: p }, log, stop: stopper(proc) };
}

/** Path of the compiled C reference forwarder, built on first use; null without a C compiler. */
export function cReference(): string | null {
  const src = path.join(ROOT, "scripts/bench/ref-forwarder.c");
  const outDir = path.join(ROOT, ".cache/bench");
  const out = path.join(outDir, "ref-forwarder");
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return out;
  mkdirSync(outDir, { recursive: true });
  for (const cc of ["cc", "gcc", "clang"]) {
    if (!Bun.which(cc)) continue;
    const r = Bun.spawnSync([cc, "-O2", "-o", out, src], { stdout: "inherit", stderr: "inherit" });
    if (r.exitCode === 0) return out;
  }
  return null;
}
