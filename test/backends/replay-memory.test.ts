/**
 * `-backend replay` streams its file: the gateway runs as its own process (bun src/main.ts) and
 * its private memory (RssAnon from /proc/PID/status) is sampled while it plays a generated 256 MiB
 * candump log at -replay-speed 10000, and while it skips a 16 MiB log of malformed lines. Before
 * the file was read whole: a 16 MiB log cost 148 MiB, 4 MiB of malformed lines 1.9 GiB, a 64 MiB
 * log 6.1 GiB. Playing as fast as it can, the process's garbage-collector sawtooth alone peaks at
 * 65-97 MiB (measured with 16, 32 and 64 MiB logs: 76, 78, 97 MiB — it does not follow the file),
 * so the played log is 256 MiB and the bound 160 MiB: far below what holding that file's text
 * would cost (256 MiB on top of a ~40 MiB process), with room for the sawtooth on a loaded
 * machine. The malformed log keeps the soak's 96 MiB bound. The figures measured are printed (and
 * recorded in RELIABILITY.md).
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";

const dir = mkdtempSync(join(tmpdir(), "replay-memory-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let gw: GatewayProcess | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
});

/** Writes lines from `line(i)` until the file holds `bytes`; returns the number of lines. */
function writeLog(file: string, bytes: number, line: (i: number) => string): number {
  const fd = openSync(file, "w");
  let size = 0;
  let n = 0;
  try {
    while (size < bytes) {
      const block: string[] = [];
      for (let k = 0; k < 8192 && size < bytes; k++, n++) {
        const l = line(n);
        block.push(l);
        size += l.length;
      }
      writeSync(fd, block.join(""));
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

/** Plays `file` in a gateway process; returns the peak RssAnon (KiB) seen until replay_finished. */
async function peakWhilePlaying(file: string): Promise<{ peakKiB: number; finished: Record<string, unknown> }> {
  gw = await startGatewayProcess(["-backend", "replay", "-replay-file", file, "-replay-speed", "10000"]);
  let peakKiB = 0;
  const deadline = Date.now() + 240_000;
  for (;;) {
    peakKiB = Math.max(peakKiB, gw.memory().rssAnonKiB);
    const finished = gw.lines.find((l) => l.msg === "replay_pass_finished");
    if (finished) return { peakKiB, finished };
    if (Date.now() > deadline) throw new Error("replay did not finish within 240 s");
    await Bun.sleep(50);
  }
}

const MIB = 1024 * 1024;

describe("-backend replay memory does not depend on the file", () => {
  test("a 256 MiB candump log plays to its end with RssAnon bounded", async () => {
    const file = join(dir, "big.log");
    const lines = writeLog(file, 256 * MIB, (i) => {
      const us = 1_700_000_000_000_000 + i * 1000;
      const id = (0x0f000000 + (i & 0xffff)).toString(16).toUpperCase().padStart(8, "0");
      return `(${Math.floor(us / 1e6)}.${String(us % 1e6).padStart(6, "0")}) can0 ${id}#11223344556677${(i & 0xff).toString(16).padStart(2, "0")}\n`;
    });
    const { peakKiB, finished } = await peakWhilePlaying(file);
    console.log(`replay 256 MiB (${lines} lines): peak RssAnon ${(peakKiB / 1024).toFixed(1)} MiB`);
    expect(finished.frames).toBe(lines);
    expect(finished.malformed_lines).toBe(0);
    expect(await gw!.metric("errors_total", { where: "replay_malformed_line" })).toBe(0);
    // The bus is still up after the last frame.
    expect((await gw!.http("/ready")).status).toBe(200);
    // What remains is the garbage collector's sawtooth, not the file: holding the file's text
    // alone would exceed this bound by far.
    expect(peakKiB).toBeLessThan(160 * 1024);
  }, 300_000);

  test("a 16 MiB log of malformed lines is skipped and counted, with RssAnon bounded", async () => {
    const file = join(dir, "bad.log");
    // Every fourth line is a frame; the others are broken in different ways.
    const broken = [
      (i: number) => `(17000000xx.${String(i % 1e6).padStart(6, "0")}) can0 0F001D4C#00\n`,
      (i: number) => `(1700000000.${String(i % 1e6).padStart(6, "0")}) can0 0F001D4C#ZZ${i}\n`,
      (i: number) => `(1700000000.${String(i % 1e6).padStart(6, "0")}) can0 800#00 X extra fields ${i}\n`,
    ];
    const lines = writeLog(file, 16 * MIB, (i) =>
      i % 4 === 3 ? `(1700000000.${String(i % 1e6).padStart(6, "0")}) can0 0F001D4C#${(i & 0xff).toString(16).padStart(2, "0")}\n` : broken[i % 4]!(i),
    );
    const { peakKiB, finished } = await peakWhilePlaying(file);
    const bad = lines - Math.floor(lines / 4);
    console.log(`replay 16 MiB of malformed lines (${bad} of ${lines}): peak RssAnon ${(peakKiB / 1024).toFixed(1)} MiB`);
    expect(finished.malformed_lines).toBe(bad);
    expect(finished.frames).toBe(lines - bad);
    expect(await gw!.metric("errors_total", { where: "replay_malformed_line" })).toBe(bad);
    // The first 20 are logged with their line numbers, the rest only counted.
    const logged = gw!.lines.filter((l) => l.msg === "replay_malformed_line");
    expect(logged.map((l) => l.line)).toEqual([1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 25, 26]);
    expect(peakKiB).toBeLessThan(96 * 1024);
  }, 180_000);
});
