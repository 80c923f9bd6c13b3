/**
 * The slcan backend beyond the transmit contract, on a real pty with a scripted Lawicel adapter
 * (test/helpers/lawicel-device.ts): the open sequence (close, bit rate, open) on every open,
 * received lines (frames, acks, replies, garbage, BEL), the adapter vanishing and coming back,
 * stop() closing the channel, and bit rates an adapter cannot take.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { BackendFatalError } from "../../../src/backends/backend.ts";
import { createSlcanBackend } from "../../../src/backends/slcan/slcan-backend.ts";
import { dataFrame, formatFrame, remoteFrame } from "../../../src/can/frame.ts";
import { memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { CannelloniTestClient } from "../../helpers/cannelloni-client.ts";
import { startGatewayProcess } from "../../helpers/gateway-process.ts";
import { LawicelDevice } from "../../helpers/lawicel-device.ts";
import { waitFor } from "../../helpers/pty.ts";
import { recordingListener, TxLog } from "../../helpers/tx-request.ts";
import { PtyScope } from "../serial/harness.ts";

const scope = new PtyScope();
afterEach(() => scope.release());

async function setup(bitrate = 0) {
  const pair = await scope.pty("slcan");
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const backend = createSlcanBackend({ path: pair.deviceA, baud: 115200, bitrate, stats, log, reconnect: { initialMs: 10, maxMs: 100, factor: 2 } });
  const device = new LawicelDevice(scope.peer(pair.deviceB));
  scope.defer(() => device.close());
  const listener = recordingListener();
  await backend.start(listener);
  scope.defer(() => backend.stop());
  await waitFor(() => backend.up && device.open, 5000, "backend up, adapter open");
  return { pair, stats, lines, backend, device, listener };
}

const names = (frames: readonly Parameters<typeof formatFrame>[0][]) => frames.map(formatFrame);

describe("slcan backend", () => {
  test("opens the adapter with close, bit rate, open — -bitrate 125000 is S4, 0 means S6", async () => {
    const a = await setup(125_000);
    expect(a.device.lines.slice(0, 3)).toEqual(["C", "S4", "O"]);
    expect(a.device.bitrateCommand).toBe("S4");
    // The adapter's BEL to closing a closed channel is normal: not counted, not logged.
    await Bun.sleep(50);
    expect(a.stats.errors.get("adapter_refused")).toBe(0);
    expect(a.backend.kind).toBe("slcan");
    await scope.release();
    const b = await setup(0);
    expect(b.device.lines.slice(0, 3)).toEqual(["C", "S6", "O"]);
  });

  test("received frame lines become frames; acks and replies are skipped, malformed lines counted, BEL counted", async () => {
    const { device, listener, stats, lines } = await setup();
    device.send("t1230", "T1ABCDEF08DEADBEEF01020304", "r7FF2", "R000000015", "", "z", "Z", "V1013", "F00");
    device.send("t12", "t12391122", "tXYZ0");
    device.write(Uint8Array.of(0x07));
    device.send("t4561AA");
    await waitFor(() => listener.frames.length >= 5, 5000, "5 frames");
    await Bun.sleep(30);
    expect(names(listener.frames)).toEqual(
      names([
        dataFrame(0x123, []),
        dataFrame(0x1abcdef0, [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4], true),
        remoteFrame(0x7ff, 2),
        remoteFrame(0x1, 5, true),
        dataFrame(0x456, [0xaa]),
      ]),
    );
    expect(stats.malformedFrames).toBe(3);
    expect(stats.serialRxFrames).toBe(5);
    expect(stats.errors.get("adapter_refused")).toBe(1);
    expect(lines.some((l) => l.includes("adapter_refused"))).toBe(true);
  });

  test("transmitted frames are Lawicel lines in upper-case hex; a refused frame (BEL) is counted", async () => {
    const { backend, device, stats } = await setup();
    const log = new TxLog();
    const frames = [dataFrame(0xab, [0x0f, 0xf0]), dataFrame(0x1234567, [], true), remoteFrame(0x10, 3)];
    for (const f of frames) expect(backend.send(log.request(f))).toBe("accepted");
    await waitFor(() => device.frames.length === 3, 5000, "3 frames at the adapter");
    expect(device.lines.slice(3)).toEqual(["t0AB20FF0", "T012345670", "r0103"]);
    device.refuseFrames = true;
    backend.send(log.request(dataFrame(0x1, [1])));
    await waitFor(() => stats.errors.get("adapter_refused") === 1, 5000, "the refusal counted");
    expect(log.with("sent").length).toBe(4);
  });

  test("the adapter vanishes and comes back: down once, reopened with the full open sequence, frames flow again", async () => {
    const { pair, backend, device, listener } = await setup();
    await pair.kill();
    await waitFor(() => !backend.up, 5000, "down");
    expect(backend.downReason).toContain("vanished");
    await pair.recreate();
    device.reopen(scope.peer(pair.deviceB));
    await waitFor(() => backend.up && device.open, 5000, "up again, adapter open");
    expect(backend.reconnects).toBe(1);
    expect(device.lines.filter((l) => l === "O").length).toBe(2);
    device.send("t1111FF");
    await waitFor(() => listener.frames.length === 1, 5000, "a frame after the replug");
    expect(listener.states.map((s) => s.up)).toEqual([true, false, true]);
  });

  test("stop() closes the channel (C) before releasing the tty", async () => {
    const { backend, device } = await setup();
    await backend.stop();
    await waitFor(() => !device.open, 5000, "adapter closed");
    expect(device.lines.at(-1)).toBe("C");
  });

  test("an adapter that refuses the bit rate (BEL to Sn) is named in a warning and counted", async () => {
    const pair = await scope.pty("slcan-refuse");
    const stats = new Stats();
    const { log, lines } = memoryLogger("debug");
    const device = new LawicelDevice(scope.peer(pair.deviceB));
    device.refuseBitrate = true;
    scope.defer(() => device.close());
    const backend = createSlcanBackend({ path: pair.deviceA, baud: 115200, bitrate: 800_000, stats, log });
    await backend.start(recordingListener());
    scope.defer(() => backend.stop());
    await waitFor(() => stats.errors.get("adapter_refused") === 1, 5000, "the refusal counted");
    const warn = lines.find((l) => l.includes('"adapter_refused"'));
    expect(warn).toContain('"refused":"the bit rate (S)"');
    expect(warn).toContain('"level":"warn"');
  });

  test("a bit rate without an slcan code is fatal with the accepted list", () => {
    expect(() => createSlcanBackend({ path: "/dev/null", baud: 115200, bitrate: 33_333, stats: new Stats(), log: memoryLogger().log })).toThrow(BackendFatalError);
    expect(() => createSlcanBackend({ path: "/dev/null", baud: 115200, bitrate: 33_333, stats: new Stats(), log: memoryLogger().log })).toThrow(/10000, 20000, 50000/);
  });

  test("through the gateway: -backend slcan -serial PTY -bitrate 250000, frames both ways with a cannelloni client", async () => {
    const pair = await scope.pty("slcan-gw");
    const device = new LawicelDevice(scope.peer(pair.deviceB));
    scope.defer(() => device.close());
    const g = await startGatewayProcess(["-backend", "slcan", "-serial", pair.deviceA, "-bitrate", "250000"]);
    scope.defer(async () => {
      await g.stop();
    });
    await g.waitFor("serial_up");
    await waitFor(() => device.open, 5000, "adapter opened");
    expect(device.bitrateCommand).toBe("S5");
    const c = await CannelloniTestClient.connect(g.ports.cannelloni!);
    scope.defer(() => c.close());
    await c.handshake();
    await g.waitFor("client_ready");
    c.send(dataFrame(0x42, [1, 2]));
    await waitFor(() => device.frames.length === 1, 5000, "the client's frame at the adapter");
    expect(names(device.frames)).toEqual(names([dataFrame(0x42, [1, 2])]));
    device.send("T000001238CAFEBABE00000000");
    expect(names(await c.waitFrames(1))).toEqual(names([dataFrame(0x123, [0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0], true)]));
  }, 30_000);
});
