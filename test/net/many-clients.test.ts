/**
 * Thousands of idle clients on a busy bus (issue 18: 8,118 idle Waveshare sockets at the binary's
 * old default -max-clients 0 = unlimited and 500 frames/s made /healthz p50 1.4 s): with the
 * machine-derived default client limit the fan-out stays bounded and /healthz fast. A gateway
 * process, 3,000 idle Waveshare connections from 47 loopback hosts, a cannelloni producer at
 * 500 frames/s. (At this scale the old unlimited default measured /healthz p50 41 ms, max 318 ms
 * here — with all 3,010 clients attached, which the client-count assertion catches; the 1.4 s
 * needed 8,000 readers, more than a test on a shared 2-core machine should open.)
 */
import { afterEach, expect, test } from "bun:test";
import { availableParallelism } from "node:os";
import { dataFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { openIdleSockets, type IdleSockets } from "../helpers/idle-sockets.ts";

const procs: GatewayProcess[] = [];
const idle: IdleSockets[] = [];
afterEach(async () => {
  for (const s of idle.splice(0)) s.close();
  for (const p of procs.splice(0)) await p.stop();
});

test("3,000 idle clients and 500 frames/s: /healthz p50 under 100 ms with the default client limit", async () => {
  const gw = await startGatewayProcess(["-waveshare-listen", "127.0.0.1:0", "-client-tx-rate", "0"], { shellPrefix: "ulimit -n 8192;" });
  procs.push(gw);
  // The producer first: once the client limit is reached, everyone else is refused (counted).
  const producer = await CannelloniTestClient.connect(gw.ports.cannelloni!);
  await producer.handshake();
  for (let h = 2; h < 49; h++) idle.push(await openIdleSockets(gw.ports.waveshare!, 64, `127.0.0.${h}`, "127.0.0.1", true));
  let n = 0;
  let producing = true;
  const bus = (async () => {
    // 500 frames/s in steps of 25 every 50 ms, bounded to 15 s.
    const t0 = performance.now();
    while (producing && performance.now() - t0 < 15_000) {
      producer.send(...Array.from({ length: 25 }, () => dataFrame(0x100 + (n++ % 0x100), [1, 2, 3, 4, 5, 6, 7, 8])));
      await Bun.sleep(50);
    }
  })();
  await Bun.sleep(1500);
  const ms: number[] = [];
  for (let i = 0; i < 15; i++) {
    ms.push((await gw.http("/healthz", 10_000)).ms);
    await Bun.sleep(200);
  }
  producing = false;
  await bus;
  ms.sort((a, b) => a - b);
  const p50 = ms[Math.floor(ms.length / 2)]!;
  console.log(`healthz p50 ${p50.toFixed(1)} ms, max ${ms.at(-1)!.toFixed(1)} ms; clients ${await gw.metric("protocol_clients")}; frames ${n}`);
  expect(p50).toBeLessThan(100);
  expect(ms.at(-1)!).toBeLessThan(1000);
  // The default (-max-clients 0) is a limit: 128 per core, at least 64 — not "unlimited" any more.
  // (TCP clients only: hub_active_clients also counts in-process consumers such as the dashboard meter.)
  const clients = await gw.metric("protocol_clients");
  expect(clients).toBeLessThanOrEqual(Math.max(64, 128 * availableParallelism()));
  expect(await gw.metric("clients_rejected_total", { reason: "max_clients" })).toBeGreaterThan(0);
  producer.close();
}, 90_000);
