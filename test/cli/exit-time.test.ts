/**
 * Ctrl-C from source exits as promptly as the compiled binary: once the shutdown summary is
 * logged nothing may hold the process (a ref'd timer, socket, worker, stdin, a library's
 * handle). Run from source (`bun src/main.ts`) with the things a first hour opens: the replay
 * backend, the HTTP endpoint with a dashboard WebSocket and a /capture.pcap stream, a cannelloni
 * client, the recorder, and the MQTT bridge to a real Mosquitto. The bound (1 s after the summary)
 * is a correctness property — "exits, does not sit idle" — not a benchmark; it is generous
 * against a loaded 2-core machine (measured: 2-40 ms).
 */
import { afterAll, afterEach, beforeAll, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";

const DEMO = new URL("../../demo/ampio-demo.log", import.meta.url).pathname;
const EXIT_AFTER_SUMMARY_MS = 1000;

let dir = "";
let broker: Subprocess | undefined;
let brokerPort = 0;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "can-exit-"));
  brokerPort = 20_000 + Math.floor(Math.random() * 20_000);
  broker = Bun.spawn(["mosquitto", "-p", String(brokerPort)], { stdout: "ignore", stderr: "ignore" });
  await Bun.sleep(300);
});
afterAll(() => {
  broker?.kill();
  rmSync(dir, { recursive: true, force: true });
});

let gw: GatewayProcess | undefined;
afterEach(async () => {
  if (gw && gw.proc.exitCode === null) gw.proc.kill("SIGKILL");
  gw = undefined;
});

/** SIGINT (what Ctrl-C sends) → ms from the shutdown_summary line to the process's exit, and its code. */
async function interrupt(g: GatewayProcess): Promise<{ ms: number; code: number }> {
  g.proc.kill("SIGINT");
  await g.waitFor("shutdown_summary", 5000);
  const t0 = performance.now();
  const code = await g.proc.exited;
  return { ms: performance.now() - t0, code };
}

test("idle virtual bus: exits right after the summary", async () => {
  gw = await startGatewayProcess([]);
  const r = await interrupt(gw);
  expect(r.code).toBe(0);
  expect(r.ms).toBeLessThan(EXIT_AFTER_SUMMARY_MS);
});

test("replay + dashboard viewer + capture stream + cannelloni client + recorder + MQTT: exits right after the summary", async () => {
  gw = await startGatewayProcess(["-backend", "replay", "-replay-file", DEMO, "-replay-loop", "-record", dir, "-mqtt-url", `mqtt://127.0.0.1:${brokerPort}`]);
  const ws = new WebSocket(`ws://127.0.0.1:${gw.ports.http}/ws`);
  const wsOpen = new Promise((resolve, reject) => ((ws.onopen = resolve), (ws.onerror = reject)));
  const capture = new AbortController();
  const captured = fetch(`http://127.0.0.1:${gw.ports.http}/capture.pcap`, { signal: capture.signal }).then(async (r) => {
    for await (const _ of r.body!);
  }).catch(() => {}); // the stream ends with the gateway
  const client = await CannelloniTestClient.connect(gw.ports.cannelloni!);
  await client.handshake();
  await wsOpen;
  await gw.waitFor("mqtt_connected", 5000);
  await Bun.sleep(300);
  const r = await interrupt(gw);
  expect(r.code).toBe(0);
  expect(r.ms).toBeLessThan(EXIT_AFTER_SUMMARY_MS);
  await captured;
  client.close();
  ws.close();
});
