/**
 * The dashboard as a web page, in Debian's chromium against the compiled binary (embedded assets,
 * uPlot included): at 360, 400, 768 and 1400 px the page never scrolls sideways, every panel is
 * on screen, the title stays on one line, the filter's placeholder fits its box; a page opened
 * after minutes of traffic draws the gateway's rate history at once (uPlot, time axis); one
 * address form, 24-hour times, a favicon, a footer that says whether sending is on. Then the
 * gateway stops and the page shows its state as unknown, not the last "up". Screenshots go to
 * docs/ when UPDATE_SCREENSHOT=1 (otherwise to the temp folder, so a test run leaves the tree clean).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { launchBrowser, REPO, startBinary, waitText, type Running } from "./dashboard-harness.ts";

const WIDTHS = [360, 400, 768, 1400] as const;
/** The panels a user must be able to see at every width. */
const PANELS = ["#overview", "#chart", "#clientsection", "#framesection", "#sniffersection", "#ampiosection", "footer"];

let browser: Browser;
let gw: Running;
let client: CannelloniTestClient;
beforeAll(async () => {
  browser = await launchBrowser();
  gw = await startBinary(["-backend", "replay", "-replay-file", "demo/ampio-demo.log", "-replay-loop", "-ampio-decode", "true"]);
  client = await CannelloniTestClient.connect(gw.cannelloni);
  await client.handshake();
  // Traffic before any page exists: the history a page opened later must show.
  await Bun.sleep(4000);
}, 120_000);
afterAll(async () => {
  client?.close();
  await gw?.stop();
  await browser?.close();
});

function shotPath(name: string): string {
  return process.env.UPDATE_SCREENSHOT === "1" ? join(REPO, "docs", name) : join(tmpdir(), `can-server-${process.pid}-${name}`);
}

async function open(width: number): Promise<{ page: Page; errors: string[]; openedAt: number }> {
  const page = await browser.newPage();
  const openedAt = Date.now();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.setViewport({ width, height: 900 });
  const res = await page.goto(`http://127.0.0.1:${gw.http}/`);
  expect(res?.status()).toBe(200);
  await waitText(page, "#conn", "(t) => t === 'live'");
  await waitText(page, "#fin", "(t) => /^\\d+$/.test(t)", 3000);
  await waitText(page, "#ampioview", "(t) => t.includes('online')");
  await waitText(page, "#tail", "(t) => t.includes('#')");
  return { page, errors, openedAt };
}

for (const width of WIDTHS) {
  test(`${width} px: no sideways scroll, every panel visible, history drawn at once`, async () => {
    const { page, errors, openedAt } = await open(width);
    try {
      // In the page (a string: the type checker here has no DOM).
      const layout = (await page.evaluate(`(() => {
        const box = (sel) => {
          const el = document.querySelector(sel);
          if (!el) return { sel, missing: true };
          const r = el.getBoundingClientRect();
          return { sel, width: Math.round(r.width), height: Math.round(r.height), left: Math.round(r.left), right: Math.round(r.right), hidden: el.hidden };
        };
        const input = document.getElementById("filter");
        const ctx = document.createElement("canvas").getContext("2d");
        const style = getComputedStyle(input);
        ctx.font = style.font;
        const h1 = document.querySelector("h1");
        return {
          scrollWidth: document.scrollingElement.scrollWidth,
          innerWidth,
          panels: ${JSON.stringify(PANELS)}.map(box),
          titleLines: Math.round(h1.getBoundingClientRect().height / parseFloat(getComputedStyle(h1).lineHeight)),
          placeholderFits: ctx.measureText(input.placeholder).width <= input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
          uplot: typeof window.uPlot === "function" && !!document.querySelector("#chart .uplot canvas"),
        };
      })()`)) as {
        scrollWidth: number;
        innerWidth: number;
        panels: { sel: string; missing?: true; width?: number; height?: number; left?: number; right?: number; hidden?: boolean }[];
        titleLines: number;
        placeholderFits: boolean;
        uplot: boolean;
      };
      expect(layout.scrollWidth).toBeLessThanOrEqual(layout.innerWidth);
      for (const p of layout.panels) {
        expect({ ...p, visible: !("missing" in p) && !p.hidden && p.width! > 0 && p.height! > 0 && p.left! >= 0 && p.right! <= width }).toMatchObject({ sel: p.sel, visible: true });
      }
      expect(layout.titleLines).toBe(1);
      expect(layout.placeholderFits).toBe(true);
      expect(layout.uplot).toBe(true);

      // History: the chart holds the samples the gateway kept before this page opened.
      const history = (await page.evaluate(`(() => {
        const d = window.CanServer.charts.overview.plot.data;
        return { points: d[0].length, first: d[0][0], maxIn: Math.max(...d[1]) };
      })()`)) as { points: number; first: number; maxIn: number };
      expect(history.points).toBeGreaterThanOrEqual(3);
      // Samples from before the page existed (the gateway ran 4 s before the first page opened).
      expect(history.first * 1000).toBeLessThan(openedAt - 2500);
      expect(history.maxIn).toBeGreaterThan(0);

      // One address form (127.0.0.1:port, never [::ffff:127.0.0.1]:port); 24-hour times.
      const rows = (await page.evaluate(`[...document.querySelectorAll("#clients tbody tr")].map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent))`)) as string[][];
      const remotes = rows.map((r) => r[2]!);
      expect(remotes.some((r) => /^127\.0\.0\.1:\d+$/.test(r))).toBe(true);
      expect(remotes.filter((r) => r.includes("::ffff:"))).toEqual([]);
      for (const r of rows) expect(r[3]!).toMatch(/^(\d{4}-\d{2}-\d{2} )?([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/);
      for (const r of rows) expect(r[3]!).not.toStartWith("1970"); // a wall-clock time, not a monotonic one
      expect(await page.$eval("#tail", (el) => el.textContent ?? "")).toMatch(/^([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3} {2}\S+#/m);

      // The footer tells the truth: this gateway runs without -web-tx.
      expect(await page.$eval("#sending", (el) => el.textContent ?? "")).toStartWith("off");
      expect(errors).toEqual([]);
      // docs/: the phone (360), tablet (768) and desktop (1400) views.
      const name = width === 1400 ? "dashboard.png" : width === 400 ? "" : `dashboard-${width}.png`;
      await page.screenshot({ path: name ? shotPath(name) : join(tmpdir(), `can-server-${process.pid}-dashboard-${width}.png`), fullPage: true });
    } finally {
      await page.close();
    }
  }, 30_000);
}

test("favicon and uPlot are served from the binary", async () => {
  const icon = await fetch(`http://127.0.0.1:${gw.http}/favicon.svg`);
  expect(icon.status).toBe(200);
  expect(icon.headers.get("content-type")).toBe("image/svg+xml");
  expect(await icon.text()).toStartWith("<svg");
  const uplot = await fetch(`http://127.0.0.1:${gw.http}/assets/uplot.js`);
  expect(uplot.status).toBe(200);
  expect((await uplot.text()).length).toBeGreaterThan(20_000);
  const html = await (await fetch(`http://127.0.0.1:${gw.http}/`)).text();
  expect(html).toContain('rel="icon" href="/favicon.svg"');
});

test("when the gateway stops, the page shows its state as unknown, not the last 'up'", async () => {
  const { page } = await open(400);
  try {
    await waitText(page, "#backend", "(t) => t === 'replay: up'");
    client.close();
    await gw.stop();
    await waitText(page, "#conn", "(t) => t.startsWith('disconnected')", 5000);
    const state = await page.evaluate(`(() => {
      const text = (id) => document.getElementById(id).textContent;
      return { backend: text("backend"), backendClass: document.getElementById("backend").className, fin: text("fin"), load: text("load"), sending: text("sending"), stale: document.body.classList.contains("stale") };
    })()`);
    expect(state).toEqual({ backend: "replay: unknown", backendClass: "pill unknown", fin: "–", load: "–", sending: "unknown (no connection)", stale: true });
    await page.screenshot({ path: shotPath("dashboard-stale.png") });
  } finally {
    await page.close();
  }
}, 30_000);
