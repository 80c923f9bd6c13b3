/**
 * The dashboard's signals view in a real browser (Debian chromium, headless, puppeteer-core)
 * against the compiled binary with -dbc: values change as a real cannelloni client's frames
 * arrive, the filter narrows the table, ticked signals are plotted over time (uPlot) and Pause
 * freezes the plot; with several buses a selector switches the table to each bus's DBC. With
 * UPDATE_SCREENSHOT=1 it saves docs/dashboard-signals.png.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { dataFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { buildBinary, launchBrowser, REPO, startBinary, waitText } from "../web/dashboard-harness.ts";

let browser: Browser;
beforeAll(async () => {
  await buildBinary();
  browser = await launchBrowser();
}, 120_000);
afterAll(async () => {
  await browser?.close();
});

/** Points of plotted series `i` (1-based) that hold a value (page code as text: no DOM types in this project). */
async function plottedPoints(page: Page, i: number): Promise<number[]> {
  return (await page.evaluate(`(() => { const c = window.CanServer.charts.signals; return c === undefined ? [] : (c.data[${i}] || []).filter((v) => v !== null); })()`)) as number[];
}

async function waitPoints(page: Page, i: number, more: number): Promise<void> {
  await page.waitForFunction(`(() => { const c = window.CanServer.charts.signals; return c !== undefined && c.data[${i}].filter((v) => v !== null).length > ${more}; })()`, { timeout: 8000, polling: 100 });
}

test("signals table and live plot follow the bus; filter; pause", async () => {
  const gw = await startBinary(["-backend", "virtual", "-dbc", "test/fixtures/dbc/coverage.dbc"]);
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  try {
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(`http://127.0.0.1:${gw.http}/`);
    await waitText(page, "#conn", "(t) => t === 'live'");
    await page.waitForFunction(`!document.getElementById("signalsection").hidden`, { timeout: 8000 });

    const client = await CannelloniTestClient.connect(gw.cannelloni);
    await client.handshake();
    client.send(dataFrame(0x106, [0b0110, 130]));
    await waitText(page, "#signals tbody", "(t) => t.includes('OilTemp') && t.includes('90 degC') && t.includes('N')");
    client.send(dataFrame(0x106, [0b0111, 131]));
    await waitText(page, "#signals tbody", "(t) => t.includes('91 degC') && t.includes('D')");
    client.send(dataFrame(0x200, [0x01, 0x7d, 0, 0, 0, 0, 0, 9]));
    await waitText(page, "#signals tbody", "(t) => t.includes('P1Volt') && t.includes('12.5 V')");

    // Filter: only OilTemp.
    await page.type("#signalmatch", "oiltemp");
    await page.click("#signalfilter button[type=submit]");
    await waitText(page, "#signals tbody", "(t) => t.includes('OilTemp') && !t.includes('P1Volt')");
    expect(await page.$$eval("#signals tbody tr", (rows) => rows.length)).toBe(1);

    // Plot OilTemp and P1Volt while they change.
    await page.click("#signals input[data-key='Gearbox.OilTemp']");
    await page.evaluate(`document.getElementById("signalmatch").value = ""`);
    await page.click("#signalfilter button[type=submit]");
    await page.waitForSelector("#signals input[data-key='SimpleMux.P1Volt']", { timeout: 5000 });
    await page.click("#signals input[data-key='SimpleMux.P1Volt']");
    // The screenshot gets a longer sweep in a 1-minute window; the test itself needs 3 s.
    const shot = process.env.UPDATE_SCREENSHOT === "1";
    if (shot) await page.select("#plotwindow", "60");
    for (let i = 0; i < (shot ? 250 : 30); i++) {
      const temp = 40 + Math.round(30 * Math.sin(i / 4)) + 40; // raw = °C + 40
      const volt = 120 + Math.round(15 * Math.cos(i / 5)); // 0.1 V steps
      client.send(dataFrame(0x106, [0b0111, temp]), dataFrame(0x200, [0x01, volt & 0xff, (volt >> 8) & 0x0f, 0, 0, 0, 0, 9]));
      await Bun.sleep(100);
    }
    await waitPoints(page, 1, 7);
    const temps = await plottedPoints(page, 1);
    expect(new Set(temps).size).toBeGreaterThan(3); // the values moved
    expect(Math.min(...temps)).toBeGreaterThanOrEqual(10);
    expect(Math.max(...temps)).toBeLessThanOrEqual(91); // 91: the value before the sweep
    expect((await plottedPoints(page, 2)).length).toBeGreaterThan(3);
    expect(await page.$eval("#plotstate", (el) => el.textContent ?? "")).toContain("2 signal(s)");
    expect(await page.$eval("#signalchart .u-legend", (el) => el.textContent ?? "")).toContain("Gearbox.OilTemp (degC)");

    if (process.env.UPDATE_SCREENSHOT === "1") {
      const el = await page.$("#signalsection");
      await el!.screenshot({ path: join(REPO, "docs", "dashboard-signals.png") });
    } else {
      await page.screenshot({ path: join(tmpdir(), `can-server-${process.pid}-signals.png`) });
    }

    // A phone: the panel and its plot fit 360 px without sideways page scroll.
    await page.setViewport({ width: 360, height: 800 });
    await Bun.sleep(300);
    expect(await page.evaluate(`document.documentElement.scrollWidth`)).toBeLessThanOrEqual(360);
    expect(await page.evaluate(`document.getElementById("signalchart").getBoundingClientRect().right`)).toBeLessThanOrEqual(360);
    await page.setViewport({ width: 1280, height: 900 });

    // Pause: the plot stops moving while frames keep coming; Resume catches up.
    await page.click("#plotpause");
    const frozen = (await plottedPoints(page, 1)).length;
    for (let i = 0; i < 8; i++) {
      client.send(dataFrame(0x106, [0b0111, 100 + i]));
      await Bun.sleep(100);
    }
    expect((await plottedPoints(page, 1)).length).toBe(frozen);
    expect(await page.$eval("#plotstate", (el) => el.textContent ?? "")).toContain("paused");
    await page.click("#plotpause");
    await waitPoints(page, 1, frozen);
    client.close();
    expect(errors).toEqual([]);
  } finally {
    await page.close();
    await gw.stop();
  }
}, 90_000);

test("several buses: a bus selector; each bus's table is its own DBC's", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dbc-dash-"));
  const other = join(dir, "other.dbc");
  writeFileSync(other, 'BO_ 262 Other: 2 X\n SG_ Whole : 0|16@1+ (1,0) [0|65535] "rpm" X\n');
  const config = join(dir, "buses.toml");
  const bus = (name: string, dbc: string) => `[[bus]]\nname = "${name}"\nbackend = "virtual"\nlisten = "127.0.0.1:0"\ndbc = "${dbc}"\n`;
  writeFileSync(config, `${bus("body", join(REPO, "test/fixtures/dbc/coverage.dbc"))}\n${bus("chassis", other)}`);
  const gw = await startBinary(["-config", config]);
  const page = await browser.newPage();
  try {
    const port = (name: string) => Number(String(gw.lines.find((l) => l.msg === "tcp_listen" && l.bus === name && l.protocol === "cannelloni")!.addr).split(":").pop());
    const body = await CannelloniTestClient.connect(port("body"));
    const chassis = await CannelloniTestClient.connect(port("chassis"));
    await body.handshake();
    await chassis.handshake();
    body.send(dataFrame(0x106, [0b0110, 130]));
    chassis.send(dataFrame(0x106, [0x34, 0x12]));
    await page.setViewport({ width: 1280, height: 900 });
    await page.goto(`http://127.0.0.1:${gw.http}/`);
    await waitText(page, "#signals tbody", "(t) => t.includes('OilTemp') && t.includes('90 degC')");
    expect(await page.$eval("#signalbus", (el) => (el as unknown as { hidden: boolean }).hidden)).toBe(false);
    expect(await page.$$eval("#signalbus option", (os) => os.map((o) => o.textContent))).toEqual(["body", "chassis"]);
    await page.select("#signalbus", "chassis");
    await waitText(page, "#signals tbody", "(t) => t.includes('Whole') && t.includes('4660 rpm') && !t.includes('OilTemp')");
    expect(await page.$eval("#nsignals", (el) => el.textContent ?? "")).toContain("chassis");
    body.close();
    chassis.close();
  } finally {
    await page.close();
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
