/**
 * The dashboard's CAN state pill in a real browser (Debian chromium, headless, puppeteer-core):
 * hidden for a bus whose backend reports no controller; with a report, the state, TEC/REC and
 * restarts, coloured warn for warning/passive and bad for bus-off, following each change. No CAN
 * controller exists on this machine, so the virtual backend is given a health() report by the test
 * (a stand-in, said so here); the gateway, HTTP endpoint, WebSocket and page are real.
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import type { BusHealth } from "../../src/backends/backend.ts";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway } from "../../src/gateway.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startOperations } from "../../src/ops/operations.ts";
import { Stats } from "../../src/ops/stats.ts";

let browser: Browser;
beforeAll(async () => {
  browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
let stops: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const s of stops.reverse()) await s();
  stops = [];
});

class ReportingBackend extends VirtualBackend {
  report: BusHealth | null = null;
  health(): BusHealth | null {
    return this.report;
  }
}

async function start(): Promise<{ backend: ReportingBackend; page: Page }> {
  const config: Config = { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", metricsAddr: "127.0.0.1:0" };
  const stats = new Stats();
  const { log } = memoryLogger("info");
  const backend = new ReportingBackend({ stats, log, fd: false });
  const gateway = await startGateway(config, { stats, log, backend });
  stops.push(() => gateway.shutdown(200));
  const ops = await startOperations(config, { gateway, stats, log, build: buildInfo(), counters: new ConsumerCounters() });
  stops.push(() => ops.stop());
  const page = await browser.newPage();
  stops.push(() => page.close());
  await page.goto(`http://127.0.0.1:${ops.httpPort}/`);
  return { backend, page };
}

async function pill(page: Page): Promise<{ hidden: boolean; text: string; cls: string }> {
  return page.$eval("#bushealth", (el) => ({ hidden: (el as unknown as { hidden: boolean }).hidden, text: el.textContent ?? "", cls: el.className }));
}

async function waitPill(page: Page, pred: (p: { hidden: boolean; text: string; cls: string }) => boolean, what: string): Promise<{ hidden: boolean; text: string; cls: string }> {
  const deadline = Date.now() + 8000;
  let p = await pill(page);
  while (!pred(p)) {
    if (Date.now() > deadline) throw new Error(`pill never showed ${what} (is ${JSON.stringify(p)})`);
    await Bun.sleep(100);
    p = await pill(page);
  }
  return p;
}

test("no controller: no pill; warning, passive, bus-off and back follow the backend's report", async () => {
  const { backend, page } = await start();
  await page.waitForFunction(`document.querySelector("#backend").textContent.startsWith("virtual: up")`, { timeout: 8000 });
  expect((await pill(page)).hidden).toBe(true);

  backend.report = { state: "error-warning", txErrors: 97, rxErrors: 2, restarts: 0, errorFrames: { crtl_warning: 1 } };
  let p = await waitPill(page, (x) => !x.hidden && x.text.includes("error-warning"), "error-warning");
  expect(p.text).toBe("CAN: error-warning (TEC 97, REC 2)");
  expect(p.cls).toBe("pill warn");

  backend.report = { state: "bus-off", txErrors: 256, rxErrors: 2, restarts: 0, busOff: 1 };
  p = await waitPill(page, (x) => x.text.includes("bus-off"), "bus-off");
  expect(p.cls).toBe("pill bad");

  backend.report = { state: "error-active", txErrors: 0, rxErrors: 0, restarts: 1, busOff: 1 };
  p = await waitPill(page, (x) => x.text.includes("error-active"), "error-active");
  expect(p.text).toBe("CAN: error-active (TEC 0, REC 0), 1 restarts");
  expect(p.cls).toBe("pill ok");
}, 60_000);
