/**
 * End to end on a real kernel: cansend → vcan0 → SocketCanBackend → gateway → real cannelloni
 * TCP clients on 127.0.0.1 (inside the VM), and back: client → gateway → vcan0 → candump, echoed
 * to the other clients only once written; error frames from a client never reach the bus.
 * Skipped, with a notice, on a kernel without AF_CAN or without vcan0.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import { formatFrame, parseFrame } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { ATTACH_MARKER, attached, Candump, cansend, HAVE_VCAN, IFACE, noteSkipped, until } from "./vcan.ts";

noteSkipped();

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gatewayOnVcan(fd: boolean): Promise<{ gateway: Gateway; stats: Stats; port: number }> {
  // No per-client rate limit: these tests are about the SocketCAN path, not the token bucket.
  const config: Config = { ...defaultConfig(), backend: "socketcan", canIf: IFACE, listen: "127.0.0.1:0", fd, clientTxRate: 0 };
  const stats = new Stats();
  const { log } = memoryLogger("info");
  const backend = new SocketCanBackend({ iface: IFACE, fd, stats, log });
  const gateway = await startGateway(config, { stats, log, backend });
  cleanups.push(() => gateway.shutdown(500));
  return { gateway, stats, port: gateway.port("cannelloni")! };
}

async function client(port: number): Promise<CannelloniTestClient> {
  const c = await CannelloniTestClient.connect(port);
  cleanups.push(() => c.close());
  await c.handshake();
  return c;
}

const MARKER = ATTACH_MARKER;

/** What a client received from the bus, markers left out (late ones may still arrive). */
async function busFrames(c: CannelloniTestClient, n: number): Promise<string[]> {
  const got = () => c.frames.map(formatFrame).filter((t) => t !== MARKER);
  await until(() => got().length >= n, () => `${n} frames at the client (have ${got().join(" ")})`);
  return got();
}

describe.skipIf(!HAVE_VCAN)("gateway on SocketCAN (real kernel, real cannelloni TCP clients)", () => {
  test("bus → clients: classic, extended, RTR and CAN FD (with -fd) arrive exactly at every client", async () => {
    const { gateway, stats, port } = await gatewayOnVcan(true);
    expect(gateway.readiness().ready).toBe(true);
    const a = await client(port);
    const b = await client(port);
    await attached(a, b);
    // RTR frames travel with len 0 over cannelloni (spec §2), so they are sent with DLC 0 here.
    const sent = ["123#DEADBEEF", "12345678#0011223344556677", "321#R", "1ABCDEF0#R", "000#", "456##1AABBCCDDEEFF0011", `7FF##3${"C3".repeat(64)}`];
    for (const t of sent) cansend(IFACE, t);
    expect(await busFrames(a, sent.length)).toEqual(sent);
    expect(await busFrames(b, sent.length)).toEqual(sent);
    expect(stats.socketcanRxFrames).toBeGreaterThanOrEqual(sent.length);
  });

  test("without -fd no FD frame reaches a client", async () => {
    const { port } = await gatewayOnVcan(false);
    const a = await client(port);
    await attached(a);
    cansend(IFACE, "456##1AABBCCDDEEFF0011");
    cansend(IFACE, "124#01");
    await busFrames(a, 1);
    await Bun.sleep(100);
    expect(await busFrames(a, 1)).toEqual(["124#01"]);
  });

  test("client → bus: frames from a cannelloni client appear in candump exactly, are echoed once written; error frames never go", async () => {
    const { stats, port } = await gatewayOnVcan(true);
    const a = await client(port);
    const b = await client(port);
    await attached(a, b);
    const dump = await Candump.start(IFACE);
    cleanups.push(() => dump.stop());
    const sent = ["123#DEADBEEF", "1ABCDEF0#0102030405060708", "321#R", "000#", "456##1AABB", `7AB##2${"5A".repeat(48)}`];
    const errorFrame = { canId: 0x20000004, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    a.send(...sent.slice(0, 3).map(parseFrame), errorFrame, ...sent.slice(3).map(parseFrame));
    expect((await dump.waitFrames(sent.length)).map(formatFrame)).toEqual(sent);
    await until(() => stats.socketcanTxFrames === sent.length, "tx counter");
    // What b saw besides the attach markers and candump's start-up sentinel (7FE#5E, from the bus).
    const echoed = () => b.frames.map(formatFrame).filter((t) => t !== MARKER && t !== "7FE#5E");
    await until(() => echoed().length >= sent.length, () => `echo at b (have ${echoed().join(" ")})`);
    await Bun.sleep(200);
    expect(echoed()).toEqual(sent);
    expect(dump.frames().map(formatFrame)).toEqual(sent);
    expect(stats.txDropped.get("unsupported")).toBe(1);
    expect(stats.errors.get("backend_unsupported_frame")).toBe(1);
    expect(stats.clientTxSent).toBe(sent.length);
  });
});
