/**
 * The gateway over real TCP on 127.0.0.1 with the virtual bus: exchange between clients and the
 * bus, handshakes (both orders, timeout, bad hello), violations closing only the offender,
 * max-clients, drop and kick policies with a client that really stops reading, echo control,
 * CAN FD gating and shutdown flushing.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, formatFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient, HELLO } from "../helpers/cannelloni-client.ts";
import { flood, startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { startSlowClient, type SlowClient } from "../helpers/slow-client.ts";

let gw: TestGateway | null = null;
const clients: CannelloniTestClient[] = [];
const slow: SlowClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) if (!c.closed) c.close();
  for (const s of slow.splice(0)) s.kill();
  await gw?.stop();
  gw = null;
});

async function client(port: number, helloFirst = false): Promise<CannelloniTestClient> {
  const c = await CannelloniTestClient.connect(port, { helloFirst });
  clients.push(c);
  await c.handshake({ helloFirst });
  return c;
}

/** Waits until the gateway has attached n receiving clients (handshakes are asynchronous). */
async function attached(n: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while (gw!.gateway.hub.size < n) {
    if (Date.now() > deadline) throw new Error(`only ${gw!.gateway.hub.size} clients attached`);
    await Bun.sleep(5);
  }
}

const text = (fs: CanFrame[]): string[] => fs.map(formatFrame);

describe("frames through the virtual bus", () => {
  test("bus frames reach every client, client frames reach the bus and the other client", async () => {
    gw = await startTestGateway();
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    const a = await client(gw.port, true); // speaks first (python-can-cannelloni)
    const b = await client(gw.port, false); // waits for the server (ESP32 ports)
    await attached(2);

    const fromBus = [dataFrame(0x123, [0xde, 0xad]), dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true), remoteFrame(0x7ff, 4)];
    for (const f of fromBus) gw.backend.inject(f);
    // RTR goes out with len 0 (in sync with python-can-cannelloni), so the DLC is not carried.
    const expectedFromBus = ["123#DEAD", "1ABCDE0F#0102030405060708", "7FF#R"];
    expect(text(await a.waitFrames(3))).toEqual(expectedFromBus);
    expect(text(await b.waitFrames(3))).toEqual(expectedFromBus);

    a.send(dataFrame(0x100, [0xaa]));
    b.send(dataFrame(0x200, []), dataFrame(0x0000_0001, [0x55], true));
    expect(text(await b.waitFrames(4)).slice(3)).toEqual(["100#AA"]);
    expect(text(await a.waitFrames(5)).slice(3)).toEqual(["200#", "00000001#55"]);
    await a.until(() => onBus.length === 3, 2000, "frames on the bus");
    expect(text(onBus).sort()).toEqual(["00000001#55", "100#AA", "200#"]);
    // A client never gets its own frame back.
    expect(a.frames.length).toBe(5);
    expect(b.frames.length).toBe(4);
    expect(gw.stats.tcpRxFrames).toBe(3);
    expect(gw.stats.tcpTxFrames).toBe(9);
  });

  test("hello and the first frame in one segment: the frame is not lost", async () => {
    gw = await startTestGateway();
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    const c = await CannelloniTestClient.connect(gw.port, { noHello: true });
    clients.push(c);
    const frame = Uint8Array.from([0x00, 0x00, 0x01, 0x23, 0x02, 0xbe, 0xef]);
    const both = new Uint8Array(HELLO.length + frame.length);
    both.set(HELLO);
    both.set(frame, HELLO.length);
    c.write(both);
    await c.until(() => onBus.length === 1, 2000, "frame on bus");
    expect(formatFrame(onBus[0]!)).toBe("123#BEEF");
  });

  test("with -echo-clients false a client frame goes to the bus only", async () => {
    gw = await startTestGateway({ echoClients: false });
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    const a = await client(gw.port);
    const b = await client(gw.port);
    await attached(2);
    a.send(dataFrame(0x321, [1]));
    await a.until(() => onBus.length === 1, 2000, "frame on bus");
    gw.backend.inject(dataFrame(0x322, [2]));
    expect(text(await b.waitFrames(1))).toEqual(["322#02"]);
    expect(b.frames.length).toBe(1);
  });

  test("CAN FD frames reach clients only when FD is enabled", async () => {
    gw = await startTestGateway({ fd: false });
    const plain = await client(gw.port);
    await attached(1);
    gw.backend.inject(fdFrame(0x10, new Uint8Array(12).fill(7), 1));
    gw.backend.inject(dataFrame(0x11, [1]));
    expect(text(await plain.waitFrames(1))).toEqual(["011#01"]);
    await gw.stop();

    gw = await startTestGateway({ fd: true });
    const fdClient = await client(gw.port);
    await attached(1);
    gw.backend.inject(fdFrame(0x10, new Uint8Array(12).fill(7), 1));
    expect(text(await fdClient.waitFrames(1))).toEqual(["010##1070707070707070707070707"]);
  });
});

describe("handshake and protocol violations", () => {
  test("a client that never says hello is closed after -handshake-timeout and counted", async () => {
    gw = await startTestGateway({ handshakeTimeoutMs: 150 });
    const c = await CannelloniTestClient.connect(gw.port, { noHello: true });
    clients.push(c);
    await c.waitClosed(3000);
    expect(gw.stats.handshakeFailures).toBe(1);
    expect(gw.stats.errors.get("handshake")).toBe(1);
    expect(gw.events().some((e) => e.msg === "handshake_failed")).toBe(true);
  });

  test("a wrong hello closes that client only", async () => {
    gw = await startTestGateway();
    const good = await client(gw.port);
    const bad = await CannelloniTestClient.connect(gw.port, { noHello: true });
    clients.push(bad);
    bad.write(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
    await bad.waitClosed();
    await attached(1);
    gw.backend.inject(dataFrame(0x1, [1]));
    expect(text(await good.waitFrames(1))).toEqual(["001#01"]);
    expect(gw.stats.handshakeFailures).toBe(1);
  });

  test("a classic frame with len 9 closes only the offender and counts malformed_frames", async () => {
    gw = await startTestGateway();
    const good = await client(gw.port);
    const bad = await client(gw.port);
    await attached(2);
    bad.write(Uint8Array.from([0, 0, 1, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    await bad.waitClosed();
    expect(gw.stats.malformedFrames).toBe(1);
    gw.backend.inject(dataFrame(0x2, [2]));
    expect(text(await good.waitFrames(1))).toEqual(["002#02"]);
    expect(good.closed).toBe(false);
  });
});

describe("limits and backpressure", () => {
  test("-max-clients rejects the extra client and counts it", async () => {
    gw = await startTestGateway({ maxClients: 2 });
    await client(gw.port);
    await client(gw.port);
    const third = await CannelloniTestClient.connect(gw.port, { noHello: true });
    clients.push(third);
    await third.waitClosed();
    expect(gw.stats.hubRejectedClients).toBe(1);
    expect(gw.gateway.registry.sessions.size).toBe(2);
  });

  test("a burst larger than a small -hub-buffer reaches a client that keeps up, under drop and kick", async () => {
    for (const hubPolicy of ["drop", "kick"] as const) {
      gw = await startTestGateway({ hubPolicy, hubBuffer: 16 });
      const a = await client(gw.port);
      const b = await client(gw.port);
      await attached(2);
      a.send(...Array.from({ length: 40 }, (_, i) => dataFrame(0x100 + i, [i]))); // one TCP write
      for (let i = 0; i < 40; i++) gw.backend.inject(dataFrame(0x200 + i, [i])); // one event-loop turn
      await b.waitFrames(80);
      expect(gw.stats.hubDroppedFrames).toBe(0);
      expect(gw.stats.hubKickedClients).toBe(0);
      await gw.stop();
      gw = null;
    }
  });

  test("drop policy: a client that stops reading loses frames but stays; a fast client gets all", async () => {
    gw = await startTestGateway({ hubPolicy: "drop", hubBuffer: 64 });
    const fast = await client(gw.port);
    slow.push(await startSlowClient(gw.port));
    await attached(2);
    const sent = await flood(gw.backend, 400_000, () => gw!.stats.hubDroppedFrames > 1000);
    expect(gw.stats.hubDroppedFrames).toBeGreaterThan(1000);
    expect(gw.stats.hubKickedClients).toBe(0);
    await fast.waitFrames(sent, 10_000);
    expect(fast.frames.length).toBe(sent);
    expect(gw.gateway.hub.size).toBe(2); // the slow client is still connected
    expect(gw.events().filter((e) => e.msg === "client_dropping").length).toBe(1);
  });

  test("kick policy: a client that stops reading is disconnected and counted", async () => {
    gw = await startTestGateway({ hubPolicy: "kick", hubBuffer: 64 });
    const fast = await client(gw.port);
    const s = await startSlowClient(gw.port);
    slow.push(s);
    await attached(2);
    const sent = await flood(gw.backend, 400_000, () => gw!.stats.hubKickedClients > 0);
    expect(gw.stats.hubKickedClients).toBe(1);
    expect(gw.stats.hubDroppedFrames).toBe(0);
    await fast.waitFrames(sent, 10_000);
    expect(gw.gateway.hub.size).toBe(1);
    expect(gw.events().some((e) => e.msg === "client_kicked")).toBe(true);
  });
});

describe("shutdown", () => {
  test("queued frames are flushed to clients before the connection closes", async () => {
    gw = await startTestGateway({ hubBuffer: 10_000 });
    const c = await client(gw.port);
    await attached(1);
    for (let i = 0; i < 5000; i++) gw.backend.inject(dataFrame(i & 0x7ff, [i & 0xff, i >> 8]));
    const summary = await gw.gateway.shutdown(2000);
    await c.waitClosed();
    expect(c.frames.length).toBe(5000);
    expect(summary.abortedAtDeadline).toBe(0);
    expect(summary.connectedAtShutdown).toBe(1);
  });
});
