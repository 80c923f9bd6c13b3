/**
 * The dashboard's send form uses the HTTP API (POST /api/v1/buses/<bus>/frames with the bearer
 * token), in Debian's chromium against the compiled binary: frames typed into the form reach a
 * real cannelloni client; a wrong token shows the API's problem detail and sends nothing.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser } from "puppeteer-core";
import { formatFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { launchBrowser, startBinary, waitText, type Running } from "./dashboard-harness.ts";

let gw: Running;
let browser: Browser;

beforeAll(async () => {
  gw = await startBinary(["-backend", "virtual", "-web-tx", "-web-token", "s3cret"]);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
});

test("the send form posts to the API: frames reach a client, a wrong token is refused with the API's words", async () => {
  const c = await CannelloniTestClient.connect(gw.cannelloni);
  await c.handshake();
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${gw.http}/`);
    await page.waitForSelector("#txsection:not([hidden])", { timeout: 8000 });
    await page.type("#txframe", "123#11 7FF#2233");
    await page.type("#txtoken", "wrong");
    await page.click("#txform button");
    await waitText(page, "#txstate", "(t) => t.includes('wrong token')");
    await Bun.sleep(100);
    expect(c.frames.length).toBe(0);
    await page.$eval("#txtoken", (el) => ((el as unknown as { value: string }).value = ""));
    await page.type("#txtoken", "s3cret");
    await page.click("#txform button");
    await waitText(page, "#txstate", "(t) => t === '2 sent'");
    expect((await c.waitFrames(2)).map(formatFrame)).toEqual(["123#11", "7FF#2233"]);
  } finally {
    await page.close();
    c.close();
  }
}, 60_000);

test("the jobs panel lists the gateway's transmit jobs (read-only), and hides when there are none", async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${gw.http}/`);
    await page.waitForSelector("#txsection:not([hidden])", { timeout: 8000 });
    expect(await page.$eval("#jobsection", (el) => (el as unknown as { hidden: boolean }).hidden)).toBe(true);
    const r = await fetch(`http://127.0.0.1:${gw.http}/api/v1/buses/can0/jobs`, {
      method: "POST",
      headers: { authorization: "Bearer s3cret" },
      body: JSON.stringify({ frame: { id: 0x700, data: "05" }, period_ms: 200, name: "heartbeat<b>" }),
    });
    expect(r.status).toBe(201);
    const id = ((await r.json()) as { id: string }).id;
    await page.waitForSelector("#jobsection:not([hidden])", { timeout: 8000 });
    await waitText(page, "#jobs tbody", "(t) => t.includes('heartbeat<b>') && t.includes('700#05') && t.includes('200 ms') && t.includes('running')");
    // The name is text, not markup.
    expect(await page.$$eval("#jobs tbody b", (els) => els.length)).toBe(0);
    expect((await fetch(`http://127.0.0.1:${gw.http}/api/v1/buses/can0/jobs/${id}`, { method: "DELETE", headers: { authorization: "Bearer s3cret" } })).status).toBe(204);
    await page.waitForSelector("#jobsection[hidden]", { timeout: 8000 });
  } finally {
    await page.close();
  }
}, 60_000);
