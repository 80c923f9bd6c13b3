/**
 * Shared by the dashboard tests: the compiled binary (built once per test process, so the assets
 * are the embedded ones a release serves), started with ephemeral ports read from its JSON log,
 * and Debian's chromium, headless, via puppeteer-core.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";

export const REPO = resolve(import.meta.dir, "../..");
const BIN_DIR = join(REPO, "dist/web-test");
export const BIN = join(BIN_DIR, "can-server");

let built: Promise<void> | null = null;
/** Compiles src/main.ts into dist/web-test/can-server once per process. */
export function buildBinary(): Promise<void> {
  built ??= (async () => {
    mkdirSync(BIN_DIR, { recursive: true });
    const build = Bun.spawn([process.execPath, "build", "--compile", "src/main.ts", "--outfile", BIN], { cwd: REPO, stderr: "pipe", stdout: "pipe" });
    if ((await build.exited) !== 0) throw new Error(`build failed: ${await new Response(build.stderr).text()}`);
  })();
  return built;
}

export interface Running {
  proc: ReturnType<typeof Bun.spawn>;
  http: number;
  cannelloni: number;
  /** Every JSON log line so far. */
  lines: Record<string, unknown>[];
  stop(): Promise<void>;
}

/** Starts the compiled binary; ports come from its JSON log lines. */
export async function startBinary(args: string[], env: Record<string, string> = {}): Promise<Running> {
  await buildBinary();
  const proc = Bun.spawn([BIN, "-listen", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-log-format", "json", ...args], { cwd: REPO, stdout: "ignore", stderr: "pipe", env: { ...process.env, ...env } });
  const reader = proc.stderr.getReader();
  const lines: Record<string, unknown>[] = [];
  let buf = "";
  let http = 0;
  let cannelloni = 0;
  const take = (): void => {
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (!line.startsWith("{")) continue;
      const e = JSON.parse(line) as { msg: string; addr?: string; protocol?: string };
      lines.push(e);
      if (e.msg === "metrics_listen" && e.addr) http = Number(e.addr.split(":").pop());
      if (e.msg === "tcp_listen" && e.protocol === "cannelloni" && e.addr) cannelloni = Number(e.addr.split(":").pop());
    }
  };
  const deadline = Date.now() + 15_000;
  while ((http === 0 || cannelloni === 0) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += new TextDecoder().decode(value);
    take();
  }
  // Keep draining stderr so the process never blocks on a full pipe.
  void (async () => {
    for (;;) {
      const r = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (r.done) return;
      buf += new TextDecoder().decode(r.value);
      take();
    }
  })();
  if (!http || !cannelloni) {
    proc.kill();
    throw new Error(`binary did not report its ports; log so far:\n${buf}`);
  }
  return {
    proc,
    http,
    cannelloni,
    lines,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

/** `extraArgs`: more chromium switches (e.g. --host-resolver-rules to point a name at loopback). */
export function launchBrowser(extraArgs: readonly string[] = []): Promise<Browser> {
  return puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", ...extraArgs] });
}

/** Waits until `pred` (a function source taking the element's text) holds for `selector`'s text. */
export async function waitText(page: Page, selector: string, pred: string, timeoutMs = 8000): Promise<void> {
  await page.waitForFunction(`(() => { const el = document.querySelector(${JSON.stringify(selector)}); return !!el && (${pred})(el.textContent || ""); })()`, { timeout: timeoutMs, polling: 100 });
}
