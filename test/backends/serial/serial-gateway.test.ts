/**
 * The whole gateway on the Ampio serial backend, end to end over real parts: a socat pty pair
 * plays the adapter, cannelloni clients connect over TCP on 127.0.0.1. A hostile 20,000-frame
 * stream reaches two clients exactly; client frames reach the tty as spec §4 bytes; unplugging
 * the adapter mid-traffic keeps clients connected, flips /ready's verdict and recovers by itself;
 * a device missing at start-up and a bad -baud give clear errors. Echo is truthful: another
 * client sees a client's frame only once the backend wrote it to the tty; frames the adapter
 * cannot carry (RTR) or sent while it is unplugged are never echoed, and are counted by reason.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { type CanFrame, dataFrame, remoteFrame } from "../../../src/can/frame.ts";
import type { Config } from "../../../src/cli/config.ts";
import { ConfigError, defaultConfig, parseConfig } from "../../../src/cli/parse.ts";
import { type Gateway, startGateway } from "../../../src/gateway.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { encodeAmpioRx, encodeAmpioTx } from "../../../src/protocols/ampio-serial/codec.ts";
import { hostileStream, prng, randomChunks } from "../../fixtures/ampio-stream.ts";
import { CannelloniTestClient } from "../../helpers/cannelloni-client.ts";
import { drainPeer, readBytes, waitFor, writeAll } from "../../helpers/pty.ts";
import { expectSameFrames, PtyScope } from "./harness.ts";

const scope = new PtyScope();
const { pty, peer } = scope;
afterEach(() => scope.release());

interface SerialGateway {
  gateway: Gateway;
  stats: Stats;
  lines: string[];
  port: number;
  events(msg: string): Record<string, unknown>[];
}

async function startSerialGateway(device: string, overrides: Partial<Config> = {}): Promise<SerialGateway> {
  const config: Config = { ...defaultConfig(), backend: "serial", serial: device, listen: "127.0.0.1:0", ...overrides };
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const backend = new SerialBackend({ path: config.serial, baud: config.baud, stats, log });
  const gateway = await startGateway(config, { stats, log, backend });
  scope.defer(() => gateway.shutdown(500).then(() => undefined));
  return {
    gateway,
    stats,
    lines,
    port: gateway.port("cannelloni")!,
    events: (msg) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === msg),
  };
}

async function client(port: number): Promise<CannelloniTestClient> {
  const c = await CannelloniTestClient.connect(port, { helloFirst: true });
  scope.defer(() => {
    if (!c.closed) c.close();
  });
  await c.handshake({ helloFirst: true });
  return c;
}

/** Sends one frame from the adapter and waits until every client has it: all are attached. */
async function sentinel(adapter: number, clients: CannelloniTestClient[], id: number): Promise<void> {
  await writeAll(adapter, encodeAmpioRx(id, [0xee]));
  for (const c of clients) await c.until(() => c.frames.some((f) => f.canId === (id | 0x80000000) >>> 0), 3000, `sentinel ${id.toString(16)}`);
}

describe("gateway on the serial backend", () => {
  test("RX: 20,000 hostile-stream frames reach two cannelloni clients exactly, in order, no duplicates", async () => {
    const pair = await pty("gw-rx");
    // Large client queues: this test is about the serial path, not the hub's drop policy.
    const gw = await startSerialGateway(pair.deviceA, { hubBuffer: 50_000 });
    const adapter = peer(pair.deviceB);
    const a = await client(gw.port);
    const b = await client(gw.port);
    await sentinel(adapter, [a, b], 0x1eeeeee);
    a.frames.length = 0;
    b.frames.length = 0;

    const stream = hostileStream({ seed: 4242, frames: 19_999 });
    for (const chunk of randomChunks(stream.bytes, prng(4243))) await writeAll(adapter, chunk);
    await a.waitFrames(stream.expected.length, 30_000);
    await b.waitFrames(stream.expected.length, 30_000);
    await Bun.sleep(50);
    expectSameFrames(a.frames, stream.expected);
    expectSameFrames(b.frames, stream.expected);
    expect(a.protocolError).toBeNull();
    expect(gw.stats.serialRxFrames).toBe(20_001);
    expect(gw.stats.malformedFrames).toBe(stream.rejects);
    expect(gw.stats.hubDroppedFrames).toBe(0);
  }, 60_000);

  test("TX: frames from a TCP client appear on the tty as the exact spec §4 bytes, in order, and are echoed only once written", async () => {
    const pair = await pty("gw-tx");
    // No rate limit: this test is about the serial path, not the hub's per-client token bucket.
    const gw = await startSerialGateway(pair.deviceA, { clientTxRate: 0 });
    const adapter = peer(pair.deviceB);
    const c = await client(gw.port);
    const other = await client(gw.port);
    await sentinel(adapter, [c, other], 0x1eeeeee);
    other.frames.length = 0;
    const frames: CanFrame[] = [dataFrame(0x123, [0xaa, 0xbb, 0xcc])];
    for (let i = 0; i < 200; i++) frames.push(dataFrame(0x10000 + i, Array.from({ length: i % 9 }, (_, k) => (i + k) & 0xff), true));
    // An RTR frame in the middle: the adapter cannot carry it, so nobody may see it.
    c.send(...frames.slice(0, 100), remoteFrame(0x7ff, 1), ...frames.slice(100));
    const want = frames.flatMap((f) => [...encodeAmpioTx(f)!]);
    const got = await readBytes(adapter, want.length, 5000);
    expect([...got]).toEqual(want);
    await Bun.sleep(30);
    expect(drainPeer(adapter)).toBe(0);
    await waitFor(() => gw.stats.serialTxFrames === frames.length, 2000, "serial TX counter");
    await other.waitFrames(frames.length, 5000);
    await Bun.sleep(30);
    expectSameFrames(other.frames, frames);
    expect(gw.stats.clientTxSent).toBe(frames.length);
    expect(gw.stats.txDropped.get("unsupported")).toBe(1);
    expect(gw.stats.errors.get("backend_unsupported_frame")).toBe(1);
  });

  test("TX while the adapter does not read: nothing is echoed before it was written to the tty", async () => {
    const pair = await pty("gw-stall");
    const gw = await startSerialGateway(pair.deviceA, { hubBuffer: 50_000, clientTxRate: 0 });
    const adapter = peer(pair.deviceB);
    const c = await client(gw.port);
    const other = await client(gw.port);
    await sentinel(adapter, [c, other], 0x1eeeeef);
    other.frames.length = 0;
    // Far more than the pty and socat buffer: most of it waits in the hub while nobody reads.
    const frames = Array.from({ length: 6000 }, (_, i) => dataFrame(0x200000 + i, [1, 2, 3, 4, 5, 6, 7, 8], true));
    c.send(...frames);
    await Bun.sleep(500);
    // Everything echoed so far was written to the tty (the hub's promise, the backend's report).
    expect(other.frames.length).toBeLessThan(frames.length);
    expect(other.frames.length).toBeLessThanOrEqual(gw.stats.serialTxFrames);
    const dropped = () => [...gw.stats.txDropped.values()].reduce((a, b) => a + b, 0);
    let received = 0;
    const deadline = Date.now() + 20_000;
    while (gw.stats.clientTxSent + dropped() < frames.length && Date.now() < deadline) {
      received += drainPeer(adapter);
      await Bun.sleep(2);
    }
    // The last frames written may still be in the pty (all 6,000 are paced through now, none
    // dropped for the queue): read until they are in, bounded.
    const tail = Date.now() + 5000;
    while (received < gw.stats.serialTxFrames * 18 && Date.now() < tail) {
      received += drainPeer(adapter);
      await Bun.sleep(5);
    }
    expect(received).toBe(gw.stats.serialTxFrames * 18);
    await other.waitFrames(gw.stats.serialTxFrames, 5000);
    expect(other.frames.length).toBe(gw.stats.serialTxFrames);
    expect(gw.stats.txDropped.get("rate_limited")).toBe(0);
    // What was not written is accounted for by reason (frames that outlived -tx-max-age; the
    // client is paced, so none for its TX queue), never echoed.
    expect(gw.stats.clientTxSent + dropped()).toBe(frames.length);
    expect(gw.stats.clientTxSent).toBe(gw.stats.serialTxFrames);
  }, 30_000);

  test("hot-plug: clients stay connected through an outage, /ready reflects it, traffic resumes by itself", async () => {
    const pair = await pty("gw-hotplug");
    const gw = await startSerialGateway(pair.deviceA);
    let adapter = peer(pair.deviceB);
    const a = await client(gw.port);
    await sentinel(adapter, [a], 0x1000001);
    expect(gw.gateway.readiness().ready).toBe(true);

    // Unplug mid-traffic.
    const sending = (async () => {
      for (let i = 0; i < 500 && pair.alive; i++) {
        try {
          await writeAll(adapter, encodeAmpioRx(0x2000 + i, [i & 0xff]), 200);
        } catch {
          return;
        }
        await Bun.sleep(1);
      }
    })();
    await Bun.sleep(20);
    await pair.kill();
    await sending;
    await waitFor(() => !gw.gateway.backend.up, 5000, "backend down");
    const ready = gw.gateway.readiness();
    expect(ready.ready).toBe(false);
    expect(ready.reason).toMatch(/backend serial down: device vanished/);

    // A client frame during the outage is dropped and counted, never echoed; the client stays connected.
    const watcher = await client(gw.port);
    a.send(dataFrame(0x321, [1]));
    await waitFor(() => (gw.stats.errors.get("backend_down_tx") ?? 0) >= 1, 2000, "backend_down_tx");
    expect(gw.stats.txDropped.get("backend_down")).toBe(1);
    await Bun.sleep(30);
    expect(watcher.frames.filter((f) => f.canId === 0x321)).toEqual([]);
    expect(a.closed).toBe(false);

    await Bun.sleep(200);
    await pair.recreate();
    await waitFor(() => gw.gateway.backend.up, 5000, "backend up again");
    expect(gw.gateway.readiness().ready).toBe(true);
    adapter = peer(pair.deviceB);
    await sentinel(adapter, [a], 0x1000002);
    a.send(dataFrame(0x123, [0xaa, 0xbb, 0xcc]));
    expect([...(await readBytes(adapter, 13, 2000))]).toEqual([...encodeAmpioTx(dataFrame(0x123, [0xaa, 0xbb, 0xcc]))!]);
    expect(a.closed).toBe(false);
    expect(gw.stats.backendReconnects).toBe(1);
    expect(gw.stats.backendUp).toBe(true);
    expect(gw.events("serial_down")).toHaveLength(1);
    expect(gw.events("backend_down")).toHaveLength(1);
  }, 30_000);

  test("missing device at start-up: the gateway starts, is not ready, says why, and comes up when the device appears", async () => {
    const pair = await pty("gw-late", false);
    const gw = await startSerialGateway(pair.deviceA);
    const ready = gw.gateway.readiness();
    expect(ready.ready).toBe(false);
    expect(ready.reason).toContain(`serial device ${pair.deviceA} does not exist`);
    expect(gw.events("serial_open_failed")).toHaveLength(1);
    const a = await client(gw.port); // clients are served while the bus is away
    await pair.recreate();
    await waitFor(() => gw.gateway.readiness().ready, 5000, "ready");
    await sentinel(peer(pair.deviceB), [a], 0x1000003);
  });

  test("bad config: -baud 0 is refused with an error naming the flag", () => {
    expect(() => parseConfig(["-backend", "serial", "-baud", "0"], {})).toThrow(ConfigError);
    expect(() => parseConfig(["-backend", "serial", "-baud", "0"], {})).toThrow(/-baud/);
  });
});
