/**
 * Capture with several buses (issue 19 item 2): the pcapng encoder checked by tshark (one
 * interface per bus, `frame.interface_name`), and over real HTTP on a gateway with two virtual
 * buses: `/capture.pcapng` keeps the buses apart, `/capture.pcap?bus=NAME` carries that bus only,
 * `/capture.pcap` the first bus; bad bus selections are 400 with the reason.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame, fdFrame, CANFD_BRS, type CanFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { CAN_MTU, CANFD_MTU } from "../../src/capture/pcap.ts";
import { pcapngHeader, pcapngRecordLength, writePcapngRecord } from "../../src/capture/pcapng.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { startOperations, type Operations } from "../../src/ops/operations.ts";
import { startTwoBuses, type TwoBuses } from "../helpers/two-buses.ts";

const dir = mkdtempSync(join(tmpdir(), "capture-multibus-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let tb: TwoBuses | null = null;
let ops: Operations | null = null;
afterEach(async () => {
  await ops?.stop();
  ops = null;
  await tb?.stop();
  tb = null;
});

interface Row {
  iface: string;
  time: string;
  id: number;
  data: string;
}

function tsharkIfaceRows(file: string): Row[] {
  const r = Bun.spawnSync(["tshark", "-r", file, "-T", "fields", "-E", "separator=|", "-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "can.id", "-e", "data.data"], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`tshark failed: ${r.stderr.toString()}`);
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [iface, time, id, data] = l.split("|") as [string, string, string, string];
      return { iface, time, id: Number(id), data };
    });
}

describe("pcapng encoder", () => {
  test("tshark reads one interface per bus, named after it, with each frame on its interface and time", async () => {
    const frames: [CanFrame, number][] = [
      [dataFrame(0x123, [0xde, 0xad]), 0],
      [dataFrame(0x1d4c, [1, 2, 3], true), 1],
      [fdFrame(0x456, new Uint8Array(12).fill(7), CANFD_BRS), 1],
      [dataFrame(0x7ff, []), 0],
    ];
    const t0 = 1_700_000_000_000_001;
    const parts: Uint8Array[] = [pcapngHeader(["can0", "hat-second"])];
    frames.forEach(([f, bus], i) => {
      const out = new Uint8Array(pcapngRecordLength(f));
      expect(writePcapngRecord(out, 0, f, t0 + i * 1500, bus)).toBe(out.length);
      parts.push(out);
    });
    const file = join(dir, "known.pcapng");
    await Bun.write(file, new Blob(parts));
    const rows = tsharkIfaceRows(file);
    expect(rows.map((r) => [r.iface, r.id.toString(16)])).toEqual([
      ["can0", "123"],
      ["hat-second", "1d4c"],
      ["hat-second", "456"],
      ["can0", "7ff"],
    ]);
    expect(rows.map((r) => r.time)).toEqual(frames.map((_, i) => `1700000000.${String(1 + i * 1500).padStart(6, "0")}000`));
    expect(rows[0]!.data).toBe("dead");
  });
});

async function readAtLeast(res: Response, n: number, timeoutMs = 5000): Promise<Uint8Array> {
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  let have = 0;
  const deadline = Date.now() + timeoutMs;
  while (have < n) {
    if (Date.now() > deadline) throw new Error(`timed out with ${have} of ${n} bytes`);
    const { value, done } = await reader.read();
    if (done || !value) break;
    parts.push(value);
    have += value.length;
  }
  await reader.cancel();
  return Buffer.concat(parts);
}

async function twoBusesWithHttp(): Promise<{ t: TwoBuses; base: string }> {
  tb = await startTwoBuses({ metricsAddr: "127.0.0.1:0" });
  const { memoryLogger } = await import("../../src/ops/log.ts");
  ops = await startOperations(tb.config, { gateway: tb.gateway, stats: tb.stats[0]!, log: memoryLogger("warn").log, build: buildInfo(), counters: new ConsumerCounters() });
  return { t: tb, base: `http://127.0.0.1:${ops.httpPort}` };
}

const pcapCount = (t: TwoBuses, bus: number): number => [...t.gateway.buses[bus]!.hub.attached].filter((c) => c.protocol === "pcap").length;

async function waitAttached(t: TwoBuses, counts: [number, number]): Promise<void> {
  const deadline = Date.now() + 3000;
  while ((pcapCount(t, 0) !== counts[0] || pcapCount(t, 1) !== counts[1]) && Date.now() < deadline) await Bun.sleep(10);
  expect([pcapCount(t, 0), pcapCount(t, 1)]).toEqual(counts);
}

describe("capture over HTTP with two buses", () => {
  test("/capture.pcapng: every bus, each frame on its bus's interface (tshark frame.interface_name)", async () => {
    const { t, base } = await twoBusesWithHttp();
    const res = await fetch(`${base}/capture.pcapng`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-pcapng");
    await waitAttached(t, [1, 1]);
    t.backends[0]!.inject(dataFrame(0x100, [0]));
    t.backends[1]!.inject(dataFrame(0x111, [1]));
    t.backends[1]!.inject(dataFrame(0x112, [2]));
    t.backends[0]!.inject(dataFrame(0x103, [3]));
    const bytes = await readAtLeast(res, pcapngHeader(["can0", "can1"]).length + 4 * (32 + CAN_MTU));
    const file = join(dir, "live.pcapng");
    await Bun.write(file, bytes);
    const rows = tsharkIfaceRows(file);
    expect(rows.map((r) => `${r.iface} ${r.id.toString(16)}#${r.data}`)).toEqual(["can0 100#00", "can1 111#01", "can1 112#02", "can0 103#03"]);
    expect(Math.abs(Number(rows[0]!.time) - Date.now() / 1000)).toBeLessThan(5);
    // the reader left: detached from both buses
    await waitAttached(t, [0, 0]);
  });

  test("/capture.pcapng?bus=can1 and /capture.pcap?bus=can1: that bus only; /capture.pcap: the first bus", async () => {
    const { t, base } = await twoBusesWithHttp();
    const ng1 = await fetch(`${base}/capture.pcapng?bus=can1`);
    const p1 = await fetch(`${base}/capture.pcap?bus=can1`);
    const p0 = await fetch(`${base}/capture.pcap`);
    for (const r of [ng1, p1, p0]) expect(r.status).toBe(200);
    expect(p1.headers.get("content-type")).toBe("application/vnd.tcpdump.pcap");
    await waitAttached(t, [1, 2]);
    t.backends[0]!.inject(dataFrame(0x100, [0]));
    t.backends[1]!.inject(dataFrame(0x111, [1]));
    t.backends[0]!.inject(dataFrame(0x102, [2]));
    t.backends[1]!.inject(dataFrame(0x113, [3]));
    const f1 = join(dir, "bus1.pcap");
    const f0 = join(dir, "bus0.pcap");
    const fng = join(dir, "bus1.pcapng");
    await Bun.write(f1, await readAtLeast(p1, 24 + 2 * (16 + CAN_MTU)));
    await Bun.write(f0, await readAtLeast(p0, 24 + 2 * (16 + CAN_MTU)));
    await Bun.write(fng, await readAtLeast(ng1, pcapngHeader(["can1"]).length + 2 * (32 + CAN_MTU)));
    const ids = (file: string): string[] => tsharkIfaceRows(file).map((r) => r.id.toString(16));
    expect(ids(f1)).toEqual(["111", "113"]);
    expect(ids(f0)).toEqual(["100", "102"]);
    expect(tsharkIfaceRows(fng).map((r) => `${r.iface} ${r.id.toString(16)}`)).toEqual(["can1 111", "can1 113"]);
    expect(CANFD_MTU).toBe(72);
  });

  test("an unknown bus, or several buses in a .pcap, is 400 with the reason; nothing attached", async () => {
    const { t, base } = await twoBusesWithHttp();
    const bad = await fetch(`${base}/capture.pcapng?bus=can0,can9`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toBe('unknown bus "can9"; buses: can0, can1\n');
    const two = await fetch(`${base}/capture.pcap?bus=can0,can1`);
    expect(two.status).toBe(400);
    expect(await two.text()).toContain("/capture.pcapng");
    await waitAttached(t, [0, 0]);
  });
});
