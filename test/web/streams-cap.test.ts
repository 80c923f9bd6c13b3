/**
 * -http-max-streams: the operations endpoint holds at most N long-lived streams at once, dashboard
 * WebSockets (/ws) and live captures (/capture.pcap) together. A real gateway on the virtual bus
 * with the endpoint on 127.0.0.1:0 as main.ts starts it (startOperations), Bun's WebSocket client
 * and fetch() streaming. Past the cap both routes answer 503 (retry-after, the limit and the flag
 * in the body), each refusal is counted (http_streams_rejected_total) and a burst is logged once;
 * a stream that ends (socket closed, capture cancelled or aborted) frees its slot exactly once,
 * and /metrics, /ready and /healthz keep answering at the cap.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/cli/parse.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { HttpStreamLimit } from "../../src/net/http-streams.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startOperations, type Operations } from "../../src/ops/operations.ts";
import { Stats } from "../../src/ops/stats.ts";
import { startTestGateway, waitFor, type TestGateway } from "../helpers/gateway.ts";

interface CapGateway {
  tg: TestGateway;
  ops: Operations;
  base: string;
  wsUrl: string;
  /** The operations side's log lines (JSON). */
  opsLines: string[];
}

let current: CapGateway | null = null;
/** Everything a test opened, closed after it whatever happened. */
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await current?.ops.stop();
  await current?.tg.stop();
  current = null;
});

async function start(httpMaxStreams: number): Promise<CapGateway> {
  const tg = await startTestGateway({ metricsAddr: "127.0.0.1:0", httpMaxStreams });
  const { log, lines } = memoryLogger("info");
  const ops = await startOperations(tg.config, { gateway: tg.gateway, stats: tg.stats, log, build: buildInfo(), counters: new ConsumerCounters() });
  current = { tg, ops, base: `http://127.0.0.1:${ops.httpPort}`, wsUrl: `ws://127.0.0.1:${ops.httpPort}/ws`, opsLines: lines };
  return current;
}

/** A dashboard WebSocket that opened; closed after the test. */
async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.close());
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("WebSocket failed to open"));
    ws.onclose = (e) => reject(new Error(`WebSocket closed before open (code ${e.code})`));
  });
  return ws;
}

/** A WebSocket the server refuses: resolves when it fails without ever opening. */
async function refusedWs(url: string): Promise<void> {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.close());
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => reject(new Error("WebSocket opened past the cap"));
    ws.onclose = () => resolve();
  });
}

/** Closes a WebSocket and waits for the close handshake on the client side. */
async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = new Promise<void>((r) => ws.addEventListener("close", () => r(), { once: true }));
  ws.close();
  await closed;
}

/** The upgrade request a browser sends, made with fetch() so the 503 can be read. */
function upgradeRequest(url: string): Promise<Response> {
  return fetch(url.replace(/^ws:/, "http:"), {
    headers: { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" },
  });
}

interface Capture {
  res: Response;
  reader: ReturnType<ReadableStream<Uint8Array>["getReader"]>;
  abort: AbortController;
}

/** A /capture.pcap stream that was admitted: 200 and its pcap global header read. */
async function openCapture(base: string): Promise<Capture> {
  const abort = new AbortController();
  const res = await fetch(`${base}/capture.pcap`, { signal: abort.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  cleanups.push(async () => {
    abort.abort();
    await reader.cancel().catch(() => {});
  });
  const first = await reader.read();
  expect(first.done).toBe(false);
  expect(first.value!.length).toBe(24); // the pcap global header
  return { res, reader, abort };
}

async function expectRefused(res: Response, max: number): Promise<void> {
  expect(res.status).toBe(503);
  expect(res.headers.get("retry-after")).toBe("5");
  expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
  const body = await res.text();
  expect(body).toContain(`-http-max-streams ${max}`);
  expect(body).toContain("too many open streams");
}

/** One sample of /metrics (and that /metrics answers at all). */
async function metric(base: string, name: string): Promise<number> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(await res.text());
  if (!m) throw new Error(`${name} not in /metrics`);
  return Number(m[1]);
}

async function expectOtherRoutesWork(base: string): Promise<void> {
  const health = await fetch(`${base}/healthz`);
  expect([health.status, await health.text()]).toEqual([200, "ok\n"]);
  const ready = await fetch(`${base}/ready`);
  expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
  const status = await fetch(`${base}/api/status`);
  expect(status.status).toBe(200);
  await status.arrayBuffer();
}

function rejectedLogs(lines: readonly string[]): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === "http_stream_rejected");
}

const pcapClients = (g: CapGateway): number => [...g.tg.gateway.hub.attached].filter((c) => c.protocol === "pcap").length;

describe("-http-max-streams 2", () => {
  test("the 3rd dashboard WebSocket gets 503 and is counted; closing one frees its slot", async () => {
    const g = await start(2);
    const stats = g.tg.stats;
    const a = await openWs(g.wsUrl);
    const b = await openWs(g.wsUrl);
    expect(stats.httpStreamsOpen).toBe(2);
    expect(await metric(g.base, "http_streams_open")).toBe(2);

    await refusedWs(g.wsUrl);
    await expectRefused(await upgradeRequest(g.wsUrl), 2);
    expect(stats.httpStreamsRejected).toBe(2);
    expect(await metric(g.base, "http_streams_rejected_total")).toBe(2);
    expect(stats.httpRejected).toBe(0); // not an -allow refusal
    await expectOtherRoutesWork(g.base);
    // Two refusals, one log line (BurstLog: the rest of the burst only counted).
    const logged = rejectedLogs(g.opsLines);
    expect(logged.length).toBe(1);
    expect(logged[0]).toMatchObject({ level: "warn", kind: "websocket", open: 2, max: 2 });

    await closeWs(a);
    await waitFor(() => stats.httpStreamsOpen === 1, "the closed WebSocket's slot to be freed");
    const c = await openWs(g.wsUrl);
    expect(stats.httpStreamsOpen).toBe(2);
    await refusedWs(g.wsUrl);
    expect(stats.httpStreamsRejected).toBe(3);

    // Every socket closed: every slot free, none freed twice (the cap admits exactly 2 again).
    await closeWs(b);
    await closeWs(c);
    await waitFor(() => stats.httpStreamsOpen === 0, "all WebSocket slots to be freed");
    expect(g.tg.gateway.hub.size).toBe(2); // only the dashboard meter (WebBus) and the API's latest-frames table are hub clients
    await openWs(g.wsUrl);
    await openWs(g.wsUrl);
    await refusedWs(g.wsUrl);
    expect(stats.httpStreamsOpen).toBe(2);
    expect(stats.httpStreamsRejected).toBe(4);
  });

  test("the 3rd /capture.pcap stream gets 503 and is counted; cancelling or aborting one frees its slot", async () => {
    const g = await start(2);
    const stats = g.tg.stats;
    const a = await openCapture(g.base);
    const b = await openCapture(g.base);
    expect(stats.httpStreamsOpen).toBe(2);
    expect(pcapClients(g)).toBe(2);

    await expectRefused(await fetch(`${g.base}/capture.pcap`), 2);
    await expectRefused(await fetch(`${g.base}/capture.pcap?filter=123`), 2);
    expect(stats.httpStreamsRejected).toBe(2);
    expect(await metric(g.base, "http_streams_rejected_total")).toBe(2);
    expect(await metric(g.base, "http_streams_open")).toBe(2);
    expect(pcapClients(g)).toBe(2); // a refused stream never became a hub client
    await expectOtherRoutesWork(g.base);
    const logged = rejectedLogs(g.opsLines);
    expect(logged.length).toBe(1);
    expect(logged[0]).toMatchObject({ kind: "capture", open: 2, max: 2 });
    // A refusal is not admission: a bad request is still answered as one, uncounted.
    expect((await fetch(`${g.base}/capture.pcap?filter=xyz`)).status).toBe(400);
    expect(stats.httpStreamsRejected).toBe(2);

    // The reader cancels its body: the stream ends, its slot is freed.
    await a.reader.cancel();
    await waitFor(() => stats.httpStreamsOpen === 1, "the cancelled capture's slot to be freed");
    const c = await openCapture(g.base);
    await expectRefused(await fetch(`${g.base}/capture.pcap`), 2);
    expect(stats.httpStreamsRejected).toBe(3);

    // The request is aborted (the reader's connection goes away).
    b.abort.abort();
    await waitFor(() => stats.httpStreamsOpen === 1, "the aborted capture's slot to be freed");
    await waitFor(() => pcapClients(g) === 1, "the aborted capture to leave the hub");
    const d = await openCapture(g.base);
    expect(stats.httpStreamsOpen).toBe(2);

    // Both ended, each possibly by abort and cancel at once: freed once each (none negative).
    c.abort.abort();
    await d.reader.cancel();
    await waitFor(() => stats.httpStreamsOpen === 0, "all capture slots to be freed");
    await waitFor(() => pcapClients(g) === 0, "all captures to leave the hub");
    await openCapture(g.base);
    await openCapture(g.base);
    await expectRefused(await fetch(`${g.base}/capture.pcap`), 2);
    expect(stats.httpStreamsOpen).toBe(2);
    expect(stats.httpStreamsRejected).toBe(4);
  });

  test("WebSockets and captures share the cap", async () => {
    const g = await start(2);
    const stats = g.tg.stats;
    const ws = await openWs(g.wsUrl);
    await openCapture(g.base);
    await expectRefused(await fetch(`${g.base}/capture.pcap`), 2);
    await refusedWs(g.wsUrl);
    expect(stats.httpStreamsRejected).toBe(2);
    // The dashboard's slot, once its socket closed, serves a capture.
    await closeWs(ws);
    await waitFor(() => stats.httpStreamsOpen === 1, "the WebSocket's slot to be freed");
    await openCapture(g.base);
    await refusedWs(g.wsUrl);
    expect(stats.httpStreamsOpen).toBe(2);
    expect(stats.httpStreamsRejected).toBe(3);
  });

  test("a plain GET /ws is a 426 and takes no slot", async () => {
    const g = await start(2);
    const res = await fetch(`${g.base}/ws`);
    expect(res.status).toBe(426);
    await res.text();
    expect(g.tg.stats.httpStreamsOpen).toBe(0);
    expect(g.tg.stats.httpStreamsRejected).toBe(0);
  });
});

test("HttpStreamLimit: a slot released twice is freed once", () => {
  const stats = new Stats();
  const { log, lines } = memoryLogger("info");
  const limit = new HttpStreamLimit(1, stats, log);
  const first = limit.admit("capture", "127.0.0.1:1");
  if (first instanceof Response) throw new Error("the first stream was refused");
  expect(limit.admit("capture", "127.0.0.1:2")).toBeInstanceOf(Response);
  first.release();
  first.release();
  expect([limit.open, stats.httpStreamsOpen]).toEqual([0, 0]);
  const second = limit.admit("websocket", "127.0.0.1:3");
  expect(second).not.toBeInstanceOf(Response);
  // Freed once: a second stream would be refused again, not admitted into a slot freed twice.
  expect(limit.admit("websocket", "127.0.0.1:4")).toBeInstanceOf(Response);
  expect(stats.httpStreamsRejected).toBe(2);
  expect(lines.filter((l) => l.includes('"msg":"http_stream_rejected"')).length).toBe(1);
});

test("-http-max-streams / CAN_SERVER_HTTP_MAX_STREAMS: default 32, at least 1, at most 4096", () => {
  expect(parseConfig([], {}).httpMaxStreams).toBe(32);
  expect(parseConfig(["-http-max-streams", "2"], {}).httpMaxStreams).toBe(2);
  expect(parseConfig([], { CAN_SERVER_HTTP_MAX_STREAMS: "7" }).httpMaxStreams).toBe(7);
  expect(() => parseConfig(["-http-max-streams", "0"], {})).toThrow(/-http-max-streams.*>= 1/);
  expect(() => parseConfig(["-http-max-streams", "4097"], {})).toThrow(/-http-max-streams.*<= 4096/);
});
