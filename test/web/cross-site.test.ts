/**
 * Browser safety in a real browser (Debian chromium via puppeteer-core) against the compiled
 * binary: a page from another origin cannot open the dashboard's WebSocket, and a DNS-rebinding
 * name (chromium's resolver maps evil.example to 127.0.0.1, as a rebinding DNS server would) gets
 * 403 for /api/status, /metrics and /capture.pcap — while the dashboard's own page works.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Browser } from "puppeteer-core";
import { buildBinary, launchBrowser, startBinary, waitText, type Running } from "./dashboard-harness.ts";

let browser: Browser;
let gw: Running;
let evil: ReturnType<typeof Bun.serve>;
beforeAll(async () => {
  await buildBinary();
  browser = await launchBrowser(["--host-resolver-rules=MAP evil.example 127.0.0.1"]);
  gw = await startBinary(["-backend", "virtual"]);
  // The attacker's page, on another origin (another port of the same loopback address).
  evil = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () =>
      new Response(
        `<!doctype html><title>pending</title><script>
          const ws = new WebSocket("ws://127.0.0.1:${gw.http}/ws");
          ws.onopen = () => { document.title = "opened"; };
          ws.onmessage = (e) => { document.title = "read: " + String(e.data).slice(0, 20); };
          ws.onclose = () => { if (document.title === "pending") document.title = "refused"; };
        </script>`,
        { headers: { "content-type": "text/html" } },
      ),
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  evil?.stop(true);
});

test("a page from another origin cannot open the dashboard WebSocket; the dashboard's own page can", async () => {
  const page = await browser.newPage();
  try {
    await page.goto(`http://127.0.0.1:${evil.port}/`);
    await page.waitForFunction("document.title !== \"pending\"", { timeout: 8000 });
    expect(await page.title()).toBe("refused");
    await page.goto(`http://127.0.0.1:${gw.http}/`);
    await waitText(page, "#conn", "(t) => t === 'live'");
  } finally {
    await page.close();
  }
}, 30_000);

test("DNS rebinding: a foreign name pointing at the gateway gets 403 on every route", async () => {
  const page = await browser.newPage();
  try {
    for (const path of ["/api/status", "/metrics", "/capture.pcap", "/"]) {
      const res = await page.goto(`http://evil.example:${gw.http}${path}`);
      expect({ path, status: res?.status() }).toEqual({ path, status: 403 });
    }
    const own = await page.goto(`http://127.0.0.1:${gw.http}/api/status`);
    expect(own?.status()).toBe(200);
  } finally {
    await page.close();
  }
}, 30_000);
