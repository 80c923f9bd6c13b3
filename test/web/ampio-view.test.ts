/**
 * The dashboard's Ampio view in a real browser (Debian chromium, headless, puppeteer-core)
 * against the gateway process replaying the demo log: with decoding off the page never asks for
 * /api/ampio/modules (no 503s every 2 s); with decoding on — as `npm start` runs it — the view
 * appears and stays live; with a names file and sending on: modules grouped by room under their
 * names, outputs as on/off chips, dimmers as levels, temperatures with units, RGB as a colour,
 * ages counting up, and a chip click and a level change putting the exact frames aioampio would
 * send on the bus (seen by a real cannelloni client). Screenshots at 1400 and 400 px
 * (docs/ampio-view-*.png, refreshed with UPDATE_SCREENSHOT=1).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { formatFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";

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
      await waitText(page2, "#ampioview", "(t) => t.includes('1D4C') && t.includes('online')");
      expect(await page2.$eval("#ampiosection", (el) => (el as unknown as { hidden: boolean }).hidden)).toBe(false);
    } finally {
      await page2.close();
      await on.stop();
    }
  }, 60_000);
});

describe("the Ampio view", () => {
  test("names and rooms, chips, levels, units, colour; a click and a level change send the right frames; screenshots", async () => {
    const dir = mkdtempSync(join(tmpdir(), "can-server-ampio-view-"));
    const names = join(dir, "house.toml");
    writeFileSync(
      names,
      `[[module]]
id = "B07"
name = "Living room lights"
room = "Living room"
[module.channels]
"bout.1" = "Ceiling"
"bout.2" = "Sofa lamp"

[[module]]
id = "B0A"
name = "Dimmers"
room = "Living room"
[module.channels]
"aout.1" = "Wall lamp"

[[module]]
id = "1D4C"
name = "Hall sensor"
room = "Hall"
[module.channels]
"temperature.1" = "Hall"

[[module]]
id = "3C02"
name = "LED strip"
room = "Kitchen"
`,
    );
    const gw = await startGateway(["-backend", "replay", "-replay-file", "demo/ampio-demo.log", "-replay-loop", "-bitrate", "50000", "-ampio-decode", "true", "-web-tx", "-web-token", "tok", "-ampio-names", names]);
    const client = await CannelloniTestClient.connect(gw.cannelloni);
    await client.handshake();
    const page = await browser.newPage();
    try {
      await page.setViewport({ width: 1400, height: 1000 });
      await page.goto(`http://127.0.0.1:${gw.http}/`);
      await waitText(page, "#ampioview", "(t) => t.includes('Living room lights') && t.includes('Dimmers') && t.includes('Hall sensor') && t.includes('LED strip')");
      // Grouped by room, rooms in order, unnamed modules last.
      const rooms = await page.$$eval("#ampioview .aroom h3", (hs) => hs.map((h) => h.textContent));
      expect(rooms).toEqual(["Hall", "Kitchen", "Living room", "No room"]);
      // Outputs as chips, named ones by name; an input module's chips are not buttons one can press.
      await waitText(page, '.amod[data-module="B07"]', "(t) => t.includes('Ceiling') && t.includes('Sofa lamp')");
      const chip = await page.$eval('.amod[data-module="B07"] button.chip[title^="Ceiling"]', (b) => ({ cls: b.className, v: b.getAttribute("data-v"), disabled: (b as unknown as { disabled: boolean }).disabled }));
      expect(chip.cls).toMatch(/chip (on|off)/);
      expect(chip.disabled).toBe(false);
      expect(await page.$$eval('.amod[data-module="2A31"] button.chip', (bs) => bs.length)).toBe(48);
      expect(await page.$$eval('.amod[data-module="2A31"] button.chip:not([disabled])', (bs) => bs.length)).toBe(0);
      // A dimmer as a level, a temperature with its unit, the RGB module as a colour.
      await waitText(page, '.amod[data-module="B0A"] .level', "(t) => t.includes('Wall lamp') && / %$/.test(t.trim())");
      await waitText(page, '.amod[data-module="1D4C"]', "(t) => /Hall\\s*-?\\d+(\\.\\d)? °C/.test(t)");
      const swatch = await page.$eval('.amod[data-module="3C02"] .swatch', (e) => (e as unknown as { style: { background: string } }).style.background);
      expect(swatch).toMatch(/^rgb\(\d+, \d+, \d+\)$/);
      // Ages count up between polls: the clock module 101 spoke at the start of the loop only.
      await waitText(page, '.amod[data-module="101"]', "(t) => /clock\\s*\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}/.test(t)");
      const age1 = await page.$eval('.amod[data-module="101"] [data-at]', (e) => e.textContent);
      await Bun.sleep(2300);
      const age2 = await page.$eval('.amod[data-module="101"] [data-at]', (e) => e.textContent);
      expect(age1).toMatch(/ago|just now/);
      expect(age2).not.toBe(age1);

      // Sending: the token, a click on "Ceiling" → 15 FF|00 00 to module B07.
      await page.type("#ampiotoken", "tok");
      const before = client.frames.length;
      await page.click('.amod[data-module="B07"] button.chip[title^="Ceiling"]');
      const want = `0F000000#00000B0715${chip.v === "1" ? "FF" : "00"}00`;
      await waitText(page, "#ampiostate", `(t) => t.includes(${JSON.stringify(want)})`);
      const mine = (): string[] => client.frames.slice(before).map(formatFrame).filter((f) => f.startsWith("0F000000#00000B0715") || f.startsWith("0F000000#00000B0A15"));
      await waitFor(() => mine().includes(want), 5000, `${want} on the bus`);
      // A level change on the dimmer: 15 <level> 00 00 to module B0A.
      await page.$eval('.amod[data-module="B0A"] input[type=range]', (i) => {
        const r = i as unknown as { value: string; dispatchEvent(e: unknown): void };
        r.value = "128";
        r.dispatchEvent(new (globalThis as unknown as { Event: new (t: string, o: object) => unknown }).Event("change", { bubbles: true }));
      });
      await waitFor(() => mine().includes("0F000000#00000B0A15800000"), 5000, "the level frame on the bus");
      expect(mine()).toEqual([want, "0F000000#00000B0A15800000"]);

      const shot = (w: number): string => (process.env.UPDATE_SCREENSHOT === "1" ? join(REPO, `docs/ampio-view-${w}.png`) : join(tmpdir(), `can-server-ampio-view-${w}-${process.pid}.png`));
      const section = await page.$("#ampiosection");
      await section!.screenshot({ path: shot(1400) });
      expect(Bun.file(shot(1400)).size).toBeGreaterThan(10_000);
      await page.setViewport({ width: 400, height: 900 });
      await Bun.sleep(300);
      expect(await page.evaluate("document.documentElement.scrollWidth")).toBeLessThanOrEqual(400);
      await section!.screenshot({ path: shot(400) });
      expect(Bun.file(shot(400)).size).toBeGreaterThan(10_000);
    } finally {
      await page.close();
      client.close();
      await gw.stop();
    }
  }, 90_000);
});

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}
