/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core, against
 * the compiled binary (assets embedded) replaying the demo log. Frames a real cannelloni client
 * sends appear in the live tail and the per-id view; the clients table shows the client and, once
 * it leaves, the disconnection; the id/mask filter narrows both views. Saves docs/dashboard.png.
 * Then the WebSocket and /api/status directly: sending refused without -web-tx or with a wrong
 * token, accepted (and on the bus) with the right one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Browser } from "puppeteer-core";
import { dataFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { buildBinary, launchBrowser, startBinary, waitText } from "./dashboard-harness.ts";

let browser: Browser;
beforeAll(async () => {
  await buildBinary();
  browser = await launchBrowser();
}, 120_000);
afterAll(async () => {
  await browser?.close();
});

describe("dashboard in chromium", () => {
  test("live tail, per-id view, clients table and filter; screenshot", async () => {
    const gw = await startBinary(["-backend", "replay", "-replay-file", "demo/ampio-demo.log", "-replay-loop", "-ampio-decode", "true"]);
    const page = await browser.newPage();
    try {
      await page.setViewport({ width: 1400, height: 1000 });
      const res = await page.goto(`http://127.0.0.1:${gw.http}/`);
      expect(res?.status()).toBe(200);
      await waitText(page, "#conn", "(t) => t === 'live'");
      await waitText(page, "#backend", "(t) => t.startsWith('replay: up')", 4000);

      const client = await CannelloniTestClient.connect(gw.cannelloni);
      await client.handshake();
      await waitText(page, "#clients tbody", "(t) => t.includes('cannelloni') && t.includes('streaming')");

      client.send(dataFrame(0x123, [0x11, 0x22]), dataFrame(0x1abcdef, [0xca, 0xfe], true));
      await waitText(page, "#tail", "(t) => t.includes('123#1122') && t.includes('01ABCDEF#CAFE')");
      await waitText(page, "#sniffer tbody", "(t) => t.includes('01ABCDEF') && t.includes('123#1122')");
      // Demo traffic from the replayed log is there too (Ampio module ids).
      await waitText(page, "#sniffer tbody", "(t) => t.includes('00001D4C')");
      // The Ampio panel: the decoder's module inventory, live.
      await waitText(page, "#ampioview", "(t) => t.includes('1D4C') && t.includes('online')");

      // Filter: only 0x123 passes.
      await page.type("#filter", "123/7FF");
      await page.click("#filterform button[type=submit]");
      await waitText(page, "#filterstate", "(t) => t === 'filter 123/7FF'");
      client.send(dataFrame(0x124, [0x01]), dataFrame(0x123, [0x33]));
      await waitText(page, "#tail", "(t) => t.includes('123#33')");
      await Bun.sleep(1200);
      const tailText = await page.$eval("#tail", (el) => el.textContent ?? "");
      expect(tailText).not.toContain("124#01");
      expect(tailText).not.toContain("1D4C#");
      const ids = await page.$$eval("#sniffer tbody tr", (rows) => rows.map((r) => r.getAttribute("data-id")));
      expect(ids).toEqual(["123"]);

      // Pause freezes the tail.
      await page.click("#pause");
      client.send(dataFrame(0x123, [0x44]));
      await Bun.sleep(600);
      expect(await page.$eval("#tail", (el) => el.textContent ?? "")).not.toContain("123#44");

      // The client leaves: gone from the table, listed as disconnected.
      client.close();
      await waitText(page, "#clients tbody", "(t) => !t.includes('cannelloni')");
      await waitText(page, "#left tbody", "(t) => t.includes('cannelloni')");
    } finally {
      await page.close();
      await gw.stop();
    }
  }, 60_000);
});

describe("dashboard WebSocket", () => {
  async function ws(port: number): Promise<{ sock: WebSocket; next: (type: string) => Promise<Record<string, unknown>> }> {
    const sock = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const inbox: Record<string, unknown>[] = [];
    sock.onmessage = (e) => inbox.push(JSON.parse(String(e.data)) as Record<string, unknown>);
    await new Promise<void>((r, j) => {
      sock.onopen = () => r();
      sock.onerror = () => j(new Error("ws error"));
    });
    return {
      sock,
      async next(type) {
        const deadline = Date.now() + 5000;
        for (;;) {
          const i = inbox.findIndex((m) => m.type === type);
          if (i >= 0) return inbox.splice(i, 1)[0]!;
          if (Date.now() > deadline) throw new Error(`no ${type} message`);
          await Bun.sleep(10);
        }
      },
    };
  }

  test("a new connection gets the rate history, the status and the per-id table at once, before any tick", async () => {
    const gw = await startBinary(["-backend", "virtual", "-virtual-demo"]);
    try {
      await Bun.sleep(2500); // two samples in the gateway's history
      const sock = new WebSocket(`ws://127.0.0.1:${gw.http}/ws`);
      const first: Record<string, unknown>[] = [];
      sock.onmessage = (e) => first.push(JSON.parse(String(e.data)) as Record<string, unknown>);
      await new Promise<void>((r, j) => ((sock.onopen = () => r()), (sock.onerror = () => j(new Error("ws error")))));
      const deadline = Date.now() + 3000;
      while (first.length < 3 && Date.now() < deadline) await Bun.sleep(5);
      // Sent on open, in this order; a tick would start with "status" or "frames".
      expect(first.slice(0, 3).map((m) => m.type)).toEqual(["history", "status", "sniffer"]);
      const h = first[0] as { t: number[]; inFps: number[]; outFps: number[]; load: number[] };
      expect(h.t.length).toBeGreaterThanOrEqual(2);
      expect(h.inFps.length).toBe(h.t.length);
      expect(h.t[0]!).toBeLessThan(Date.now() / 1000 - 1);
      const api = (await (await fetch(`http://127.0.0.1:${gw.http}/api/history`)).json()) as { t: number[] };
      expect(api.t.length).toBeGreaterThanOrEqual(h.t.length);
      sock.close();
    } finally {
      await gw.stop();
    }
  }, 30_000);

  test("bus load is never over 100 %: an offered load above the nominal rate is flagged instead", async () => {
    // A virtual bus has no wire: one client may offer far more than a 10 kbit/s bus carries.
    const gw = await startBinary(["-backend", "virtual", "-bitrate", "10000", "-client-tx-rate", "0"]);
    try {
      const client = await CannelloniTestClient.connect(gw.cannelloni);
      await client.handshake();
      let status = { busLoad: 0, busLoadOver: false };
      for (let round = 0; round < 30 && !status.busLoadOver; round++) {
        for (let i = 0; i < 20; i++) client.send(...Array.from({ length: 10 }, (_, k) => dataFrame(0x100 + k, [1, 2, 3, 4, 5, 6, 7, 8])));
        await Bun.sleep(100);
        status = (await (await fetch(`http://127.0.0.1:${gw.http}/api/status`)).json()) as typeof status;
      }
      expect(status.busLoadOver).toBe(true);
      expect(status.busLoad).toBeLessThanOrEqual(1);
      client.close();
    } finally {
      await gw.stop();
    }
  }, 30_000);

  test("read-only without -web-tx; with it only the right token sends, and the frame reaches the bus", async () => {
    const ro = await startBinary(["-backend", "virtual"]);
    try {
      const c = await ws(ro.http);
      c.sock.send(JSON.stringify({ type: "send", frame: "123#11", token: "" }));
      expect((await c.next("sent")).ok).toBe(false);
      const status = (await (await fetch(`http://127.0.0.1:${ro.http}/api/status`)).json()) as { webTx: boolean; backend: { kind: string } };
      expect(status.webTx).toBe(false);
      expect(status.backend.kind).toBe("virtual");
      c.sock.close();
    } finally {
      await ro.stop();
    }
    const rw = await startBinary(["-backend", "virtual", "-web-tx"], { CAN_SERVER_WEB_TOKEN: "s3cret-token" });
    try {
      const listener = await CannelloniTestClient.connect(rw.cannelloni);
      await listener.handshake();
      const c = await ws(rw.http);
      c.sock.send(JSON.stringify({ type: "send", frame: "123#11", token: "wrong-token!" }));
      const bad = await c.next("sent");
      expect(bad.ok).toBe(false);
      expect(bad.error).toBe("wrong token");
      c.sock.send(JSON.stringify({ type: "send", frame: "123#1", token: "s3cret-token" }));
      expect((await c.next("sent")).error).toContain("bad data bytes");
      c.sock.send(JSON.stringify({ type: "send", frame: "00001D4C#FE0601", token: "s3cret-token" }));
      expect((await c.next("sent")).ok).toBe(true);
      const got = await listener.waitFrames(1, 3000);
      expect(got[0]!.canId).toBe((0x1d4c | 0x80000000) >>> 0);
      listener.close();
      c.sock.close();
    } finally {
      await rw.stop();
    }
  }, 60_000);
});
