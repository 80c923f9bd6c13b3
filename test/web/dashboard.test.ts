/**
 * The dashboard in a real browser: Debian's chromium, headless, driven by puppeteer-core, against
 * the compiled binary (assets embedded) replaying the demo log. Frames a real cannelloni client
 * sends appear in the live tail and the per-id view; the clients table shows the client and, once
 * it leaves, the disconnection; the id/mask filter narrows both views. Saves docs/dashboard.png.
 * Then the WebSocket and /api/status directly: sending refused without -web-tx or with a wrong
 * token, accepted (and on the bus) with the right one.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { dataFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";

const REPO = resolve(import.meta.dir, "../..");
const BIN_DIR = join(REPO, "dist/web-test");
const BIN = join(BIN_DIR, "can-server");

interface Running {
  proc: ReturnType<typeof Bun.spawn>;
  http: number;
  cannelloni: number;
  stop(): Promise<void>;
}

/** Starts the compiled binary; ports come from its JSON log lines. */
async function startBinary(args: string[], env: Record<string, string> = {}): Promise<Running> {
  const proc = Bun.spawn([BIN, "-listen", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-log-format", "json", ...args], { cwd: REPO, stdout: "ignore", stderr: "pipe", env: { ...process.env, ...env } });
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
      const e = JSON.parse(line) as { msg: string; addr?: string; protocol?: string };
      if (e.msg === "metrics_listen" && e.addr) http = Number(e.addr.split(":").pop());
      if (e.msg === "tcp_listen" && e.protocol === "cannelloni" && e.addr) cannelloni = Number(e.addr.split(":").pop());
    }
  }
  // Keep draining stderr so the process never blocks on a full pipe.
  void (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
  })();
  if (!http || !cannelloni) {
    proc.kill();
    throw new Error(`binary did not report its ports; log so far:\n${buf}`);
  }
  return {
    proc,
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
  mkdirSync(BIN_DIR, { recursive: true });
  const build = Bun.spawnSync([process.execPath, "build", "--compile", "src/main.ts", "--outfile", BIN], { cwd: REPO, stderr: "pipe", stdout: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  browser = await puppeteer.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
}, 120_000);
afterAll(async () => {
  await browser?.close();
});

async function waitText(page: Page, selector: string, pred: string, timeoutMs = 8000): Promise<void> {
  await page.waitForFunction(`(() => { const el = document.querySelector(${JSON.stringify(selector)}); return !!el && (${pred})(el.textContent || ""); })()`, { timeout: timeoutMs, polling: 100 });
}

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
      await waitText(page, "#ampio tbody", "(t) => t.includes('00001D4C') && t.includes('online')");
      await Bun.sleep(2500); // a few chart points
      // docs/dashboard.png is refreshed only on request, so a test run leaves the tree clean.
      const shot = process.env.UPDATE_SCREENSHOT === "1" ? join(REPO, "docs/dashboard.png") : join(tmpdir(), `can-server-dashboard-${process.pid}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      expect(Bun.file(shot).size).toBeGreaterThan(10_000);

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
