/**
 * The pcap encoder and the live /capture.pcap stream, decoded by Debian's tshark: ids, the
 * extended and RTR flags, CAN FD with BRS/ESI, lengths, data and timestamps must come out exactly
 * as written. Then the stream over real HTTP (filter, known sequence) and a reader that never
 * reads: its frames are dropped and counted in the stream, never by the hub, which keeps serving
 * a cannelloni client at full rate.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame, fdFrame, remoteFrame, CANFD_BRS, CANFD_ESI, type CanFrame } from "../../src/can/frame.ts";
import { CAN_MTU, CANFD_MTU, LINKTYPE_CAN_SOCKETCAN, pcapGlobalHeader, pcapRecord } from "../../src/capture/pcap.ts";
import { startViewGateway, tsharkRows, type ViewGateway } from "./helpers.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";

const dir = mkdtempSync(join(tmpdir(), "pcap-test-"));
let gw: ViewGateway | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A known sequence: standard, extended, RTR standard/extended, empty, FD with BRS, ESI, both, 64 bytes. */
const KNOWN: readonly CanFrame[] = [
  dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]),
  dataFrame(0x1d4c, [0xfe, 0x10, 0x01, 0x07, 0x00, 0x01, 0x00, 0x20], true),
  remoteFrame(0x7ff, 3),
  remoteFrame(0x1abcde0f, 8, true),
  dataFrame(0x000, []),
  fdFrame(0x456, Uint8Array.from({ length: 12 }, (_, i) => i), CANFD_BRS),
  fdFrame(0x1fffffff, Uint8Array.from({ length: 16 }, (_, i) => 0xf0 | i), CANFD_ESI, true),
  fdFrame(0x001, new Uint8Array(64).fill(0x5a), CANFD_BRS | CANFD_ESI),
];

function hex(d: Uint8Array): string {
  return Buffer.from(d).toString("hex");
}

function expectDecoded(rows: ReturnType<typeof tsharkRows>, frames: readonly CanFrame[]): void {
  expect(rows.length).toBe(frames.length);
  frames.forEach((f, i) => {
    const r = rows[i]!;
    const ext = (f.canId & 0x80000000) !== 0;
    const rtr = (f.canId & 0x40000000) !== 0;
    expect(r.id).toBe(ext ? f.canId & 0x1fffffff : f.canId & 0x7ff);
    expect(r.xtd).toBe(ext ? "1" : "0");
    if (!f.fd) expect(r.rtr).toBe(rtr ? "1" : "0");
    expect(r.len).toBe(f.len);
    if (f.fd) {
      expect(r.brs).toBe(f.fdFlags & CANFD_BRS ? "1" : "0");
      expect(r.esi).toBe(f.fdFlags & CANFD_ESI ? "1" : "0");
    } else {
      expect(r.brs).toBe("");
    }
    // tshark shows the requested length of an RTR as zero bytes of data; data frames exactly.
    if (!rtr) expect(r.data).toBe(hex(f.data));
  });
}

describe("pcap encoder (LINKTYPE_CAN_SOCKETCAN)", () => {
  test("global header: magic, version 2.4, snaplen 72, link type 227", () => {
    const h = pcapGlobalHeader();
    expect(hex(h)).toBe("d4c3b2a1" + "0200" + "0400" + "00000000" + "00000000" + "48000000" + "e3000000");
    expect(LINKTYPE_CAN_SOCKETCAN).toBe(227);
  });

  test("record: little-endian header, can_id big-endian, classic frame padded to 16 bytes", () => {
    const r = pcapRecord(dataFrame(0x1d4c, [0xaa, 0xbb], true), 1_700_000_000_123_456);
    expect(r.length).toBe(16 + CAN_MTU);
    expect(hex(r.subarray(0, 16))).toBe("00f15365" + "40e20100" + "10000000" + "10000000");
    // can_id 0x80001D4C (EFF), len 2, flags 0, reserved, data, zero padding
    expect(hex(r.subarray(16))).toBe("80001d4c" + "02000000" + "aabb000000000000");
  });

  test("FD record: 72 bytes, FDF flag with BRS", () => {
    const r = pcapRecord(fdFrame(0x10, new Uint8Array(12).fill(1), CANFD_BRS), 0);
    expect(r.length).toBe(16 + CANFD_MTU);
    expect(hex(r.subarray(16, 24))).toBe("00000010" + "0c050000");
  });

  test("tshark decodes a known sequence exactly (ids, flags, FD, data, timestamps)", async () => {
    const file = join(dir, "known.pcap");
    const t0 = 1_700_000_000_000_001;
    await Bun.write(file, new Blob([pcapGlobalHeader(), ...KNOWN.map((f, i) => pcapRecord(f, t0 + i * 1_500))]));
    const rows = tsharkRows(file);
    expectDecoded(rows, KNOWN);
    expect(rows.map((r) => r.time)).toEqual(KNOWN.map((_, i) => `1700000000.${String(1 + i * 1500).padStart(6, "0")}000`));
  });
});

async function readAtLeast(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }, n: number, timeoutMs = 5000): Promise<Uint8Array> {
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
  return Buffer.concat(parts);
}

function recordBytes(frames: readonly CanFrame[]): number {
  return 24 + frames.reduce((n, f) => n + 16 + (f.fd ? CANFD_MTU : CAN_MTU), 0);
}

describe("GET /capture.pcap", () => {
  test("streams bus frames live; tshark decodes them exactly", async () => {
    gw = await startViewGateway({ fd: true });
    const res = await fetch(`${gw.httpBase}/capture.pcap`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.tcpdump.pcap");
    const reader = res.body!.getReader();
    await Bun.sleep(50);
    expect([...gw.gateway.hub.attached].some((c) => c.protocol === "pcap")).toBe(true);
    for (const f of KNOWN) gw.backend.inject(f);
    const bytes = await readAtLeast(reader, recordBytes(KNOWN));
    await reader.cancel();
    const file = join(dir, "live.pcap");
    await Bun.write(file, bytes);
    expectDecoded(tsharkRows(file), KNOWN);
    // Receive timestamps: within the last few seconds.
    const t = Number(tsharkRows(file)[0]!.time);
    expect(Math.abs(t - Date.now() / 1000)).toBeLessThan(5);
    // The reader left: the stream detaches from the hub.
    const deadline = Date.now() + 2000;
    while ([...gw.gateway.hub.attached].some((c) => c.protocol === "pcap") && Date.now() < deadline) await Bun.sleep(10);
    expect([...gw.gateway.hub.attached].some((c) => c.protocol === "pcap")).toBe(false);
  });

  test("?filter=ID/MASK passes only matching ids", async () => {
    gw = await startViewGateway();
    const res = await fetch(`${gw.httpBase}/capture.pcap?filter=1D00/FF00,123`);
    const reader = res.body!.getReader();
    await Bun.sleep(50);
    const frames = [dataFrame(0x1d4c, [1], true), dataFrame(0x124, [2]), dataFrame(0x123, [3]), dataFrame(0x2d4c, [4], true), dataFrame(0x1dff, [5], true)];
    for (const f of frames) gw.backend.inject(f);
    const want = [frames[0]!, frames[2]!, frames[4]!];
    const bytes = await readAtLeast(reader, recordBytes(want));
    await reader.cancel();
    const file = join(dir, "filtered.pcap");
    await Bun.write(file, bytes);
    expectDecoded(tsharkRows(file), want);
  });

  test("a bad filter is a 400 naming the expected syntax", async () => {
    gw = await startViewGateway();
    const res = await fetch(`${gw.httpBase}/capture.pcap?filter=xyz`);
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("ID/MASK");
  });

  test("a reader that never reads loses frames in its stream (counted), never the hub or other clients", async () => {
    gw = await startViewGateway({ hubPolicy: "kick" });
    const client = await CannelloniTestClient.connect(gw.port);
    await client.handshake();
    while (gw.gateway.registry.established < 1) await Bun.sleep(5);
    // A raw TCP reader that sends the request and then never reads a byte.
    const sock = await Bun.connect({ hostname: "127.0.0.1", port: gw.ops.httpPort!, socket: { data() {}, open() {} } });
    sock.write(`GET /capture.pcap HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    const deadline = Date.now() + 2000;
    while (![...gw.gateway.hub.attached].some((c) => c.protocol === "pcap") && Date.now() < deadline) await Bun.sleep(10);
    const capture = [...gw.gateway.hub.attached].find((c) => c.protocol === "pcap")!;
    expect(capture).toBeDefined();
    // Stop the kernel from reading for us: pause the socket (Bun keeps it readable otherwise).
    sock.pause?.();
    let sent = 0;
    for (let burst = 0; burst < 400 && gw.counters.byKind.pcap.dropped === 0; burst++) {
      for (let i = 0; i < 1000; i++) gw.backend.inject(dataFrame(0x100 + (sent++ % 0x600), [1, 2, 3, 4, 5, 6, 7, 8]));
      await Bun.sleep(2);
    }
    expect(gw.counters.byKind.pcap.dropped).toBeGreaterThan(0);
    expect(capture.dropped).toBe(gw.counters.byKind.pcap.dropped);
    expect(capture.queued).toBeLessThanOrEqual(8192);
    expect(gw.stats.hubDroppedFrames).toBe(0);
    expect(gw.stats.hubKickedClients).toBe(0);
    expect([...gw.gateway.hub.attached]).toContain(capture);
    // The cannelloni client got every frame meanwhile.
    await client.waitFrames(sent, 20_000);
    expect(client.frames.length).toBe(sent);
    client.close();
    sock.end();
  });
});
