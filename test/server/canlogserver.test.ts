/**
 * The canlogserver listener (-canlogserver-listen) over real TCP on 127.0.0.1 with the virtual bus:
 * one candump log line per bus frame with the configured interface name, parsed exactly by Debian
 * python3-can's `can.io.CanutilsLogReader` (the real consumer library) and by an independent line
 * parser; read-only: bytes a client sends are ignored and counted, never reach the bus, never
 * close the connection; client frames from another protocol appear in the stream (it is the bus).
 */
import { describe, expect, test } from "bun:test";
import { dataFrame, fdFrame, remoteFrame, CAN_ERR_FLAG, CANFD_BRS, type CanFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { canlogserverPythonRead, CanlogserverTestClient } from "../helpers/canlogserver-client.ts";
import { frameText, GatewayPerTest, waitFor } from "../helpers/gateway.ts";

const fx = new GatewayPerTest({ canlogserverListen: "127.0.0.1:0" });

async function logClient(): Promise<CanlogserverTestClient> {
  return fx.closeAfter(await CanlogserverTestClient.connect(fx.gw.gateway.port("canlogserver")!));
}

describe("canlogserver stream", () => {
  test("python-can's CanutilsLogReader parses the stream exactly: ids, data, RTR, FD flags, error frames, interface", async () => {
    await fx.start({ fd: true, socketcandBus: "vcan3" });
    const c = await logClient();
    await waitFor(() => fx.gw.gateway.hub.size === 1, "attached");
    const before = Date.now() / 1000;
    const frames = [
      dataFrame(0x123, [0xde, 0xad, 0xbe, 0xef]),
      dataFrame(0x1abcdef0, [1, 2, 3, 4, 5, 6, 7, 8], true),
      dataFrame(0x7ff, []),
      remoteFrame(0x321, 4),
      remoteFrame(0x12345678, 0, true),
      fdFrame(0x456, new Uint8Array(12).fill(0xa5), CANFD_BRS),
      fdFrame(0x1000, new Uint8Array(64).map((_, i) => i), 0, true),
      { canId: (CAN_ERR_FLAG | 0x80) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 },
    ];
    for (const f of frames) fx.gw.backend.inject(f);
    await c.waitFrames(frames.length);
    const after = Date.now() / 1000;
    expect(c.problems).toEqual([]);
    expect(c.text.endsWith("\n")).toBe(true);
    expect(c.lines.every((l) => l.iface === "vcan3")).toBe(true);
    expect(frameText(c.frames)).toEqual(frameText(frames));

    const py = canlogserverPythonRead(c.text);
    expect(py).toHaveLength(frames.length);
    for (const m of py) {
      expect(m.timestamp).toBeGreaterThanOrEqual(Math.floor(before));
      expect(m.timestamp).toBeLessThanOrEqual(after + 1);
    }
    const shape = py.map((m) => (m.error ? "error" : [m.channel, m.id, m.extended, m.remote, m.fd, m.brs, m.dlc, m.data]));
    expect(shape).toEqual([
      ["vcan3", 0x123, false, false, false, false, 4, "DEADBEEF"],
      ["vcan3", 0x1abcdef0, true, false, false, false, 8, "0102030405060708"],
      ["vcan3", 0x7ff, false, false, false, false, 0, ""],
      ["vcan3", 0x321, false, true, false, false, 4, ""],
      ["vcan3", 0x12345678, true, true, false, false, 0, ""],
      ["vcan3", 0x456, false, false, true, true, 12, "A5".repeat(12)],
      ["vcan3", 0x1000, true, false, true, false, 64, Buffer.from(new Uint8Array(64).map((_, i) => i)).toString("hex").toUpperCase()],
      "error",
    ]);
  });

  test("the interface name defaults to -can-if with SocketCAN, else can0; FD frames only with -fd", async () => {
    await fx.start({ fd: false });
    const c = await logClient();
    await waitFor(() => fx.gw.gateway.hub.size === 1, "attached");
    fx.gw.backend.inject(fdFrame(0x1, [1]));
    fx.gw.backend.inject(dataFrame(0x2, [2]));
    await c.waitFrames(1);
    await Bun.sleep(30);
    expect(c.text).toMatch(/^\(\d+\.\d{6}\) can0 002#02\n$/);
  });

  test("read-only: bytes sent to it are ignored and counted, never reach the bus; frames from other clients do appear", async () => {
    await fx.start();
    const onBus: CanFrame[] = [];
    fx.gw.backend.observe((f) => onBus.push(f));
    const c = await logClient();
    const cnl = await CannelloniTestClient.connect(fx.gw.port, { helloFirst: true });
    fx.defer(() => cnl.close());
    await cnl.handshake({ helloFirst: true });
    await waitFor(() => fx.gw.gateway.hub.size === 2, "attached");
    c.write(new TextEncoder().encode("(1700000000.000000) can0 123#11\n"));
    await waitFor(() => fx.gw.stats.protocol("canlogserver").malformed === 1, "the ignored bytes counted");
    cnl.send(dataFrame(0x77, [0x77]));
    await waitFor(() => onBus.length === 1, "the cannelloni frame on the bus");
    expect(frameText(onBus)).toEqual(["077#77"]);
    expect(frameText(await c.waitFrames(1))).toEqual(["077#77"]);
    expect(c.closed).toBe(false);
    expect(fx.gw.stats.protocol("canlogserver").rxFrames).toBe(0);
  });
});
