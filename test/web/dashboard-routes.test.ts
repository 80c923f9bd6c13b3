/**
 * Routes on the dashboard and in the API, and the per-bus rate chart (issue 19 item 3), in
 * Debian's chromium (puppeteer-core) against a gateway composed from a two-bus configuration file
 * with one route (virtual buses, operations endpoint on 127.0.0.1, real HTTP):
 * - the Routes panel lists the route (name, from → to, filters, rewrite, hop limit, rate) and its
 *   routed/sent counts rise as matching frames arrive on the source bus; GET /api/v1/routes says
 *   the same and matches the OpenAPI document; a gateway without routes hides the panel;
 * - /api/history?bus=NAME is that bus's history; the frames/s chart follows the bus selector
 *   (checked on the chart's data: can0 carries ~20 frames/s in, can1 ~10).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { loadConfiguration } from "../../src/cli/config-file.ts";
import { startGateway, type BusSpec, type Gateway } from "../../src/gateway.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startOperations, type Operations } from "../../src/ops/operations.ts";
import { Stats } from "../../src/ops/stats.ts";
import { apiClient } from "../helpers/api-client.ts";
import { launchBrowser, waitText } from "./dashboard-harness.ts";

const CONFIG = `
metrics-addr = "127.0.0.1:0"

[[bus]]
name = "can0"
backend = "virtual"
listen = "127.0.0.1:0"

[[bus]]
name = "can1"
backend = "virtual"
listen = "127.0.0.1:0"

[[route]]
name = "body"
from = "can0"
to = "can1"
filter = ["100/700"]
id-xor = "200"
hop-limit = 1
`;

let browser: Browser;
let gateway: Gateway;
let backends: VirtualBackend[] = [];
let ops: Operations;
let base = "";
let port = 0;
let timer: ReturnType<typeof setInterval> | null = null;
let sent0 = 0;

beforeAll(async () => {
  browser = await launchBrowser();
  const dir = mkdtempSync(join(tmpdir(), "routes-ui-"));
  const path = join(dir, "can-server.toml");
  writeFileSync(path, CONFIG);
  const conf = loadConfiguration(["-config", path], {});
  rmSync(dir, { recursive: true, force: true });
  const { log } = memoryLogger("warn");
  const specs: BusSpec[] = conf.buses.map((b) => {
    const stats = new Stats();
    const backend = new VirtualBackend({ stats, log, fd: b.config.fd });
    backends.push(backend);
    return { name: b.name, config: b.config, backend, stats };
  });
  gateway = await startGateway(conf.config, { stats: specs[0]!.stats, log, buses: specs, routes: conf.routes });
  ops = await startOperations(conf.config, { gateway, stats: specs[0]!.stats, log, build: buildInfo(), counters: new ConsumerCounters() });
  port = ops.httpPort!;
  base = `http://127.0.0.1:${port}`;
  // Bounded traffic (at most 60 s): can0 0x123 (routed) and 0x7AB (filtered out) every 100 ms, so
  // can0 carries ~20 frames/s in; can1 only the routed 0x323 (~10 frames/s).
  const t0 = Date.now();
  timer = setInterval(() => {
    if (Date.now() - t0 > 60_000) return;
    backends[0]!.inject(dataFrame(0x123, [sent0++ & 0xff]));
    backends[0]!.inject(dataFrame(0x7ab, [1]));
  }, 100);
}, 60_000);

afterAll(async () => {
  if (timer) clearInterval(timer);
  await ops?.stop();
  await gateway?.shutdown(500);
  await browser?.close();
});

interface RouteJson {
  name: string;
  from: string;
  to: string;
  filters: string[];
  rewrite: Record<string, string> | null;
  hop_limit: number;
  rate: number;
  counts: Record<"routed" | "sent" | "dropped" | "hop_limit" | "rate_limited", number>;
}

test("GET /api/v1/routes lists the route with its counts, matching the OpenAPI document; counts rise", async () => {
  const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as Record<string, unknown>;
  const call = apiClient(port, () => doc);
  const first = await call("GET", "/api/v1/routes");
  expect(first.status).toBe(200);
  const r1 = (first.body as { routes: RouteJson[] }).routes;
  expect(r1.map(({ counts: _c, ...rest }) => rest)).toEqual([{ name: "body", from: "can0", to: "can1", filters: ["100/700"], rewrite: { xor: "200" }, hop_limit: 1, rate: 0 }]);
  await Bun.sleep(600);
  const r2 = ((await call("GET", "/api/v1/routes")).body as { routes: RouteJson[] }).routes[0]!;
  expect(r2.counts.routed).toBeGreaterThan(r1[0]!.counts.routed);
  expect(r2.counts.sent).toBeGreaterThan(0);
  // Only 0x123 passes 100/700: routed never exceeds what was injected as 0x123.
  expect(r2.counts.routed).toBeLessThanOrEqual(sent0);
  expect(r2.counts.dropped + r2.counts.hop_limit + r2.counts.rate_limited).toBe(0);
  expect((await call("POST", "/api/v1/routes")).status).toBe(405);
}, 20_000);

async function routeCell(page: Page, col: number): Promise<number> {
  return Number(await page.$eval(`#routes tbody tr[data-route="body"] td:nth-child(${col})`, (e) => e.textContent));
}

test("the Routes panel shows the route and its counts rise as matching frames arrive", async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`${base}/`);
    await waitText(page, "#conn", "(t) => t === 'live'");
    await page.waitForFunction('!document.getElementById("routesection").hidden', { timeout: 5000 });
    const row = (await page.$eval('#routes tbody tr[data-route="body"]', (e) => [...e.querySelectorAll("td")].map((td) => td.textContent))) as string[];
    expect(row.slice(0, 6)).toEqual(["body", "can0 → can1", "100/700", "xor 200", "1", "–"]);
    const routed = await routeCell(page, 7);
    // the next status ticks carry higher counts (10 matching frames a second)
    await page.waitForFunction(`Number(document.querySelector('#routes tbody tr[data-route="body"] td:nth-child(7)')?.textContent) > ${routed + 5}`, { timeout: 5000 });
    expect(await routeCell(page, 8)).toBeGreaterThan(0);
    // sent/s: about 10 a second
    await page.waitForFunction(`Number(document.querySelector('#routes tbody tr[data-route="body"] td:nth-child(12)')?.textContent) >= 5`, { timeout: 5000 });
    expect(errors).toEqual([]);
  } finally {
    await page.close();
  }
}, 30_000);

test("/api/history?bus=NAME is that bus's history; an unknown bus is 404; no bus = all buses", async () => {
  await Bun.sleep(2500);
  const all = (await (await fetch(`${base}/api/history`)).json()) as { inFps: number[] };
  const h0 = (await (await fetch(`${base}/api/history?bus=can0`)).json()) as { bus: string; inFps: number[]; t: number[] };
  const h1 = (await (await fetch(`${base}/api/history?bus=can1`)).json()) as { bus: string; inFps: number[]; outFps: number[] };
  expect(h0.bus).toBe("can0");
  expect(h1.bus).toBe("can1");
  const last = (a: number[]): number => a[a.length - 1]!;
  // can0: 0x123 and 0x7AB, 10 a second each; can1: the routed frames (out: a producer's, on the bus)
  expect(last(h0.inFps)).toBeGreaterThan(14);
  expect(last(h0.inFps)).toBeLessThan(26);
  expect(last(all.inFps)).toBeGreaterThan(last(h0.inFps) - 1);
  expect(last(h1.inFps) + last(h1.outFps)).toBeGreaterThan(6);
  expect(last(h1.inFps) + last(h1.outFps)).toBeLessThan(14);
  expect((await fetch(`${base}/api/history?bus=can9`)).status).toBe(404);
}, 20_000);

test("the frames/s chart follows the bus selector (its data, not pixels)", async () => {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`${base}/`);
    await waitText(page, "#conn", "(t) => t === 'live'");
    await page.waitForFunction('!document.getElementById("bus").hidden', { timeout: 5000 });
    // The chart's data: [t[], in[], out[]]; the newest "in" and "out" of the shown bus.
    const DATA = "window.CanServer.charts.overview.plot.data";
    const newest = async (): Promise<{ inFps: number; outFps: number }> => {
      const d = (await page.evaluate(DATA)) as number[][];
      const n = d[0]!.length;
      return { inFps: d[1]![n - 1] ?? -1, outFps: d[2]![n - 1] ?? -1 };
    };
    await page.waitForFunction(`window.CanServer.charts.overview && ${DATA}[0].length >= 2`, { timeout: 5000 });
    const on0 = await newest();
    expect(on0.inFps).toBeGreaterThan(14);
    expect(await page.$eval("#chartlabel", (e) => e.textContent)).toContain("chosen bus");
    await page.select("#bus", "can1");
    // can1's history replaces can0's: its newest sample carries ~10 frames/s (the routed ones), not ~20
    await page.waitForFunction(`(() => { const d = ${DATA}; const n = d[0].length; const v = d[1][n - 1] + d[2][n - 1]; return n >= 2 && v < 14 && v > 6; })()`, { timeout: 5000 });
    const on1 = await newest();
    // the whole series is can1's: the same as /api/history?bus=can1 over the samples both hold
    const h1 = (await (await fetch(`${base}/api/history?bus=can1`)).json()) as { t: number[]; inFps: number[] };
    const chart = (await page.evaluate(DATA)) as number[][];
    const byT = new Map(h1.t.map((t, i) => [t, h1.inFps[i]]));
    const common = chart[0]!.map((t, i) => [byT.get(t), chart[1]![i]] as const).filter(([a]) => a !== undefined);
    expect(common.length).toBeGreaterThan(1);
    for (const [a, b] of common) expect(b).toBeCloseTo(a!, 1);
    expect(on1.inFps + on1.outFps).toBeLessThan(14);
    await page.select("#bus", "can0");
    await page.waitForFunction(`(() => { const d = ${DATA}; const n = d[0].length; return n >= 2 && d[1][n - 1] > 14; })()`, { timeout: 5000 });
    expect(errors).toEqual([]);
  } finally {
    await page.close();
  }
}, 30_000);
