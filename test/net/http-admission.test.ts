/**
 * Admission on the HTTP endpoint (src/net/http-front.ts, src/net/http-hosts.ts) against a real
 * gateway process: idle HTTP connections under a low open-files limit, -allow at accept, the
 * first-bytes timeout, Host (DNS rebinding) and Origin (cross-site WebSocket) checks, and a
 * capture stream on a silent bus that outlives the HTTP idle timeout.
 */
import { afterEach, describe, expect, test } from "bun:test";
import net from "node:net";
import { hostname } from "node:os";
import { HostCheck, hostHeaderName, searchDomains } from "../../src/net/http-hosts.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { openIdleSockets, type IdleSockets } from "../helpers/idle-sockets.ts";

const procs: GatewayProcess[] = [];
const idle: IdleSockets[] = [];
afterEach(async () => {
  for (const s of idle.splice(0)) s.close();
  for (const p of procs.splice(0)) await p.stop();
});

/** One raw HTTP/1.1 request over a fresh socket with exactly these headers; resolves with the status line's code. */
function rawRequest(port: number, path: string, headers: Record<string, string>, localAddress = "127.0.0.1"): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    let text = "";
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    s.on("connect", () => s.write(`GET ${path} HTTP/1.1\r\n${head}\r\n`));
    s.on("data", (d) => {
      text += d.toString("latin1");
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m) {
        s.destroy();
        resolve({ status: Number(m[1]), text });
      }
    });
    // A connection refused at accept is reset: no status (0).
    s.on("error", () => resolve({ status: 0, text }));
    s.on("close", () => resolve({ status: 0, text }));
    s.setTimeout(5000, () => s.destroy());
  });
}

const WS_HEADERS = { upgrade: "websocket", connection: "Upgrade", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13" };

describe("HostCheck", () => {
  test("IP literals, localhost, the hostname, hostname.local and -http-hosts names; nothing else", () => {
    const h = new HostCheck(["gw.example.net"], "canpi", searchDomains("nameserver 192.168.1.1\nsearch lan home.arpa.\n"));
    for (const ok of ["127.0.0.1:9100", "192.168.1.2", "[::1]:9100", "localhost:9100", "canpi", "CANPI.local:9100", "gw.example.net.", "canpi.lan", "canpi.home.arpa:9100", null]) expect(h.hostAllowed(ok)).toBe(true);
    for (const bad of ["evil.example", "canpi.evil.example", "192.168.1.2.nip.io", "x", "lan"]) expect(h.hostAllowed(bad)).toBe(false);
    expect(hostHeaderName("[fe80::1]:80")).toBe("fe80::1");
  });

  test("Origin: the gateway itself (same host:port, or one of its names), never another device or a sandboxed page", () => {
    const h = new HostCheck([], "canpi", []);
    expect(h.originAllowed(null, "127.0.0.1:9100")).toBe(true);
    expect(h.originAllowed("http://127.0.0.1:9100", "127.0.0.1:9100")).toBe(true);
    expect(h.originAllowed("http://canpi.local:9100", "192.168.1.2:9100")).toBe(true);
    expect(h.originAllowed("http://127.0.0.1:8000", "127.0.0.1:9100")).toBe(false);
    expect(h.originAllowed("http://192.168.1.5", "192.168.1.2:9100")).toBe(false);
    expect(h.originAllowed("https://evil.example", "192.168.1.2:9100")).toBe(false);
    expect(h.originAllowed("null", "192.168.1.2:9100")).toBe(false);
  });
});

describe("HTTP connections are admitted at accept (gateway process)", () => {
  test("under ulimit -n 200, 260 idle HTTP connections leave new clients served and the CPU idle", async () => {
    // No per-host or HTTP connection cap: only the descriptor budget stands between them and EMFILE.
    const gw = await startGatewayProcess(["-max-host-connections", "0", "-http-max-connections", "0"], { shellPrefix: "ulimit -n 200;" });
    procs.push(gw);
    idle.push(await openIdleSockets(gw.ports.http!, 260, "127.0.0.2"));
    await Bun.sleep(300);
    expect(gw.openFds()).toBeLessThan(200);
    const cpu0 = gw.cpuSeconds();
    await Bun.sleep(2000);
    expect(gw.cpuSeconds() - cpu0).toBeLessThan(0.3); // an accept loop spinning on EMFILE burns ~1 s per s
    const client = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await client.handshake(); // the hello arrives
    const h = await gw.http("/healthz", 2000);
    expect(h.status).toBe(200);
    // Refused at accept: one host may hold at most half of what the budget gives HTTP.
    expect(await gw.metric("clients_rejected_total", { reason: "host_connections" })).toBeGreaterThan(200);
    expect(gw.lines.filter((l) => l.msg === "client_rejected").length).toBeLessThanOrEqual(2);
    client.close();
  }, 30_000);

  test("-allow closes a foreign HTTP connection at accept, before any request; an idle one is closed after about 10 s", async () => {
    const gw = await startGatewayProcess(["-allow", "127.0.0.1/32"]);
    procs.push(gw);
    const r = await rawRequest(gw.ports.http!, "/healthz", { host: "127.0.0.1" }, "127.0.0.2");
    expect(r.status).toBe(0); // closed without an answer
    expect(await gw.metric("clients_rejected_total", { reason: "not_allowed" })).toBe(1);
    const lazy = await openIdleSockets(gw.ports.http!, 3, "127.0.0.1");
    idle.push(lazy);
    expect(lazy.opened).toBe(3);
    // FIRST_BYTES_S is 10 s; the runtime's socket timers tick in 4 s steps.
    const t0 = performance.now();
    while (lazy.closedByPeer() < 3 && performance.now() - t0 < 20_000) await Bun.sleep(100);
    expect(lazy.closedByPeer()).toBe(3);
    expect(performance.now() - t0).toBeGreaterThan(7_000);
    expect((await gw.http("/healthz")).status).toBe(200);
  }, 30_000);

  test("a foreign Host is refused on every route (DNS rebinding); the gateway's own names are served", async () => {
    const gw = await startGatewayProcess(["-http-hosts", "gw.example.net"]);
    procs.push(gw);
    const port = gw.ports.http!;
    for (const path of ["/api/status", "/metrics", "/capture.pcap", "/"]) {
      expect({ path, status: (await rawRequest(port, path, { host: `evil.example:${port}` })).status }).toEqual({ path, status: 403 });
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `${hostname()}:${port}`, `${hostname()}.local:${port}`, "gw.example.net"]) {
      expect({ host, status: (await rawRequest(port, "/api/status", { host })).status }).toEqual({ host, status: 200 });
    }
    expect(await gw.metric("http_rejected_requests_total")).toBe(4);
  }, 30_000);

  test("a WebSocket from a foreign Origin is refused; the dashboard's own origin is upgraded", async () => {
    const gw = await startGatewayProcess([]);
    procs.push(gw);
    const port = gw.ports.http!;
    const host = `127.0.0.1:${port}`;
    expect((await rawRequest(port, "/ws", { host, origin: "http://evil.example", ...WS_HEADERS })).status).toBe(403);
    expect((await rawRequest(port, "/ws", { host, origin: "http://127.0.0.1:8000", ...WS_HEADERS })).status).toBe(403);
    expect((await rawRequest(port, "/ws", { host, origin: `http://${host}`, ...WS_HEADERS })).status).toBe(101);
    // The page in a real browser engine's WebSocket: the same origin works end to end.
    const ws = new WebSocket(`ws://${host}/ws`, { headers: { origin: `http://${host}` } } as unknown as string[]);
    const got = await new Promise<string>((resolve, reject) => {
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error("ws error"));
    });
    expect(got).toContain('"type"');
    ws.close();
  }, 30_000);

  test("a capture stream on a silent bus is still open after 30 s", async () => {
    const gw = await startGatewayProcess([]);
    procs.push(gw);
    const abort = new AbortController();
    const res = await fetch(`http://127.0.0.1:${gw.ports.http}/capture.pcap`, { signal: abort.signal });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const header = await reader.read();
    expect(header.value!.length).toBe(24);
    let ended = false;
    const next = reader.read().then((r) => {
      ended = r.done;
      return r;
    });
    await Bun.sleep(30_000);
    expect(ended).toBe(false);
    // Still delivering: a frame from a client shows up in the stream.
    const client = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await client.handshake();
    client.send({ canId: 0x123, len: 2, data: new Uint8Array([1, 2]), fd: false, fdFlags: 0 });
    const r = await Promise.race([next, Bun.sleep(3000).then(() => null)]);
    expect(r?.done).toBe(false);
    expect(r!.value!.length).toBeGreaterThan(16);
    client.close();
    abort.abort();
  }, 45_000);
});
