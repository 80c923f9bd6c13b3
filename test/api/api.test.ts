/**
 * The HTTP API (/api/v1, issue 21 item 1) over real HTTP against a gateway process on the
 * virtual bus: every route, the token, -web-tx and -tx-allow refusals, bad input, frames sent by
 * the API reaching a real cannelloni client exactly (the echo of a frame that is on the bus), and
 * every answer checked against the OpenAPI document the gateway serves.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatFrame } from "../../src/can/frame.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { apiClient } from "../helpers/api-client.ts";

describe("HTTP API v1", () => {
  let gw: GatewayProcess;
  let dir: string;
  let doc: Record<string, unknown> | null = null;
  let call: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "can-api-"));
    gw = await startGatewayProcess(["-web-tx", "-web-token", "T", "-state-dir", dir]);
    call = apiClient(gw.ports.http!, () => doc);
    const r = await fetch(`http://127.0.0.1:${gw.ports.http}/api/v1/openapi.json`);
    expect(r.status).toBe(200);
    doc = (await r.json()) as Record<string, unknown>;
    expect(doc.openapi).toBe("3.1.0");
  });
  afterAll(async () => {
    await gw.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("buses: the list and one bus, by the name the gateway gives the flag-configured bus (can0)", async () => {
    const list = await call("GET", "/api/v1/buses");
    expect(list.status).toBe(200);
    const buses = (list.body as { buses: { name: string; state: string; bitrate: number }[] }).buses;
    expect(buses.map((b) => b.name)).toEqual(["can0"]);
    expect(buses[0]!.state).toBe("up");
    const one = await call("GET", "/api/v1/buses/can0");
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ name: "can0", state: "up", backend: "virtual", bitrate: 1_000_000, bitrate_source: "assumed", error_state: null });
    const none = await call("GET", "/api/v1/buses/can9");
    expect(none.status).toBe(404);
    expect((none.body as { detail: string }).detail).toContain("can0");
    expect((await call("GET", "/api/v1/nothing")).status).toBe(404);
  });

  test("a path with a malformed %-escape is a 404 problem, not a 500 from a thrown URIError", async () => {
    for (const path of ["/api/v1/buses/%E0", "/api/v1/buses/can0/jobs/%", "/api/v1/%ZZ"]) {
      const r = await fetch(`http://127.0.0.1:${gw.ports.http}${path}`);
      expect(r.status).toBe(404);
      expect(r.headers.get("content-type")).toContain("application/problem+json");
      expect(((await r.json()) as { status: number }).status).toBe(404);
    }
  });

  test("frames sent by the API reach a cannelloni client exactly, once each, and GET frames shows them", async () => {
    const c = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    try {
      await c.handshake();
      const r = await call("POST", "/api/v1/buses/can0/frames", { token: "T", body: { frames: [{ id: 291, data: "0102" }, { id: 305419896, ext: true, data: "" }] } });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ results: [{ status: "sent" }, { status: "sent" }], sent: 2, refused: 0 });
      const got = await c.waitFrames(2);
      expect(got.map(formatFrame)).toEqual(["123#0102", "12345678#"]);
      // candump text, as a body of lines (candump -L's last word) and as JSON strings.
      const t = await call("POST", "/api/v1/buses/can0/frames", { token: "T", type: "text/plain", raw: "(1.0) can0 7FF#DEADBEEF\n# comment\n123#R\n" });
      expect((t.body as { sent: number }).sent).toBe(2);
      const j = await call("POST", "/api/v1/buses/can0/frames", { token: "T", body: { frame: "00000001#AA" } });
      expect((j.body as { sent: number }).sent).toBe(1);
      expect((await c.waitFrames(5)).map(formatFrame)).toEqual(["123#0102", "12345678#", "7FF#DEADBEEF", "123#R", "00000001#AA"]);
      await Bun.sleep(100);
      expect(c.frames.length).toBe(5);
      const latest = await call("GET", "/api/v1/buses/can0/frames");
      const rows = (latest.body as { frames: { text: string; count: number }[] }).frames;
      expect(rows.map((f) => f.text)).toEqual(expect.arrayContaining(["123#R", "7FF#DEADBEEF", "12345678#", "00000001#AA"]));
      // The RTR flag is part of the id word: 123#R and 123#0102 are two rows.
      expect(rows.find((f) => f.text === "123#0102")?.count).toBe(1);
      const bus = await call("GET", "/api/v1/buses/can0");
      expect((bus.body as { counters: { tx_sent: number } }).counters.tx_sent).toBeGreaterThanOrEqual(5);
    } finally {
      c.close();
    }
  });

  test("sending needs the token: none 401, wrong 401 (counted), and nothing reaches the bus", async () => {
    const c = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    try {
      await c.handshake();
      const body = { frames: [{ id: 0x55, data: "01" }] };
      const none = await call("POST", "/api/v1/buses/can0/frames", { body });
      expect(none.status).toBe(401);
      expect(none.headers.get("www-authenticate")).toContain("Bearer");
      const wrong = await call("POST", "/api/v1/buses/can0/frames", { body, token: "X" });
      expect(wrong.status).toBe(401);
      expect((wrong.body as { type: string }).type).toBe("/api/v1/problems/bad_token");
      for (const m of ["POST", "PATCH", "DELETE"] as const) {
        const path = m === "POST" ? "/api/v1/buses/can0/jobs" : "/api/v1/buses/can0/jobs/whatever";
        // An unknown job answers 404 before the token is looked at; a known route without a token 401.
        const r = await call(m, path, { body: { frame: { id: 1, data: "" }, period_ms: 10 } });
        expect([401, 404]).toContain(r.status);
      }
      await Bun.sleep(100);
      expect(c.frames.length).toBe(0);
      expect(await gw.metric("api_requests_refused_total", { reason: "bad_token" })).toBe(1);
      expect(await gw.metric("api_requests_refused_total", { reason: "no_token" })).toBeGreaterThanOrEqual(2);
    } finally {
      c.close();
    }
  });

  test("bad input: clear problem+json 400s, 413, 405; every refusal counted", async () => {
    const post = (body: unknown) => call("POST", "/api/v1/buses/can0/frames", { token: "T", body });
    const detail = async (body: unknown): Promise<string> => {
      const r = await post(body);
      expect(r.status).toBe(400);
      return (r.body as { detail: string }).detail;
    };
    expect(await detail({ frames: [{ id: 1, data: "zz" }] })).toContain("not hex");
    expect(await detail({ frames: [{ id: 1, data: "012" }] })).toContain("not hex");
    expect(await detail({ frames: [{ id: 0x800, ext: false, data: "" }] })).toContain("above 0x7FF");
    expect(await detail({ frames: [{ id: 0x20000000, data: "" }] })).toContain("out of range");
    expect(await detail({ frames: [{ id: 1, data: "000102030405060708" }] })).toContain("at most 8");
    expect(await detail({ frames: [{ id: 1, colour: "red" }] })).toContain("colour");
    expect(await detail({ frames: [] })).toContain("no frames");
    expect(await detail({ nothing: 1 })).toContain("frames");
    const many = await post({ frames: Array.from({ length: 257 }, () => ({ id: 1, data: "" })) });
    expect(many.status).toBe(400);
    expect((many.body as { type: string }).type).toBe("/api/v1/problems/too_many_frames");
    const notJson = await call("POST", "/api/v1/buses/can0/frames", { token: "T", raw: "{nope" });
    expect(notJson.status).toBe(400);
    const big = await call("POST", "/api/v1/buses/can0/frames", { token: "T", raw: JSON.stringify({ frames: [{ id: 1, data: "00".repeat(40_000) }] }) });
    expect(big.status).toBe(413);
    const put = await call("PUT", "/api/v1/buses/can0/frames", { token: "T", body: {} });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET, HEAD, POST");
    expect((await call("DELETE", "/api/v1/buses")).status).toBe(405);
    expect(await gw.metric("api_requests_refused_total", { reason: "bad_frame" })).toBeGreaterThanOrEqual(6);
    expect(await gw.metric("api_requests_refused_total", { reason: "too_large" })).toBe(1);
    expect(await gw.metric("api_requests_refused_total", { reason: "method" })).toBe(2);
    // Bad jobs.
    const job = (body: unknown) => call("POST", "/api/v1/buses/can0/jobs", { token: "T", body });
    expect((await job({ frame: { id: 1, data: "" } })).status).toBe(400); // no period
    expect((await job({ frame: { id: 1, data: "" }, period_ms: 0 })).status).toBe(400);
    expect((await job({ frame: { id: 1, data: "" }, period_ms: 10, start_at: "tomorrow-ish" })).status).toBe(400);
    expect((await job({ period_ms: 10 })).status).toBe(400);
    expect((await call("GET", "/api/v1/buses/can0/jobs/nope")).status).toBe(404);
  });

  test("jobs: create (201), list, update in place (the next transmission carries it), delete (204, it stops)", async () => {
    const c = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    try {
      await c.handshake();
      const created = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frame: { id: 1024, data: "aa" }, period_ms: 100 } });
      expect(created.status).toBe(201);
      const id = (created.body as { id: string }).id;
      expect(created.headers.get("location")).toBe(`/api/v1/buses/can0/jobs/${id}`);
      expect(created.body).toMatchObject({ bus: "can0", source: "api", period_ms: 100, count: null, persistent: true });
      await c.waitFrames(3, 2000);
      const list = await call("GET", "/api/v1/buses/can0/jobs");
      expect((list.body as { jobs: { id: string }[]; persistent: boolean }).jobs.map((j) => j.id)).toContain(id);
      expect((await call("GET", "/api/v1/jobs")).status).toBe(200);
      const patched = await call("PATCH", `/api/v1/buses/can0/jobs/${id}`, { token: "T", body: { frame: { id: 1024, data: "bb" } } });
      expect(patched.status).toBe(200);
      const at = c.frames.length;
      await c.waitFrames(at + 2, 2000);
      // Every frame after the answer carries bb (the job's frame goes out as the wake sends it).
      const after = c.frames.slice(at).map(formatFrame);
      expect(after.every((f) => f === "400#BB")).toBe(true);
      expect(c.frames.slice(0, 3).map(formatFrame)).toEqual(["400#AA", "400#AA", "400#AA"]);
      const one = await call("GET", `/api/v1/buses/can0/jobs/${id}`);
      expect((one.body as { sent: number }).sent).toBeGreaterThanOrEqual(5);
      const del = await call("DELETE", `/api/v1/buses/can0/jobs/${id}`, { token: "T" });
      expect(del.status).toBe(204);
      await Bun.sleep(50);
      const n = c.frames.length;
      await Bun.sleep(350);
      expect(c.frames.length).toBe(n);
      expect((await call("GET", `/api/v1/buses/can0/jobs/${id}`)).status).toBe(404);
      expect((await call("DELETE", `/api/v1/buses/can0/jobs/${id}`, { token: "T" })).status).toBe(404);
      // A job that starts at a given time: scheduled, silent until then.
      const startAt = Date.now() + 400;
      const m0 = c.frames.length;
      const later = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frame: "222#01", count: 1, start_at: new Date(startAt).toISOString() } });
      expect(later.status).toBe(201);
      expect(later.body).toMatchObject({ state: "scheduled", start_at: new Date(startAt).toISOString(), period_ms: null, count: 1 });
      await Bun.sleep(200);
      expect(c.frames.length).toBe(m0);
      await c.waitFrames(m0 + 1, 2000);
      expect(Date.now()).toBeGreaterThanOrEqual(startAt - 5);
      expect(formatFrame(c.frames[m0]!)).toBe("222#01");
      // A job with a count and a sequence: exactly count transmissions, cycling through the frames.
      const m = c.frames.length;
      const counted = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frames: ["201#01", "201#02"], period_ms: 50, count: 5 } });
      expect(counted.status).toBe(201);
      const cid = (counted.body as { id: string }).id;
      await Bun.sleep(600);
      const done = (await call("GET", `/api/v1/buses/can0/jobs/${cid}`)).body as { state: string; sent: number; transmissions: number; skipped: Record<string, number> };
      expect(done).toMatchObject({ state: "finished", transmissions: 5 });
      const skipped = Object.values(done.skipped).reduce((a, b) => a + b, 0);
      expect(done.sent + skipped).toBe(5);
      // A transmission is skipped only if the (shared, loaded) machine woke the gateway 25 ms late.
      expect(done.sent).toBeGreaterThanOrEqual(4);
      expect(c.frames.length - m).toBe(done.sent);
      if (skipped === 0) expect(c.frames.slice(m).map(formatFrame)).toEqual(["201#01", "201#02", "201#01", "201#02", "201#01"]);
      expect(await gw.metric("job_tx_frames_total")).toBeGreaterThanOrEqual(10);
    } finally {
      c.close();
    }
  });

  test("jobs POST and PATCH answer 413 and 415 as the OpenAPI document says they may", async () => {
    const big = JSON.stringify({ frame: { id: 1, data: "" }, period_ms: 1000, name: "x".repeat(70_000) });
    const created = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", raw: big });
    expect(created.status).toBe(413);
    const form = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", type: "multipart/form-data; boundary=x", raw: "--x--" });
    expect(form.status).toBe(415);
    const made = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frame: { id: 0x3ff, data: "" }, period_ms: 60_000, start_at: Date.now() + 3_600_000 } });
    expect(made.status).toBe(201);
    const id = (made.body as { id: string }).id;
    try {
      expect((await call("PATCH", `/api/v1/buses/can0/jobs/${id}`, { token: "T", raw: big })).status).toBe(413);
      expect((await call("PATCH", `/api/v1/buses/can0/jobs/${id}`, { token: "T", type: "multipart/form-data; boundary=x", raw: "--x--" })).status).toBe(415);
    } finally {
      expect((await call("DELETE", `/api/v1/buses/can0/jobs/${id}`, { token: "T" })).status).toBe(204);
    }
  });
});

describe("HTTP API v1 refusals by configuration", () => {
  test("without -web-tx: 403 tx_disabled; outside -tx-allow: 403 tx_not_allowed; reading still works", async () => {
    const off = await startGatewayProcess(["-web-token", "T"]);
    try {
      const call = apiClient(off.ports.http!, () => null);
      const r = await call("POST", "/api/v1/buses/can0/frames", { token: "T", body: { frame: "123#00" } });
      expect(r.status).toBe(403);
      expect((r.body as { type: string }).type).toBe("/api/v1/problems/tx_disabled");
      expect((await call("GET", "/api/v1/buses/can0/jobs")).body).toMatchObject({ persistent: false, jobs: [] });
    } finally {
      await off.stop();
    }
    const ro = await startGatewayProcess(["-web-tx", "-web-token", "T", "-tx-allow", "10.0.0.0/8"]);
    try {
      const call = apiClient(ro.ports.http!, () => null);
      const c = await CannelloniTestClient.connect(ro.ports.cannelloni!);
      await c.handshake();
      const r = await call("POST", "/api/v1/buses/can0/frames", { token: "T", body: { frame: "123#00" } });
      expect(r.status).toBe(403);
      expect((r.body as { type: string; detail: string }).detail).toContain("-tx-allow");
      expect((await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frame: "123#00", period_ms: 10 } })).status).toBe(403);
      expect((await call("GET", "/api/v1/buses")).status).toBe(200);
      await Bun.sleep(100);
      expect(c.frames.length).toBe(0);
      c.close();
      expect(await ro.metric("api_requests_refused_total", { reason: "tx_not_allowed" })).toBe(2);
    } finally {
      await ro.stop();
    }
  });

  test("the caller's TX lane: over -client-tx-rate the frames wait, those not on the bus within -tx-max-age are refused as expired, each one said; a job over the rate skips (pending), never queues", async () => {
    const gw = await startGatewayProcess(["-web-tx", "-web-token", "T", "-client-tx-rate", "5", "-client-tx-burst", "1", "-tx-max-age", "500ms"]);
    try {
      const call = apiClient(gw.ports.http!, () => null);
      const c = await CannelloniTestClient.connect(gw.ports.cannelloni!);
      await c.handshake();
      const frames = Array.from({ length: 6 }, (_, i) => `10${i}#0${i}`);
      const r = await call("POST", "/api/v1/buses/can0/frames", { token: "T", body: { frames } });
      expect(r.status).toBe(200);
      const results = (r.body as { results: { status: string; reason?: string }[] }).results;
      // 1 token at once, then one every 200 ms: within 500 ms about 3 go, the rest expire.
      const sent = results.filter((x) => x.status === "sent").length;
      expect(sent).toBeGreaterThanOrEqual(2);
      expect(sent).toBeLessThanOrEqual(4);
      expect(results.filter((x) => x.status === "refused").every((x) => x.reason === "expired")).toBe(true);
      expect(results.slice(0, sent).every((x) => x.status === "sent")).toBe(true);
      await Bun.sleep(100);
      expect(c.frames.map(formatFrame)).toEqual(frames.slice(0, sent).map((f) => f.toUpperCase()));
      // A job at 20 ms against 5 frames/s: its own lane's bucket; the transmissions that find the
      // previous one still waiting are skipped (pending), none piles up.
      const job = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frame: "7AA#01", period_ms: 20 } });
      await Bun.sleep(1000);
      const j = (await call("GET", `/api/v1/buses/can0/jobs/${(job.body as { id: string }).id}`)).body as { sent: number; skipped: Record<string, number> };
      expect(j.sent).toBeGreaterThanOrEqual(3);
      expect(j.sent).toBeLessThanOrEqual(8);
      expect(j.skipped.pending).toBeGreaterThan(30);
      expect(((await call("GET", "/api/v1/buses/can0")).body as { tx_queued: number }).tx_queued).toBeLessThanOrEqual(1);
      c.close();
    } finally {
      await gw.stop();
    }
  });

  test("a cross-site request (a foreign Origin) is refused before the API, even with the token", async () => {
    const gw = await startGatewayProcess(["-web-tx", "-web-token", "T"]);
    try {
      const r = await fetch(`http://127.0.0.1:${gw.ports.http}/api/v1/buses/can0/frames`, {
        method: "POST",
        headers: { authorization: "Bearer T", origin: "http://evil.example", "content-type": "application/json" },
        body: JSON.stringify({ frame: "123#00" }),
      });
      expect(r.status).toBe(403);
      expect(await r.text()).toContain("cross-site");
      expect(await gw.metric("api_frames_total", { result: "sent" })).toBe(0);
    } finally {
      await gw.stop();
    }
  });

  test("wrong tokens lock the host out (429 with Retry-After), without the token being checked", async () => {
    const gw = await startGatewayProcess(["-web-tx", "-web-token", "T"]);
    try {
      const call = apiClient(gw.ports.http!, () => null);
      for (let i = 0; i < 5; i++) expect((await call("POST", "/api/v1/buses/can0/frames", { token: `bad${i}`, body: { frame: "123#00" } })).status).toBe(401);
      const locked = await call("POST", "/api/v1/buses/can0/frames", { token: "T", body: { frame: "123#00" } });
      expect(locked.status).toBe(429);
      expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
    } finally {
      await gw.stop();
    }
  });
});
