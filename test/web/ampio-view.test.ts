/**
 * The dashboard's Ampio parts in a real browser (Debian chromium, headless, puppeteer-core)
 * against the gateway process replaying the demo log: with decoding off the page never asks for
 * /api/ampio/modules (no 503s every 2 s); with decoding on — as `npm start` runs it — the Ampio
 * panel appears and stays live.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";

const REPO = resolve(import.meta.dir, "../..");
const MAIN = resolve(REPO, "src/main.ts");

interface Running {
  http: number;
  cannelloni: number;
  stop(): Promise<void>;
}

/** Starts the gateway (bun src/main.ts); ports come from its JSON log lines. */
async function startGateway(args: string[]): Promise<Running> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) env[k] = v;
  const proc = Bun.spawn([process.execPath, MAIN, "-listen", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-log-format", "json", ...args], { cwd: REPO, stdout: "ignore", stderr: "pipe", env });
  const reader = proc.stderr.getReader();
  let buf = "";
  let http = 0;
  let cannelloni = 0;
  const deadline = Date.now() + 15_000;
  while ((http === 0 || cannelloni === 0) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += new TextDecoder().decode(value);
    for (const line of buf.split("\n")) {
      if (!line.startsWith("{")) continue;
      let e: { msg: string; addr?: string; protocol?: string };
      try {
        e = JSON.parse(line) as typeof e;
      } catch {
        continue;
      }
      if (e.msg === "metrics_listen" && e.addr) http = Number(e.addr.split(":").pop());
      if (e.msg === "tcp_listen" && e.protocol === "cannelloni" && e.addr) cannelloni = Number(e.addr.split(":").pop());
    }
  }
  void (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
  })();
  if (!http || !cannelloni) {
    proc.kill();
    throw new Error(`gateway did not report its ports; log so far:\n${buf}`);
  }
  return {
    http,
    cannelloni,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

let browser: Browser;
beforeAll(async () => {
  browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

async function waitText(page: Page, selector: string, pred: string, timeoutMs = 8000): Promise<void> {
  await page.waitForFunction(`(() => { const el = document.querySelector(${JSON.stringify(selector)}); return !!el && (${pred})(el.textContent || ""); })()`, { timeout: timeoutMs, polling: 100 });
}

describe("polling only what is on", () => {
  test("decoding off: the page never requests /api/ampio/modules; on (npm start's flags): the panel is live", async () => {
    const off = await startGateway(["-backend", "replay", "-replay-file", "demo/ampio-demo.log", "-replay-loop", "-ampio-decode", "false"]);
    const page = await browser.newPage();
    try {
      const asked: string[] = [];
      page.on("request", (r) => {
        if (r.url().includes("/api/ampio")) asked.push(r.url());
      });
      await page.goto(`http://127.0.0.1:${off.http}/`);
      await waitText(page, "#conn", "(t) => t === 'live'");
      await Bun.sleep(5000); // two poll periods and several status updates
      expect(asked).toEqual([]);
      expect(await page.$eval("#ampiosection", (el) => (el as unknown as { hidden: boolean }).hidden)).toBe(true);
    } finally {
      await page.close();
      await off.stop();
    }

    // package.json's start script turns decoding on; its flags here.
    const pkg = (await Bun.file(resolve(REPO, "package.json")).json()) as { scripts: { start: string } };
    expect(pkg.scripts.start).toContain("-ampio-decode true");
    const on = await startGateway(["-backend", "replay", "-replay-file", "demo/ampio-demo.log", "-replay-loop", "-bitrate", "50000", "-ampio-decode", "true"]);
    const page2 = await browser.newPage();
    try {
      await page2.goto(`http://127.0.0.1:${on.http}/`);
      await waitText(page2, "#ampio tbody", "(t) => t.includes('00001D4C') && t.includes('online')");
      expect(await page2.$eval("#ampiosection", (el) => (el as unknown as { hidden: boolean }).hidden)).toBe(false);
    } finally {
      await page2.close();
      await on.stop();
    }
  }, 60_000);
});
