/**
 * The remote backends against far ends that misbehave: not a cannelloni server (wrong hello), a
 * server that accepts and says nothing, one whose stream breaks the codec after good frames, a
 * socketcand that refuses the bus. Each is a small Bun.listen server written here — a stand-in
 * because no real gateway misbehaves on purpose — on loopback. What must hold: the backend says
 * why it is down, counts it (errors_total{where="remote_link"}), keeps the good frames, and
 * retries with a growing delay instead of hammering or hanging.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { RemoteBackend } from "../../../src/backends/remote/remote-backend.ts";
import { cannelloniClientWire } from "../../../src/backends/remote/cannelloni-wire.ts";
import { socketcandClientWire } from "../../../src/backends/remote/socketcand-wire.ts";
import { formatFrame } from "../../../src/can/frame.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { encodeForTest, HELLO } from "../../helpers/cannelloni-client.ts";
import { waitFor } from "../../helpers/pty.ts";
import { recordingListener } from "../../helpers/tx-request.ts";
import { dataFrame } from "../../../src/can/frame.ts";

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A loopback server whose `greet` runs on each accepted connection; counts connections. */
function farEnd(greet: (s: Socket<undefined>) => void, onData: (s: Socket<undefined>, d: Uint8Array) => void = () => {}): { server: TCPSocketListener<undefined>; connections: number[] } {
  const connections: number[] = [];
  const server = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        connections.push(performance.now());
        greet(s);
      },
      data: (s, d) => onData(s, d),
    },
  });
  cleanups.push(() => server.stop(true));
  return { server, connections };
}

function backend(port: number, wire = cannelloniClientWire) {
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const b = new RemoteBackend({ host: "127.0.0.1", port, wire, fd: false, stats, log, reconnect: { initialMs: 20, maxMs: 160, factor: 2 }, handshakeTimeoutMs: 200 });
  const listener = recordingListener();
  cleanups.push(() => b.stop());
  return { b, stats, lines, listener };
}

describe("remote backends against misbehaving far ends", () => {
  test("not a cannelloni server: down with the reason, counted, retried at a growing delay", async () => {
    const far = farEnd((s) => s.write("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const { b, stats, listener } = backend(far.server.port);
    await b.start(listener);
    await waitFor(() => far.connections.length >= 5, 10_000, "5 attempts");
    expect(b.up).toBe(false);
    expect(b.downReason).toContain("not a cannelloni server");
    expect(stats.errors.get("remote_link")).toBeGreaterThanOrEqual(4);
    expect(listener.states).toEqual([{ up: false, reason: listener.states[0]!.reason }]);
    const gaps = far.connections.slice(1).map((t, i) => t - far.connections[i]!);
    // 20, 40, 80, 160 ms: each gap at least the delay before it (timers never fire early).
    expect(gaps[3]!).toBeGreaterThanOrEqual(150);
  });

  test("a server that accepts and says nothing: the handshake times out, retried", async () => {
    const far = farEnd(() => {});
    const { b, listener } = backend(far.server.port);
    await b.start(listener);
    await waitFor(() => far.connections.length >= 2, 10_000, "a second attempt");
    expect(b.downReason).toMatch(/no cannelloni-client handshake .* within 200 ms/);
  });

  test("good frames, then a stream that breaks the codec: the frames arrive, the connection is dropped and made again", async () => {
    const far = farEnd((s) => {
      s.write(HELLO);
      s.write(encodeForTest([dataFrame(0x10, [1]), dataFrame(0x11, [2])]));
      // A classic frame claiming 9 data bytes: a violation.
      s.write(Uint8Array.of(0, 0, 0, 0x12, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    });
    const { b, listener } = backend(far.server.port);
    await b.start(listener);
    await waitFor(() => far.connections.length >= 2, 10_000, "a reconnect after the broken stream");
    expect(listener.frames.slice(0, 2).map(formatFrame)).toEqual(["010#01", "011#02"]);
    expect(listener.states.some((s) => !s.up && s.reason.includes("cannelloni stream broken"))).toBe(true);
    expect(b.reconnects).toBeGreaterThanOrEqual(1);
  });

  test("socketcand refuses the bus: the server's words in the reason, retried", async () => {
    const far = farEnd(
      (s) => s.write("< hi >"),
      (s, d) => {
        if (new TextDecoder().decode(d).includes("< open")) s.write("< error could not open bus nosuch >");
      },
    );
    const { b, listener } = backend(far.server.port, socketcandClientWire("nosuch", new Stats()));
    await b.start(listener);
    await waitFor(() => far.connections.length >= 2, 10_000, "a second attempt");
    expect(b.up).toBe(false);
    expect(b.downReason).toContain("socketcand refused < open nosuch >: could not open bus nosuch");
  });
});
