/**
 * The -record recorder on a gateway with two virtual buses (issue 19 item 2): one file set for
 * both, each line naming its bus as the candump interface (`(ts) can1 123#…`), for bus frames (R)
 * and for client frames the gateway sent (T, from each bus's sent hook); python-can's
 * CanutilsLogReader (Debian python3-can) reads the bus back as `channel`.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { startRecorder } from "../../src/consumers/recorder.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { waitFor } from "../helpers/gateway.ts";
import { startTwoBuses, type TwoBuses } from "../helpers/two-buses.ts";

const root = mkdtempSync(join(tmpdir(), "recorder-multibus-"));
let tb: TwoBuses | null = null;
afterEach(async () => {
  await tb?.stop();
  tb = null;
});
process.on("exit", () => rmSync(root, { recursive: true, force: true }));

describe("recorder with two buses", () => {
  test("each line names its bus; python-can reads the bus back as channel; T lines from either bus", async () => {
    tb = await startTwoBuses({}, [{}, {}], ["can0", "hat1"]);
    const t = tb;
    const dir = join(root, "a");
    const counters = new ConsumerCounters();
    const { log } = memoryLogger("warn");
    const rec = await startRecorder({ record: dir, recordMaxBytes: 1 << 20, recordMaxFiles: 4, recordMaxAgeMs: 0 }, { buses: t.gateway.buses, allocateId: () => t.gateway.registry.allocateId(), counters, log });
    // a client of the second bus (its own cannelloni listener) sends one frame: T on hat1
    const c1 = await CannelloniTestClient.connect(t.gateway.buses[1]!.port("cannelloni")!);
    await c1.handshake();
    t.backends[0]!.inject(dataFrame(0x100, [0]));
    t.backends[1]!.inject(dataFrame(0x1abcde0f, [1, 2], true));
    t.backends[0]!.inject(dataFrame(0x102, [2]));
    c1.send(dataFrame(0x321, [0x55]));
    await waitFor(() => t.stats[1]!.clientTxSent === 1, "the client's frame sent on hat1");
    c1.close();
    await rec.stop();
    const files = readdirSync(dir);
    expect(files.length).toBe(1);
    const text = readFileSync(join(dir, files[0]!), "latin1");
    const lines = text.trim().split("\n").map((l) => l.replace(/^\(\d+\.\d{6}\) /, ""));
    expect(lines).toEqual(["can0 100#00 R", "hat1 1ABCDE0F#0102 R", "can0 102#02 R", "hat1 321#55 T"]);

    const py = Bun.spawnSync(["/usr/bin/python3", join(import.meta.dir, "python-can-read.py"), join(dir, files[0]!)], { stderr: "pipe" });
    expect(py.exitCode).toBe(0);
    const msgs = py.stdout.toString().trim().split("\n").map((l) => JSON.parse(l) as { id: number; channel: string; rx: boolean });
    expect(msgs.map((m) => [m.channel, m.id.toString(16), m.rx])).toEqual([
      ["can0", "100", true],
      ["hat1", "1abcde0f", true],
      ["can0", "102", true],
      ["hat1", "321", false],
    ]);
  });
});
