/**
 * can-utils against the recorder and the replay backend, in the SocketCAN VM (this host's kernel
 * has no AF_CAN; ../shared/vmcan): `canplayer -I` replays a file the recorder wrote onto vcan0
 * and `candump -L` shows the same frames; `candump -l` records frames sent with cansend, and the
 * replay backend plays that file with its timing. One VM boot for both.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { dataFrame, fdFrame, formatFrame, remoteFrame, CANFD_BRS, type CanFrame } from "../../src/can/frame.ts";
import { parseCandumpLog } from "../../src/can/candump-log.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { Recorder } from "../../src/consumers/recorder.ts";
import { ReplayBackend } from "../../src/backends/replay/replay-backend.ts";
import { memoryLogger, silentLogger } from "../../src/ops/log.ts";
import { stamped } from "../helpers/stamped.ts";
import { systemClock } from "../../src/can/clock.ts";
import { Stats } from "../../src/ops/stats.ts";

const VM = resolve(import.meta.dir, "../../../shared/vmcan/run-in-vm.sh");
// The VM mounts the current directory read-write: work in a folder under the repository.
const work = mkdtempSync(join(resolve(import.meta.dir, "../.."), ".tmp-canutils-"));
// afterAll, not process.on("exit"): bun test does not always emit "exit", which left these
// folders behind in the repository.
afterAll(() => rmSync(work, { recursive: true, force: true }));

const FRAMES: readonly CanFrame[] = [
  dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]),
  dataFrame(0x1d4c, [0xfe, 0x10, 1, 7, 0, 1, 0, 0x20], true),
  remoteFrame(0x7ff, 3),
  dataFrame(0x001, []),
  fdFrame(0x456, Uint8Array.from({ length: 12 }, (_, i) => i), CANFD_BRS),
];

/** Candump -L text of a frame with the frame.ts syntax, FD flags digit as can-utils writes it. */
function canutilsText(f: CanFrame): string {
  const t = formatFrame(f);
  return f.fd ? t.replace(/##(.)/, (_m, d: string) => `##${(parseInt(d, 16) | 4).toString(16).toUpperCase()}`) : t;
}

describe.skipIf(!existsSync(VM))("can-utils in the SocketCAN VM", () => {
  test("canplayer replays a recorder file; candump -l writes a log the replay backend plays with its timing", async () => {
    // 1. A recorder file (the recorder, as the gateway runs it).
    const counters = new ConsumerCounters();
    const rec = new Recorder({ id: 1, dir: join(work, "rec"), ifaces: ["can0"], maxBytes: 1 << 20, maxFiles: 2, maxAgeMs: 0, counters, log: silentLogger, flushMs: 5 });
    await rec.start();
    for (const f of FRAMES) rec.enqueue(stamped(f, systemClock.nowUs()));
    rec.recordSent(stamped(dataFrame(0x321, [0x55]), systemClock.nowUs()));
    await rec.stop();
    const recFile = join("rec", readdirSync(join(work, "rec"))[0]!);

    // 2. In the VM: canplayer → vcan0 → candump -L; and cansend → candump -l.
    const script = [
      "set -e",
      `candump -L vcan0 > played.txt & P=$!`,
      "sleep 0.5",
      `canplayer -I ${recFile} vcan0=can0`,
      "sleep 0.5; kill $P; wait $P || true",
      `mkdir -p dump && cd dump && (candump -l vcan0 & echo $! > ../dump.pid) && sleep 0.5`,
      "cansend vcan0 123#11223344; sleep 0.2; cansend vcan0 1ABCDE0F#R; sleep 0.3; cansend vcan0 7FF#; sleep 0.1; cansend vcan0 456##1AABB",
      "sleep 0.5; kill $(cat ../dump.pid)",
    ].join("\n");
    writeFileSync(join(work, "vm.sh"), script + "\n");
    const vm = Bun.spawnSync(["bash", VM, "bash vm.sh"], { cwd: work, stdout: "pipe", stderr: "pipe", env: { ...process.env, VMCAN_TIMEOUT: "120" } });
    if (vm.exitCode !== 0) throw new Error(`VM run failed (${vm.exitCode}): ${vm.stderr.toString().slice(-2000)}`);

    // canplayer sent exactly our frames, in order (candump -L shows them as can-utils parsed them).
    const played = readFileSync(join(work, "played.txt"), "latin1").trim().split("\n").map((l) => l.split(" ")[2]);
    expect(played).toEqual([...FRAMES.map(canutilsText), "321#55"]);

    // 3. The candump -l file through the replay backend, on the host.
    const dumpFile = join(work, "dump", readdirSync(join(work, "dump")).find((f) => f.startsWith("candump-"))!);
    const want = parseCandumpLog(readFileSync(dumpFile, "latin1")).records;
    expect(want.length).toBe(4);
    const got: { text: string; at: number }[] = [];
    const { log } = memoryLogger("debug");
    const replay = new ReplayBackend({ file: dumpFile, loop: false, speed: 1, fd: true, stats: new Stats(), log });
    const t0 = performance.now();
    await replay.start({ frame: (f) => got.push({ text: formatFrame(f), at: performance.now() - t0 }), state: () => {}, txReady: () => {} });
    const deadline = Date.now() + 5000;
    while (got.length < 4 && Date.now() < deadline) await Bun.sleep(10);
    await replay.stop();
    expect(got.map((g) => g.text)).toEqual(["123#11223344", "1ABCDE0F#R", "7FF#", "456##1AABB"]);
    // Original gaps: 0.2 s, 0.3 s, 0.1 s (cansend start-up adds a little in the VM).
    const gaps = want.slice(1).map((r, i) => (r.timestampUs - want[i]!.timestampUs) / 1000);
    got.slice(1).forEach((g, i) => expect(Math.abs(g.at - got[i]!.at - gaps[i]!)).toBeLessThan(40));
    expect(replay.malformedLines).toBe(0);
  }, 180_000);
});
