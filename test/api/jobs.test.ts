/**
 * Transmit jobs (issue 21 item 2) in a gateway process, measured at a real cannelloni client: a
 * 100 ms job's period and jitter, a job that outlives the HTTP client that created it and a
 * restart of the gateway (the state file), a configuration-file job, and a job on a bus that is
 * down (a cannelloni-client bus whose far end does not exist) skipped and counted, never queued.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatFrame } from "../../src/can/frame.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { apiClient } from "../helpers/api-client.ts";

const started: GatewayProcess[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const g of started.splice(0)) await g.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "can-jobs-"));
  dirs.push(d);
  return d;
}

async function gateway(args: string[]): Promise<GatewayProcess> {
  const g = await startGatewayProcess(args);
  started.push(g);
  return g;
}

async function client(g: GatewayProcess): Promise<CannelloniTestClient> {
  // With several buses the log names each single-bus listener's bus (cannelloni@can0).
  const c = await CannelloniTestClient.connect(g.ports.cannelloni ?? g.ports["cannelloni@can0"]!);
  c.stampReceipts = true;
  await c.handshake();
  return c;
}

describe("transmit jobs", () => {
  test("a 100 ms job measured at a client: period ~100 ms without drift, bounded jitter", async () => {
    const g = await gateway(["-web-tx", "-web-token", "T"]);
    const call = apiClient(g.ports.http!, () => null);
    const c = await client(g);
    // A sequence of 64 frames whose data byte is the transmission number: the client knows which
    // transmission each frame is, so a skipped one (counted, never sent late) does not blur the timing.
    const frames = Array.from({ length: 64 }, (_, k) => ({ id: 0x100, data: k.toString(16).padStart(2, "0") }));
    const r = await call("POST", "/api/v1/buses/can0/jobs", { token: "T", body: { frames, period_ms: 100 } });
    expect(r.status).toBe(201);
    await c.waitFrames(21, 5000);
    const k = c.frames.slice(0, 21).map((f) => f.data[0]!);
    const t = c.receipts.slice(0, 21);
    // Transmission numbers only grow; the missing ones were skipped and counted.
    for (let i = 1; i < k.length; i++) expect(k[i]!).toBeGreaterThan(k[i - 1]!);
    const job = (await call("GET", `/api/v1/buses/can0/jobs/${(r.body as { id: string }).id}`)).body as { skipped: Record<string, number>; sent: number };
    expect(Object.values(job.skipped).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(k[20]! - k[0]! - 20);
    // No drift: frame i arrives (k_i − k_0) · 100 ms after frame 0 (a timer re-armed from "now"
    // would add its lateness every time: 20 periods late by 2 ms each = 40 ms).
    const off = t.map((x, i) => x - t[0]! - (k[i]! - k[0]!) * 100);
    expect(Math.abs(off[20]!)).toBeLessThan(30);
    // Jitter, functional bound only (a shared, loaded machine; the figures are in BENCHMARKS.md).
    expect(off.filter((o) => Math.abs(o) < 30).length).toBeGreaterThanOrEqual(18);
    expect(c.frames.every((f) => formatFrame(f).startsWith("100#"))).toBe(true);
    c.close();
  });

  test("a job outlives the client that created it and a restart of the gateway (the state file)", async () => {
    const dir = tmp();
    const args = ["-web-tx", "-web-token", "T", "-state-dir", dir];
    const g1 = await gateway(args);
    // The creating client: its own HTTP connection, closed once the job exists.
    const r = await fetch(`http://127.0.0.1:${g1.ports.http}/api/v1/buses/can0/jobs`, {
      method: "POST",
      headers: { authorization: "Bearer T", connection: "close" },
      body: JSON.stringify({ frames: [{ id: 0x300, data: "aa" }, "301#BB"], period_ms: 50, name: "kept" }),
    });
    expect(r.status).toBe(201);
    const id = ((await r.json()) as { id: string }).id;
    const state = JSON.parse(readFileSync(join(dir, "jobs.json"), "utf8")) as { version: number; jobs: { id: string }[] };
    expect(state.version).toBe(1);
    expect(state.jobs.map((j) => j.id)).toEqual([id]);
    const c1 = await client(g1);
    await c1.waitFrames(4, 3000);
    expect(new Set(c1.frames.map(formatFrame))).toEqual(new Set(["300#AA", "301#BB"]));
    c1.close();
    expect(await g1.stop()).toBe(0);
    started.splice(started.indexOf(g1), 1);
    // No temporary file left behind.
    expect(readdirSync(dir)).toEqual(["jobs.json"]);
    expect(readFileSync(join(dir, "jobs.json"), "utf8")).toContain(id);

    const g2 = await gateway(args);
    await g2.waitFor("jobs_restored", 5000, (l) => l.jobs === 1);
    const call = apiClient(g2.ports.http!, () => null);
    const list = (await call("GET", "/api/v1/buses/can0/jobs")).body as { persistent: boolean; jobs: { id: string; name: string; period_ms: number }[] };
    expect(list.persistent).toBe(true);
    expect(list.jobs).toMatchObject([{ id, name: "kept", period_ms: 50 }]);
    const c2 = await client(g2);
    await c2.waitFrames(4, 3000);
    expect(new Set(c2.frames.map(formatFrame))).toEqual(new Set(["300#AA", "301#BB"]));
    // Deleted: gone from the file too, and not back after another restart.
    expect((await call("DELETE", `/api/v1/buses/can0/jobs/${id}`, { token: "T" })).status).toBe(204);
    expect((JSON.parse(readFileSync(join(dir, "jobs.json"), "utf8")) as { jobs: unknown[] }).jobs).toEqual([]);
    c2.close();
  });

  test("an unreadable state file is set aside and logged; the gateway starts without it", async () => {
    const dir = tmp();
    writeFileSync(join(dir, "jobs.json"), "{not json");
    const g = await gateway(["-web-tx", "-web-token", "T", "-state-dir", dir]);
    const line = await g.waitFor("jobs_state_unreadable");
    expect(String(line.set_aside)).toContain("jobs.json.bad-");
    expect(existsSync(String(line.set_aside))).toBe(true);
    const call = apiClient(g.ports.http!, () => null);
    expect(((await call("GET", "/api/v1/jobs")).body as { jobs: unknown[] }).jobs).toEqual([]);
  });

  test("configuration-file jobs start with the gateway; a job on a down bus is skipped and counted, never queued", async () => {
    const dir = tmp();
    const file = join(dir, "gw.toml");
    // Port 9 on loopback: nothing listens, so the cannelloni-client bus stays down (retrying).
    writeFileSync(
      file,
      [
        "[[bus]]",
        'name = "can0"',
        'backend = "virtual"',
        'listen = "127.0.0.1:0"',
        "[[bus]]",
        'name = "far"',
        'backend = "cannelloni-client"',
        'remote = "127.0.0.1:9"',
        "[[job]]",
        'name = "beat"',
        "frame = { id = 0x700, data = \"05\" }",
        "period_ms = 50",
        "[[job]]",
        'name = "lost"',
        'bus = "far"',
        'frame = "123#01"',
        "period_ms = 10",
        "",
      ].join("\n"),
    );
    const g = await gateway(["-config", file, "-web-tx", "-web-token", "T"]);
    const call = apiClient(g.ports.http!, () => null);
    const c = await client(g);
    await c.waitFrames(3, 3000);
    expect(c.frames.slice(0, 3).map(formatFrame)).toEqual(["700#05", "700#05", "700#05"]);
    await Bun.sleep(500);
    const far = (await call("GET", "/api/v1/buses/far")).body as { state: string; tx_queued: number; jobs: number };
    expect(far.state).toBe("down");
    expect(far.jobs).toBe(1);
    expect(far.tx_queued).toBe(0);
    const lost = (await call("GET", "/api/v1/buses/far/jobs/lost")).body as { sent: number; transmissions: number; skipped: Record<string, number>; source: string };
    expect(lost.source).toBe("config");
    expect(lost.sent).toBe(0);
    expect(lost.transmissions).toBeGreaterThan(20);
    expect(lost.skipped.backend_down).toBeGreaterThan(20);
    expect(await g.metric("job_tx_skipped_total", { reason: "backend_down" })).toBeGreaterThan(20);
    // A configuration job is the file's: the API does not change it.
    expect((await call("DELETE", "/api/v1/buses/far/jobs/lost", { token: "T" })).status).toBe(409);
    expect((await call("PATCH", "/api/v1/buses/can0/jobs/beat", { token: "T", body: { frame: "700#06" } })).status).toBe(409);
    // Both buses are listed.
    expect(((await call("GET", "/api/v1/buses")).body as { buses: { name: string }[] }).buses.map((b) => b.name)).toEqual(["can0", "far"]);
    c.close();
  });

  test("a -state-dir that cannot be written is a configuration error (exit 2, one line)", async () => {
    const dir = tmp();
    const file = join(dir, "file");
    writeFileSync(file, "");
    const p = Bun.spawn([process.execPath, new URL("../../src/main.ts", import.meta.url).pathname, "-backend", "virtual", "-state-dir", join(file, "jobs")], { stderr: "pipe", stdout: "ignore" });
    expect(await p.exited).toBe(2);
    const err = await new Response(p.stderr).text();
    expect(err.trim().split("\n")).toEqual([`can-server: configuration error: -state-dir ${join(file, "jobs")}: cannot write there (not a directory)`]);
  });
});
