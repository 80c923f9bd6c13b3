/**
 * The -record recorder on a real gateway: what it writes is read back by python-can's
 * CanutilsLogReader (Debian python3-can) frame by frame — ids, extended/RTR/FD flags, data,
 * receive timestamps and the R/T direction; files rotate by size and age and only the newest
 * -record-max-files stay; an unusable directory is an error line and counted drops, never a
 * throw, and recording resumes once the directory is usable. (canplayer replays these files in
 * recorder-canutils.test.ts, inside the SocketCAN VM.)
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CANFD_BRS, dataFrame, fdFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { Recorder, startRecorder } from "../../src/consumers/recorder.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";

const root = mkdtempSync(join(tmpdir(), "recorder-test-"));
process.on("exit", () => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => join(root, `d${n++}`);

let gw: TestGateway | null = null;
let rec: Recorder | null = null;
afterEach(async () => {
  if (rec) {
    gw?.gateway.hub.detach(rec);
    await rec.stop();
  }
  rec = null;
  await gw?.stop();
  gw = null;
});

interface PyMsg {
  t: number;
  id: number;
  ext: boolean;
  rtr: boolean;
  fd: boolean;
  brs: boolean;
  esi: boolean;
  dlc: number;
  data: string;
  rx: boolean;
  channel: string;
}

function pythonRead(file: string): PyMsg[] {
  const r = Bun.spawnSync(["/usr/bin/python3", join(import.meta.dir, "python-can-read.py"), file], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`python-can failed: ${r.stderr.toString()}`);
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l)
    .map((l) => JSON.parse(l) as PyMsg);
}

async function recorderOn(g: TestGateway, dir: string, over: Partial<ConstructorParameters<typeof Recorder>[0]> = {}): Promise<{ recorder: Recorder; counters: ConsumerCounters; lines: string[] }> {
  const counters = new ConsumerCounters();
  const { log, lines } = memoryLogger("debug");
  const recorder = new Recorder({ id: g.gateway.registry.allocateId(), dir, ifaces: ["can0"], maxBytes: 1 << 20, maxFiles: 4, maxAgeMs: 0, counters, log, flushMs: 10, ...over });
  await recorder.start();
  g.gateway.hub.attach(recorder);
  rec = recorder;
  return { recorder, counters, lines };
}

const KNOWN: readonly CanFrame[] = [
  dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]),
  dataFrame(0x1d4c, [0xfe, 0x10, 1, 7, 0, 1, 0, 0x20], true),
  remoteFrame(0x7ff, 3),
  remoteFrame(0x1abcde0f, 8, true),
  dataFrame(0x001, []),
  fdFrame(0x456, Uint8Array.from({ length: 12 }, (_, i) => i), CANFD_BRS),
];

function logFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".log"))
    .sort();
}

describe("recorder", () => {
  test("python-can's CanutilsLogReader reads back every frame exactly, with receive times", async () => {
    gw = await startTestGateway({ fd: true });
    const dir = freshDir();
    const { recorder, counters } = await recorderOn(gw, dir);
    const before = Date.now() / 1000;
    for (const f of KNOWN) gw.backend.inject(f);
    // The recorder's own sent hook: a client frame the backend wrote, marked T.
    recorder.recordSent(gw.gateway.hub.stamp(dataFrame(0x321, [0x55])));
    await recorder.stop();
    rec = null;
    const files = logFiles(dir);
    expect(files.length).toBe(1);
    const msgs = pythonRead(join(dir, files[0]!));
    expect(msgs.length).toBe(KNOWN.length + 1);
    KNOWN.forEach((f, i) => {
      const m = msgs[i]!;
      const ext = (f.canId & 0x80000000) !== 0;
      expect(m.id).toBe(ext ? f.canId & 0x1fffffff : f.canId & 0x7ff);
      expect(m.ext).toBe(ext);
      expect(m.rtr).toBe((f.canId & 0x40000000) !== 0);
      expect(m.fd).toBe(f.fd);
      expect(m.brs).toBe(f.fd && (f.fdFlags & CANFD_BRS) !== 0);
      expect(m.dlc).toBe(f.len);
      if (!m.rtr) expect(m.data).toBe(Buffer.from(f.data).toString("hex"));
      expect(m.rx).toBe(true);
      expect(m.channel).toBe("can0");
      expect(m.t).toBeGreaterThanOrEqual(before - 0.01);
      expect(m.t).toBeLessThanOrEqual(Date.now() / 1000 + 0.01);
    });
    const last = msgs[KNOWN.length]!;
    expect(last.id).toBe(0x321);
    expect(last.rx).toBe(false);
    // Timestamps never go backwards within a file.
    for (let i = 1; i < msgs.length; i++) expect(msgs[i]!.t).toBeGreaterThanOrEqual(msgs[i - 1]!.t);
    expect(counters.byKind.recorder.frames).toBe(KNOWN.length + 1);
    expect(counters.byKind.recorder.dropped).toBe(0);
  });

  test("rotates by size and keeps only the newest max-files files", async () => {
    gw = await startTestGateway();
    const dir = freshDir();
    const { recorder, counters } = await recorderOn(gw, dir, { maxBytes: 4096, maxFiles: 3 });
    let sent = 0;
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 0; i < 100; i++) gw.backend.inject(dataFrame(sent++ & 0x7ff, [1, 2, 3, 4, 5, 6, 7, 8]));
      await Bun.sleep(15);
    }
    await recorder.stop();
    rec = null;
    const files = logFiles(dir);
    expect(files.length).toBe(3);
    let lines = 0;
    for (const f of files) {
      expect(statSync(join(dir, f)).size).toBeLessThanOrEqual(4096);
      lines += readFileSync(join(dir, f), "latin1").split("\n").length - 1;
    }
    expect(counters.byKind.recorder.frames).toBe(sent);
    // The newest file ends with the last frame injected.
    const newest = pythonRead(join(dir, files[2]!));
    expect(newest[newest.length - 1]!.id).toBe((sent - 1) & 0x7ff);
    expect(lines).toBeLessThan(sent);
  });

  test("rotates by age", async () => {
    gw = await startTestGateway();
    const dir = freshDir();
    const { recorder } = await recorderOn(gw, dir, { maxAgeMs: 100 });
    for (let i = 0; i < 4; i++) {
      gw.backend.inject(dataFrame(0x10 + i, [i]));
      await Bun.sleep(130);
    }
    await recorder.stop();
    rec = null;
    expect(logFiles(dir).length).toBeGreaterThanOrEqual(3);
  });

  test("an unusable directory is a clear error and counted drops, never a throw; recording resumes once it is usable", async () => {
    gw = await startTestGateway();
    const blocker = freshDir();
    writeFileSync(blocker, "a file where the directory should be\n");
    const dir = join(blocker, "rec");
    const { recorder, counters, lines } = await recorderOn(gw, dir);
    for (let i = 0; i < 10; i++) gw.backend.inject(dataFrame(0x100 + i, [i]));
    const deadline = Date.now() + 3000;
    while (counters.byKind.recorder.dropped < 10 && Date.now() < deadline) await Bun.sleep(10);
    expect(counters.byKind.recorder.dropped).toBe(10);
    expect(recorder.dropped).toBe(10);
    const errors = lines.map((l) => JSON.parse(l) as { msg: string; reason?: string; dir?: string }).filter((e) => e.msg === "recorder_error");
    expect(errors.length).toBe(1);
    expect(errors[0]!.dir).toBe(dir);
    expect(recorder.lastError).toContain("ENOTDIR");
    // Fix the directory; after the back-off the next frames are written.
    rmSync(blocker);
    await Bun.sleep(1100);
    for (let i = 0; i < 5; i++) gw.backend.inject(dataFrame(0x200 + i, [i]));
    const d2 = Date.now() + 5000;
    while (counters.byKind.recorder.frames < 5 && Date.now() < d2) await Bun.sleep(20);
    expect(counters.byKind.recorder.frames).toBe(5);
    expect(recorder.lastError).toBe("");
    expect(pythonRead(join(dir, logFiles(dir)[0]!)).map((m) => m.id)).toEqual([0x200, 0x201, 0x202, 0x203, 0x204]);
  });

  test("a full queue drops and counts; the hub never counts the recorder as a slow client", async () => {
    gw = await startTestGateway({ hubPolicy: "kick" });
    const dir = freshDir();
    const { recorder, counters } = await recorderOn(gw, dir, { queueFrames: 100, flushMs: 1000 });
    for (let i = 0; i < 250; i++) gw.backend.inject(dataFrame(i, [1]));
    expect(recorder.queued).toBe(100);
    expect(counters.byKind.recorder.dropped).toBe(150);
    expect(gw.stats.hubDroppedFrames).toBe(0);
    expect(gw.stats.hubKickedClients).toBe(0);
    await recorder.stop();
    rec = null;
    expect(counters.byKind.recorder.frames).toBe(100);
  });

  test("a client frame the bus took is written once, as T (not echoed in as R); bus frames as R", async () => {
    gw = await startTestGateway({ clientTxRate: 0 });
    const dir = freshDir();
    const counters = new ConsumerCounters();
    const { log } = memoryLogger("debug");
    const started = await startRecorder(
      { record: dir, recordMaxBytes: 1 << 20, recordMaxFiles: 4, recordMaxAgeMs: 0 },
      { buses: gw.gateway.buses, allocateId: () => gw!.gateway.registry.allocateId(), counters, log },
    );
    const client = await CannelloniTestClient.connect(gw.port);
    await client.handshake();
    await Bun.sleep(20);
    client.send(dataFrame(0x321, [0x55]));
    gw.backend.inject(dataFrame(0x123, [0x01]));
    const deadline = Date.now() + 3000;
    while (counters.byKind.recorder.frames < 2 && Date.now() < deadline) await Bun.sleep(10);
    await started.stop();
    const msgs = pythonRead(join(dir, logFiles(dir)[0]!));
    expect(msgs.map((m) => [m.id, m.rx]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
      [0x123, true],
      [0x321, false],
    ]);
    client.close();
  });
});
