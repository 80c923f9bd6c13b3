/**
 * The replay backend with a log written by python-can's CanutilsLogWriter (Debian python3-can):
 * frames and their timing (scaled by -replay-speed), malformed lines skipped and counted with
 * their line numbers, -replay-loop, client frames accepted and echoed, bad flags refused, and a
 * real gateway whose cannelloni client receives the replayed bus.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame, formatFrame, type CanFrame } from "../../src/can/frame.ts";
import { BackendFatalError } from "../../src/backends/backend.ts";
import { parseReplaySpeed, ReplayBackend } from "../../src/backends/replay/replay-backend.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";

const dir = mkdtempSync(join(tmpdir(), "replay-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let stopMe: (() => Promise<void>) | null = null;
afterEach(async () => {
  await stopMe?.();
  stopMe = null;
});

/** Writes `n` frames 50 ms apart with python-can's CanutilsLogWriter; returns the file. */
function pythonLog(name: string, n: number): string {
  const file = join(dir, name);
  const py = `
import can, sys
w = can.io.CanutilsLogWriter(sys.argv[1], channel="vcan0")
for i in range(${n}):
    ext = i % 2 == 1
    w.on_message_received(can.Message(timestamp=1700000000.0 + i * 0.05, arbitration_id=(0x1D4C00 + i) if ext else (0x100 + i), is_extended_id=ext, data=bytes([i, 0xAA, i ^ 0xFF])))
w.stop()
`;
  const r = Bun.spawnSync(["/usr/bin/python3", "-c", py, file], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(r.stderr.toString());
  return file;
}

interface Got {
  text: string;
  at: number;
}

async function play(file: string, speed: number, loop = false, until = (g: Got[]) => g.length >= 6, timeoutMs = 5000) {
  const got: Got[] = [];
  const { log, lines } = memoryLogger("debug");
  const backend = new ReplayBackend({ file, loop, speed, fd: false, stats: new Stats(), log });
  const t0 = performance.now();
  await backend.start({ frame: (f) => got.push({ text: formatFrame(f), at: performance.now() - t0 }), state: () => {}, txReady: () => {} });
  stopMe = () => backend.stop();
  const deadline = Date.now() + timeoutMs;
  while (!until(got) && Date.now() < deadline) await Bun.sleep(5);
  return { got, backend, lines };
}

describe("replay backend", () => {
  test("plays a python-can log with its timing", async () => {
    const file = pythonLog("py.log", 6);
    const { got } = await play(file, 1);
    expect(got.map((g) => g.text)).toEqual(["100#00AAFF", "001D4C01#01AAFE", "102#02AAFD", "001D4C03#03AAFC", "104#04AAFB", "001D4C05#05AAFA"]);
    // Frames are due at the first frame's time + 50 ms × i (the backend schedules against the
    // pass's start, so one late timer does not shift the rest): never early, and late by less
    // than a loaded machine's timer delay (a frame 25 ms late once failed a gap-to-gap check).
    for (let i = 1; i < got.length; i++) {
      const offset = got[i]!.at - got[0]!.at - 50 * i;
      expect(offset).toBeGreaterThan(-5);
      expect(offset).toBeLessThan(100);
    }
  });

  test("-replay-speed 5 plays five times as fast", async () => {
    const file = pythonLog("py5.log", 6);
    const { got } = await play(file, 5);
    expect(got.length).toBe(6);
    const span = got[5]!.at - got[0]!.at; // 250 ms of log
    expect(span).toBeGreaterThan(40);
    expect(span).toBeLessThan(110);
  });

  test("malformed lines are skipped and counted with their line numbers; comments ignored", async () => {
    const file = pythonLog("bad.log", 3);
    appendFileSync(file, "(1700000000.200000) vcan0 12#11\n# a comment\n(1700000000.250000) vcan0 7FF#1122\nnot a log line at all\n(17000000xx.0) vcan0 123#\n(1700000000.300000) vcan0 123#123\n");
    const { got, backend, lines } = await play(file, 1, false, (g) => g.length >= 4);
    expect(got.map((g) => g.text)).toEqual(["100#00AAFF", "001D4C01#01AAFE", "102#02AAFD", "7FF#1122"]);
    expect(backend.malformedLines).toBe(3);
    // python-can writes 3 lines; the appended lines are 4..9.
    expect(backend.malformedLineNumbers).toEqual([4, 8, 9]);
    const warned = lines.map((l) => JSON.parse(l) as { msg: string; line?: number }).filter((e) => e.msg === "replay_malformed_line");
    expect(warned.map((w) => w.line)).toEqual([4, 8, 9]);
  });

  test("-replay-loop starts again at the end", async () => {
    const file = pythonLog("loop.log", 3);
    const { got, backend } = await play(file, 10, true, (g) => g.length >= 9);
    expect(got.slice(0, 9).map((g) => g.text)).toEqual(Array.from({ length: 3 }, () => ["100#00AAFF", "001D4C01#01AAFE", "102#02AAFD"]).flat());
    expect(backend.passes).toBeGreaterThanOrEqual(2);
  });

  test("a file of many chunks plays in order and loops by reading it again; the queue stays bounded", async () => {
    const file = join(dir, "chunks.log");
    const n = 12_000; // ~400 KiB: several 64 KiB reads per pass
    writeFileSync(file, Array.from({ length: n }, (_, i) => `(1700000000.${String(i).padStart(6, "0")}) can0 ${formatFrame(dataFrame(0x100 + (i % 0x600), [i & 0xff, i >> 8]))}`).join("\n") + "\n");
    const { got, backend } = await play(file, 10_000, true, (g) => g.length >= 2 * n + 10, 20_000);
    expect(got.length).toBeGreaterThanOrEqual(2 * n + 10);
    for (let i = 0; i < 2 * n + 10; i++) {
      const k = i % n;
      if (got[i]!.text !== formatFrame(dataFrame(0x100 + (k % 0x600), [k & 0xff, k >> 8]))) throw new Error(`frame ${i}: ${got[i]!.text}`);
    }
    expect(backend.passes).toBeGreaterThanOrEqual(2);
    expect(backend.queued).toBeLessThan(8192);
  });

  test("bad -replay-speed and a missing file are fatal with a clear message", async () => {
    for (const bad of ["0", "-1", "fast", "", "NaN"]) expect(() => parseReplaySpeed(bad)).toThrow(BackendFatalError);
    expect(parseReplaySpeed("0.5")).toBe(0.5);
    const backend = new ReplayBackend({ file: join(dir, "nope.log"), loop: false, speed: 1, fd: false, stats: new Stats(), log: memoryLogger("debug").log });
    await expect(backend.start({ frame: () => {}, state: () => {}, txReady: () => {} })).rejects.toThrow(/cannot read replay file/);
  });

  test("on a real gateway: a cannelloni client receives the replayed bus; its own frames are accepted, counted and echoed", async () => {
    const file = join(dir, "gw.log");
    writeFileSync(file, Array.from({ length: 20 }, (_, i) => `(1700000000.${String(i * 10_000).padStart(6, "0")}) can0 ${formatFrame(dataFrame(0x200 + i, [i]))}`).join("\n") + "\n");
    const { log } = memoryLogger("debug");
    const stats = new Stats();
    const backend = new ReplayBackend({ file, loop: true, speed: 1, fd: false, stats, log });
    const config = { ...defaultConfig(), backend: "replay" as const, listen: "127.0.0.1:0", replayFile: file };
    const gw: Gateway = await startGateway(config, { stats, log, backend });
    stopMe = async () => void (await gw.shutdown(500));
    const a = await CannelloniTestClient.connect(gw.port("cannelloni")!);
    const b = await CannelloniTestClient.connect(gw.port("cannelloni")!);
    await a.handshake();
    await b.handshake();
    await a.waitFrames(25, 5000);
    const replayed = a.frames.map((f: CanFrame) => f.canId);
    expect(replayed.every((id) => id >= 0x200 && id < 0x214)).toBe(true);
    a.send(dataFrame(0x7aa, [1, 2]));
    const deadline = Date.now() + 3000;
    while (!b.frames.some((f) => f.canId === 0x7aa) && Date.now() < deadline) await Bun.sleep(10);
    expect(b.frames.some((f) => f.canId === 0x7aa)).toBe(true);
    expect(backend.txFrames).toBe(1);
    expect(gw.readiness().ready).toBe(true);
    a.close();
    b.close();
  });
});
