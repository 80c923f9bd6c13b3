/**
 * The dashboard with two buses (issue 19 item 2), in Debian's chromium (puppeteer-core) against a
 * gateway with two virtual buses and its operations endpoint on 127.0.0.1: the header's bus
 * selector lists both; the live tail, the per-id table, the cards and the clients table show the
 * first bus; switching to the second shows its frames and table and never the first bus's again.
 * /api/status lists every bus with its backend, bit rate and rates.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser } from "puppeteer-core";
import { dataFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startOperations, type Operations } from "../../src/ops/operations.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startTwoBuses, type TwoBuses } from "../helpers/two-buses.ts";
import { launchBrowser, waitText } from "./dashboard-harness.ts";

let browser: Browser;
let tb: TwoBuses;
let ops: Operations;
let base = "";
let client1: CannelloniTestClient;
let timer: ReturnType<typeof setInterval> | null = null;

beforeAll(async () => {
  browser = await launchBrowser();
  tb = await startTwoBuses({ metricsAddr: "127.0.0.1:0" }, [{ bitrate: 500000 }, { bitrate: 125000 }]);
  ops = await startOperations(tb.config, { gateway: tb.gateway, stats: tb.stats[0]!, log: memoryLogger("warn").log, build: buildInfo(), counters: new ConsumerCounters() });
  base = `http://127.0.0.1:${ops.httpPort}`;
  // A cannelloni client on the second bus (its own listener), shown in that bus's clients table.
  client1 = await CannelloniTestClient.connect(tb.gateway.buses[1]!.port("cannelloni")!);
  await client1.handshake();
  // Traffic on both buses, bounded: 0x100 on can0, 0x7AB on can1, every 50 ms for at most 60 s.
  let n = 0;
  const t0 = Date.now();
  timer = setInterval(() => {
    if (Date.now() - t0 > 60_000) return;
    n++;
    tb.backends[0]!.inject(dataFrame(0x100, [n & 0xff]));
    tb.backends[1]!.inject(dataFrame(0x7ab, [0xaa, n & 0xff]));
  }, 50);
}, 60_000);

afterAll(async () => {
  if (timer) clearInterval(timer);
  client1?.close();
  await ops?.stop();
  await tb?.stop();
  await browser?.close();
});

test("/api/status lists every bus with its backend, bit rate and rates", async () => {
  await Bun.sleep(1200);
  const s = (await (await fetch(`${base}/api/status`)).json()) as { buses: { name: string; bitrate: number; backend: { up: boolean }; rates: { inFps: number } }[]; clients: { bus: string; protocol: string }[] };
  expect(s.buses.map((b) => [b.name, b.bitrate, b.backend.up])).toEqual([
    ["can0", 500000, true],
    ["can1", 125000, true],
  ]);
  for (const b of s.buses) expect(b.rates.inFps).toBeGreaterThan(5);
  expect(s.clients.find((c) => c.protocol === "cannelloni")?.bus).toBe("can1");
});

test("switching bus in the header shows the other bus's frames, per-id table, bit rate and clients", async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`${base}/`);
    await waitText(page, "#conn", "(t) => t === 'live'");
    // the selector appears with both buses; the first is shown
    await page.waitForFunction('!document.getElementById("bus").hidden', { timeout: 5000 });
    expect(await page.$$eval("#bus option", (os) => os.map((o) => o.getAttribute("value")))).toEqual(["can0", "can1"]);
    // no [[route]] tables: no Routes panel
    expect(await page.$eval("#routesection", (e) => e.hasAttribute("hidden"))).toBe(true);
    await waitText(page, "#tail", "(t) => t.includes('100#')");
    await waitText(page, "#sniffer", "(t) => t.includes('100')");
    await waitText(page, "#bitrate", "(t) => t.includes('500 kbit/s')");
    expect(await page.$eval("#tail", (e) => e.textContent)).not.toContain("7AB#");
    expect(await page.$eval("#clients", (e) => e.textContent)).not.toContain("cannelloni");

    await page.select("#bus", "can1");
    await waitText(page, "#tail", "(t) => t.includes('7AB#AA')");
    await waitText(page, "#sniffer", "(t) => t.includes('7AB') && !t.includes('100')");
    await waitText(page, "#bitrate", "(t) => t.includes('125 kbit/s')");
    await waitText(page, "#clients", "(t) => t.includes('cannelloni')");
    // from now on only can1's frames: 1 s of traffic later the tail holds no 100# line
    await Bun.sleep(1000);
    const tail = (await page.$eval("#tail", (e) => e.textContent)) ?? "";
    expect(tail).toContain("7AB#AA");
    expect(tail).not.toContain(" 100#");
    expect(errors).toEqual([]);
  } finally {
    await page.close();
  }
}, 60_000);

test("360 px: the header with the bus selector does not make the page scroll sideways", async () => {
  const page = await browser.newPage();
  try {
    await page.setViewport({ width: 360, height: 800 });
    await page.goto(`${base}/`);
    await waitText(page, "#conn", "(t) => t === 'live'");
    await page.waitForFunction('!document.getElementById("bus").hidden', { timeout: 5000 });
    const widths = (await page.evaluate("({ scroll: document.scrollingElement.scrollWidth, inner: window.innerWidth })")) as { scroll: number; inner: number };
    expect(widths.scroll).toBeLessThanOrEqual(widths.inner);
  } finally {
    await page.close();
  }
}, 30_000);
