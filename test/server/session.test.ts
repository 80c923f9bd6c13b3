/**
 * ClientSession in memory, over a scripted SessionSocket (an in-memory stand-in for a Bun TCP
 * socket: it takes as many bytes as the test allows and records pause/resume/end/terminate).
 * Real-TCP versions of these scenarios are in isolation.test.ts.
 */
import { describe, expect, test } from "bun:test";
import type { SendResult, TxRequest } from "../../src/backends/backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
import { Hub } from "../../src/hub/hub.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { cannelloni } from "../../src/protocols/cannelloni/protocol.ts";
import { slcan } from "../../src/protocols/slcan/protocol.ts";
import { socketcand } from "../../src/protocols/socketcand/protocol.ts";
import { encodeForTest, HELLO } from "../helpers/cannelloni-client.ts";
import type { WireProtocol } from "../../src/protocols/protocol.ts";
import { stamped } from "../helpers/stamped.ts";
import { CLOSE_GRACE_MS, ClientSession, MAX_OWED_REPLY_BYTES, type SessionSocket } from "../../src/server/session.ts";

class ScriptedSocket implements SessionSocket {
  /** Bytes write() may still take (Infinity = all). */
  budget = Infinity;
  readonly out: number[] = [];
  paused = false;
  pauses = 0;
  ended = false;
  terminated = false;
  write(data: Uint8Array): number {
    if (this.ended || this.terminated) return -1;
    const n = Math.min(data.length, this.budget);
    this.budget -= n;
    for (let i = 0; i < n; i++) this.out.push(data[i]!);
    return n;
  }
  end(): void {
    this.ended = true;
  }
  terminate(): void {
    this.terminated = true;
  }
  pause(): void {
    this.paused = true;
    this.pauses++;
  }
  resume(): void {
    this.paused = false;
  }
  text(): string {
    return new TextDecoder().decode(Uint8Array.from(this.out));
  }
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function setup(protocol: WireProtocol, opts: { stallTimeoutMs?: number; readOnly?: boolean; rate?: number } = {}) {
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const hub = new Hub({ policy: "drop", echoClients: true, tx: { rate: opts.rate ?? 0, burst: 1, maxAgeMs: 2000, queueFrames: 64 }, stats, log });
  const written: TxRequest[] = [];
  hub.connectBus({
    up: true,
    txRefusal: () => null,
    send(req: TxRequest): SendResult {
      written.push(req);
      req.sent();
      return "accepted";
    },
  });
  const socket = new ScriptedSocket();
  let closed = false;
  const session = new ClientSession({ id: 1, remote: "test:1", readOnly: opts.readOnly ?? false }, socket, protocol, {
    hub,
    stats,
    log,
    options: { queueFrames: 64, handshakeTimeoutMs: 1000, stallTimeoutMs: opts.stallTimeoutMs ?? 60_000, fd: false, busName: "can0" },
    closed: () => {
      closed = true;
    },
  });
  session.start();
  return { stats, hub, socket, session, written, lines, isClosed: () => closed };
}

/** socketcand up to raw mode. */
function socketcandRaw(s: ClientSession): void {
  s.onData(enc("< open can0 >"));
  s.onData(enc("< rawmode >"));
}

describe("ClientSession limits", () => {
  test("a client that never reads: reading pauses as soon as a write is refused", () => {
    const { socket, session } = setup(socketcand);
    socket.budget = 0;
    socketcandRaw(session);
    session.flush();
    expect(socket.paused).toBe(true);
    socket.budget = Infinity;
    session.onDrain();
    expect(socket.paused).toBe(false);
    expect(socket.text()).toContain("< ok >");
  });

  test("owed replies are capped: past the cap the client is disconnected and counted", () => {
    const { socket, session, stats, isClosed, lines } = setup(socketcand);
    socketcandRaw(session);
    session.flush();
    socket.budget = 0; // stops reading from now on
    // Data that arrives anyway (already in flight when reading paused) keeps producing replies.
    const echo = enc("< echo >".repeat(1000));
    for (let i = 0; i < 100 && !isClosed(); i++) session.onData(echo);
    expect(isClosed()).toBe(true);
    expect(socket.terminated).toBe(true);
    expect(stats.clientsOverLimit).toBe(1);
    expect(lines.some((l) => l.includes("client_over_limit"))).toBe(true);
    // Bounded: at most the cap plus one reply was ever held.
    expect(MAX_OWED_REPLY_BYTES).toBeLessThan(1024 * 1024);
  });

  test("a backlog is written in bounded steps: one flush yields to the event loop", async () => {
    const { socket, session } = setup(socketcand);
    socketcandRaw(session);
    socket.budget = 0;
    for (let i = 0; i < 20; i++) session.onData(enc("< echo >".repeat(100))); // 2,000 replies owed
    socket.budget = Infinity;
    const before = socket.out.length;
    session.onDrain();
    const inOneTurn = socket.out.length - before;
    expect(inOneTurn).toBeLessThan(2000 * 10); // not everything in one synchronous go
    await Bun.sleep(50);
    expect(socket.text().split("< echo >").length - 1).toBe(2000);
  });

  test("a stalled reader is disconnected, a slow but steady one is not", async () => {
    const slow = setup(cannelloni, { stallTimeoutMs: 120 });
    const stalled = setup(cannelloni, { stallTimeoutMs: 120 });
    for (const s of [slow, stalled]) {
      s.session.onData(enc("CANNELLONIv1"));
      s.session.flush();
      s.socket.budget = 0;
      for (let i = 0; i < 200; i++) s.session.enqueue(stamped(dataFrame(0x100, [1, 2, 3, 4, 5, 6, 7, 8])));
      s.session.flush();
    }
    for (let t = 0; t < 8; t++) {
      await Bun.sleep(50);
      slow.socket.budget = 20; // takes a little every 50 ms
      slow.session.onDrain();
    }
    expect(stalled.isClosed()).toBe(true);
    expect(slow.isClosed()).toBe(false);
  });

  test("a handshake failure stops reading at once and closes within the grace period", async () => {
    const { socket, session, isClosed, stats } = setup(cannelloni);
    socket.budget = 0; // the client does not read the error either
    session.onData(enc("NOTCANNELLONI"));
    expect(socket.paused).toBe(true);
    expect(stats.handshakeFailures).toBe(1);
    expect(isClosed()).toBe(false);
    await Bun.sleep(CLOSE_GRACE_MS + 100);
    expect(isClosed()).toBe(true);
    expect(socket.terminated).toBe(true);
  });

  test("socketcand: frames arriving during the start delay are written after it, none lost", async () => {
    const { socket, session, hub } = setup(socketcand);
    socketcandRaw(session);
    session.flush();
    expect(session.receiving).toBe(true); // attached at once…
    hub.fromBus(dataFrame(0x123, [0xaa]));
    expect(socket.text()).not.toContain("123"); // …but held for the delay
    await Bun.sleep(80);
    expect(socket.text()).toContain("< frame 123 ");
  });

  test("a read-only client's frames are dropped and counted, never sent", () => {
    const { session, written, stats } = setup(socketcand, { readOnly: true });
    socketcandRaw(session);
    session.onData(enc("< send 123 1 aa >"));
    expect(written).toHaveLength(0);
    expect(stats.txDropped.get("read_only")).toBe(1);
    expect(session.txLane.dropped.get("read_only")).toBe(1);
  });

  test("abort at the shutdown deadline discards unwritten bytes instead of waiting", () => {
    const { socket, session, isClosed } = setup(cannelloni);
    session.onData(enc("CANNELLONIv1"));
    socket.budget = 0;
    for (let i = 0; i < 100; i++) session.enqueue(stamped(dataFrame(0x100, [1])));
    session.close("shutdown");
    expect(isClosed()).toBe(false); // still flushing
    session.abort();
    expect(isClosed()).toBe(true);
    expect(socket.terminated).toBe(true);
  });

  test("initial frames are queued, not written synchronously: a socket failing then never leaves a finished session attached (found in review)", async () => {
    const stats = new Stats();
    const { log } = memoryLogger("debug");
    const hub = new Hub({ policy: "drop", echoClients: true, tx: { rate: 0, burst: 1, maxAgeMs: 2000, queueFrames: 64 }, stats, log });
    const socket = new ScriptedSocket();
    let writes = 0;
    const write = socket.write.bind(socket);
    socket.write = (d: Uint8Array): number => (++writes >= 2 ? -1 : write(d));
    let closed = false;
    const initial = Array.from({ length: 100 }, (_, i) => stamped(dataFrame(0x100 + i, [i])));
    const session = new ClientSession({ id: 1, remote: "test:1", readOnly: false }, socket, cannelloni, {
      hub,
      stats,
      log,
      options: { queueFrames: 512, handshakeTimeoutMs: 1000, stallTimeoutMs: 60_000, fd: false, busName: "can0" },
      initialFrames: () => initial,
      closed: () => {
        closed = true;
      },
    });
    session.start();
    session.onData(enc("CANNELLONIv1"));
    await Bun.sleep(20);
    expect(closed).toBe(true);
    expect(hub.size).toBe(0);
  });
});

describe("ClientSession transmit is paced (issue 18)", () => {
  const frames = (n: number) => Array.from({ length: n }, (_, i) => dataFrame(0x100 + (i % 0x600), [i & 0xff, i >> 8]));

  test("over its rate a client is not read: undecoded bytes are kept, the socket paused, and every frame reaches the bus in order", async () => {
    const { socket, session, written, stats } = setup(cannelloni, { rate: 1000 });
    session.onData(HELLO);
    await Bun.sleep(0);
    const sent = frames(300);
    session.onData(encodeForTest(sent)); // one read: 300 frames (burst 1, 1000/s)
    expect(socket.paused).toBe(true);
    expect(written.length).toBeLessThan(100);
    const deadline = Date.now() + 3000;
    while (written.length < sent.length && Date.now() < deadline) await Bun.sleep(10);
    expect(written.map((r) => r.frame.canId)).toEqual(sent.map((f) => f.canId));
    expect(written.map((r) => r.frame.data[0])).toEqual(sent.map((f) => f.data[0]));
    await Bun.sleep(5);
    expect(socket.paused).toBe(false);
    expect([...stats.txDropped.values()].reduce((a, b) => a + b, 0)).toBe(0);
    expect(session.rxFrames).toBe(300);
  });

  test("16 paced connections of one host, each sent a long burst in one read: every frame reaches the bus, none expires", async () => {
    // Each lane holds its part of the host's budget (1,000/s × 0.6 s / 4 = 150 frames: 9 each), and
    // a slice decodes about what the lane has room for: with fixed 512-byte slices each lane took
    // up to 39 frames more, 16 × 43 frames = 0.7 s of the host's rate, and the last ones expired.
    const stats = new Stats();
    const { log } = memoryLogger("error");
    const hub = new Hub({ policy: "drop", echoClients: false, tx: { rate: 1000, burst: 1, maxAgeMs: 600, queueFrames: 256 }, stats, log });
    const written: TxRequest[] = [];
    hub.connectBus({ up: true, txRefusal: () => null, send: (req) => (written.push(req), req.sent(), "accepted") });
    const perClient = 100;
    const sessions = Array.from({ length: 16 }, (_, i) => {
      const session = new ClientSession({ id: i + 1, remote: `10.0.0.1:${5000 + i}`, readOnly: false }, new ScriptedSocket(), cannelloni, {
        hub,
        stats,
        log,
        options: { queueFrames: 64, handshakeTimeoutMs: 1000, stallTimeoutMs: 60_000, fd: false, busName: "can0" },
        closed: () => {},
      });
      session.start();
      session.onData(HELLO);
      return session;
    });
    await Bun.sleep(0);
    const burst = (k: number) => Array.from({ length: perClient }, (_, i) => dataFrame(0x100 + k, [i, 1, 2, 3, 4, 5, 6, 7]));
    sessions.forEach((s, k) => s.onData(encodeForTest(burst(k))));
    const deadline = Date.now() + 5000;
    while (written.length + [...stats.txDropped.values()].reduce((a, b) => a + b, 0) < 16 * perClient && Date.now() < deadline) await Bun.sleep(10);
    expect(stats.txDropped.get("expired") ?? 0).toBe(0);
    expect(written).toHaveLength(16 * perClient);
    for (let k = 0; k < 16; k++) {
      const mine = written.filter((r) => r.frame.canId === 0x100 + k).map((r) => r.frame.data[0]);
      expect(mine).toEqual(Array.from({ length: perClient }, (_, i) => i)); // all, in order
    }
  });

  test("slcan: a paced client still gets every ack it is owed, and is never closed for being paced", async () => {
    const { socket, session, written, isClosed } = setup(slcan, { rate: 2000 });
    session.onData(enc("O\r"));
    await Bun.sleep(0);
    const lines = Array.from({ length: 200 }, (_, i) => `t1232${(i & 0xff).toString(16).padStart(2, "0")}${(i >> 8).toString(16).padStart(2, "0")}\r`).join("");
    session.onData(enc(lines));
    expect(socket.paused).toBe(true);
    const deadline = Date.now() + 3000;
    while (written.length < 200 && Date.now() < deadline) await Bun.sleep(10);
    await Bun.sleep(5);
    expect(written).toHaveLength(200);
    expect(written.map((r) => r.frame.data[0])).toEqual(Array.from({ length: 200 }, (_, i) => i & 0xff));
    // One CR for O, one CR (accepted) per frame; no BELL.
    expect(socket.text()).toBe("\r".repeat(201));
    expect(isClosed()).toBe(false);
    expect(socket.paused).toBe(false);
  });

  test("frames a client stopped accepting while they were queued (slcan after C) are not counted as written", async () => {
    const { socket, session, hub, stats } = setup(slcan);
    session.onData(enc("O\r"));
    await Bun.sleep(0);
    expect(hub.attached.has(session)).toBe(true);
    for (const f of frames(3)) hub.fromBus(f); // queued; the flush runs at the end of this turn
    session.onData(enc("C\r"));
    await Bun.sleep(0);
    expect(socket.text()).toBe("\r\r"); // the two command replies, no frame line
    expect(session.txFrames).toBe(0);
    expect(stats.tcpTxFrames).toBe(0);
    expect(stats.protocol("slcan").txFrames).toBe(0);
  });

  test("what a paced client sent before closing still goes to the bus, in order, before the session ends", async () => {
    const { socket, session, written, isClosed } = setup(cannelloni, { rate: 2000 });
    session.onData(HELLO);
    await Bun.sleep(0);
    const sent = frames(200);
    session.onData(encodeForTest(sent));
    expect(socket.paused).toBe(true); // bytes held, not read further
    session.onSocketClosed(); // the client's FIN
    expect(isClosed()).toBe(false); // still feeding its held bytes
    const deadline = Date.now() + 3000;
    while (!isClosed() && Date.now() < deadline) await Bun.sleep(10);
    expect(isClosed()).toBe(true);
    // The last frames queued in the lane are sent after the close (logged as client_tx_settled).
    const settled = Date.now() + 3000;
    while (written.length < sent.length && Date.now() < settled) await Bun.sleep(10);
    expect(written.map((r) => r.frame.data[0])).toEqual(sent.map((f) => f.data[0]));
    expect(session.rxFrames).toBe(200);
  });
});

