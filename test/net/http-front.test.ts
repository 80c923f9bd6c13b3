/**
 * The HTTP front door (src/net/http-front.ts) in front of a plain Bun.serve on loopback: bytes
 * spliced exactly both ways with backpressure, the real peer reported to the server, a large
 * response to a slow reader delivered whole even when the server closes first, refusals at accept.
 */
import { afterEach, expect, test } from "bun:test";
import net from "node:net";
import { Admission } from "../../src/net/admission.ts";
import { CidrList } from "../../src/net/cidr.ts";
import { startHttpFront, type HttpFront } from "../../src/net/http-front.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

const stops: (() => void)[] = [];
afterEach(() => {
  for (const s of stops.splice(0)) s();
});

const BIG = new Uint8Array(8 * 1024 * 1024).map((_, i) => (i * 7) & 0xff);

function setup(allow: string[] = []): { front: HttpFront; stats: Stats; peers: string[] } {
  const stats = new Stats();
  const { log } = memoryLogger("info");
  const admission = new Admission(
    { allow: CidrList.parse(allow), txAllow: CidrList.parse([]), maxClients: 0, maxHandshakes: 0, maxHostHandshakes: 0, maxHostConnections: 0, httpMaxConnections: 0, fdBudget: 0 },
    stats,
    log,
  );
  const peers: string[] = [];
  let front: HttpFront;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req, srv) {
      peers.push(front.peerOf(srv.requestIP(req)!.port)?.remote ?? "unknown");
      const path = new URL(req.url).pathname;
      if (path === "/big") return new Response(BIG, { headers: { connection: "close" } });
      return req.arrayBuffer().then((b) => new Response(`got ${b.byteLength}`));
    },
  });
  front = startHttpFront({ hostname: "127.0.0.1", port: 0, innerPort: server.port!, admission, log });
  stops.push(() => {
    front.stop();
    void server.stop(true);
  });
  return { front, stats, peers };
}

/** A raw request; the reader pauses `pauseMs` after the first chunk (a slow reader). */
function request(port: number, text: string, pauseMs = 0, localAddress = "127.0.0.1"): Promise<Buffer> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port, localAddress });
    const chunks: Buffer[] = [];
    let paused = false;
    s.on("connect", () => s.write(text));
    s.on("data", (d: Buffer) => {
      chunks.push(d);
      if (!paused && pauseMs > 0) {
        paused = true;
        s.pause();
        setTimeout(() => s.resume(), pauseMs);
      }
    });
    s.on("close", () => resolve(Buffer.concat(chunks)));
    s.on("error", () => {});
  });
}

test("a large response to a slow reader arrives whole, though the server closed its side first", async () => {
  const { front, peers } = setup();
  const res = await request(front.port, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 500);
  const body = res.subarray(res.indexOf("\r\n\r\n") + 4);
  expect(body.length).toBe(BIG.length);
  expect(Buffer.compare(body, Buffer.from(BIG))).toBe(0);
  expect(peers[0]).toMatch(/^127\.0\.0\.1:\d+$/);
});

test("a large request body is spliced to the server; the server sees the real peer", async () => {
  const { front, peers } = setup();
  const body = "x".repeat(3 * 1024 * 1024);
  const res = await request(front.port, `POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${body.length}\r\n\r\n${body}`, 0, "127.0.0.3");
  expect(res.toString()).toContain(`got ${body.length}`);
  expect(peers[0]).toMatch(/^127\.0\.0\.3:\d+$/);
});

test("-allow refuses at accept: no request reaches the server", async () => {
  const { front, stats, peers } = setup(["127.0.0.1/32"]);
  const res = await request(front.port, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", 0, "127.0.0.2");
  expect(res.length).toBe(0);
  expect(peers).toEqual([]);
  expect(stats.rejected.get("not_allowed")).toBe(1);
});
