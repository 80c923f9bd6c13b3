/**
 * The compiled can-server binary on a real kernel: proves the receive worker is embedded (it is
 * an extra `bun build --compile` entrypoint) and works end to end — cansend → binary → cannelloni
 * client, client → binary → candump — and that a missing interface is reported by name while the
 * process keeps retrying. scripts/test-socketcan.sh builds the binary on the host and passes its
 * path in CAN_SERVER_BINARY. Skipped when there is no vcan0 or no binary.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { formatFrame, parseFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { Candump, cansend, HAVE_VCAN, IFACE, noteSkipped, until } from "./vcan.ts";

noteSkipped();

const BINARY = process.env.CAN_SERVER_BINARY ?? "dist/socketcan-test/can-server";
const HAVE_BINARY = existsSync(BINARY);
if (HAVE_VCAN && !HAVE_BINARY) process.stderr.write(`compiled SocketCAN test skipped: no binary at ${BINARY} (scripts/test-socketcan.sh builds it)\n`);

const procs: Subprocess<"ignore", "pipe", "pipe">[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const p of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
});

/** Runs the binary and collects its stdout+stderr text. */
function server(args: string[]): { proc: Subprocess<"ignore", "pipe", "pipe">; output: () => string } {
  const proc = Bun.spawn([BINARY, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  procs.push(proc);
  let text = "";
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of proc.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  void (async () => {
    for await (const chunk of proc.stdout) text += decoder.decode(chunk, { stream: true });
  })();
  return { proc, output: () => text };
}

async function connectWithRetry(port: number): Promise<CannelloniTestClient> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await CannelloniTestClient.connect(port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await Bun.sleep(100);
    }
  }
}

const MARKER = "7FD#A1";

describe.skipIf(!HAVE_VCAN || !HAVE_BINARY)("compiled can-server binary on SocketCAN", () => {
  test("bus ⇄ cannelloni client through the binary, FD included", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const { proc, output } = server(["-backend", "socketcan", "-can-if", IFACE, "-fd", "-listen", `127.0.0.1:${port}`]);
    const client = await connectWithRetry(port);
    cleanups.push(() => client.close());
    await client.handshake();
    const deadline = Date.now() + 10_000;
    while (!client.frames.some((f) => formatFrame(f) === MARKER)) {
      if (Date.now() > deadline) throw new Error(`no frame reached the client; server said:\n${output()}`);
      cansend(IFACE, MARKER);
      await Bun.sleep(100);
    }
    const fromBus = ["123#DEADBEEF", "12345678#0011223344556677", "321#R", "456##1AABBCCDDEEFF0011"];
    for (const t of fromBus) cansend(IFACE, t);
    const got = () => client.frames.map(formatFrame).filter((t) => t !== MARKER);
    await until(() => got().length >= fromBus.length, () => `frames at the client (have ${got().join(" ")})`);
    expect(got()).toEqual(fromBus);

    const dump = await Candump.start(IFACE);
    cleanups.push(() => dump.stop());
    const toBus = ["1ABCDEF0#0102030405060708", "7FF#", "00000042#R", "7AB##2AABB"];
    client.send(...toBus.map(parseFrame));
    expect((await dump.waitFrames(toBus.length)).map(formatFrame)).toEqual(toBus);

    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
    expect(output()).not.toContain("receive worker failed");
  }, 60_000);

  test("a missing interface is named in the log and the binary keeps retrying", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const { proc, output } = server(["-backend", "socketcan", "-can-if", "vcan9", "-listen", `127.0.0.1:${port}`]);
    await until(() => output().includes("CAN interface vcan9 does not exist"), () => `the error in the log (have:\n${output()})`, 20_000);
    // Still serving clients while it retries; once it accepts, its start-up (signals included) is done.
    const client = await connectWithRetry(port);
    await client.handshake();
    client.close();
    expect(proc.exitCode).toBeNull();
    proc.kill("SIGTERM");
    expect(await proc.exited).toBe(0);
  }, 60_000);
});
