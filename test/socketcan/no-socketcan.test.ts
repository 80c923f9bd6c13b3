/**
 * A kernel without SocketCAN (the development and CI hosts: no AF_CAN) — the one condition the
 * SocketCAN backend cannot retry its way out of: start() rejects with BackendFatalError and a
 * message saying so, and can-server exits with code 1. Runs only where AF_CAN is missing.
 */
import { describe, expect, test } from "bun:test";
import { BackendFatalError } from "../../src/backends/backend.ts";
import { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { HAVE_AF_CAN, recorder } from "./vcan.ts";

describe.skipIf(HAVE_AF_CAN)("a kernel without AF_CAN", () => {
  test("start() rejects with BackendFatalError explaining the kernel has no SocketCAN", async () => {
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const backend = new SocketCanBackend({ iface: "can0", fd: false, stats, log });
    const error = await backend.start(recorder().listener).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(BackendFatalError);
    expect((error as Error).message).toContain("this kernel has no SocketCAN (AF_CAN)");
    expect((error as Error).message).toContain("can0");
    expect(backend.up).toBe(false);
    expect(lines.some((l) => l.includes("socketcan_fatal"))).toBe(true);
    await backend.stop();
  });

  test("can-server -backend socketcan exits with code 1 and says why", async () => {
    const proc = Bun.spawn([process.execPath, "src/main.ts", "-backend", "socketcan", "-can-if", "can0", "-listen", "127.0.0.1:0"], {
      stdout: "ignore",
      stderr: "pipe",
    });
    const timer = setTimeout(() => proc.kill(), 10_000);
    const code = await proc.exited;
    clearTimeout(timer);
    const stderr = await new Response(proc.stderr).text();
    expect(code).toBe(1);
    expect(stderr).toContain("this kernel has no SocketCAN (AF_CAN)");
  });
});
