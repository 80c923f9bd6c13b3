/**
 * The configuration file example of issue 19, exactly as written, on two real SocketCAN buses
 * named can0 and can1 (what a 2-channel CAN HAT gives; vcan interfaces created by the test inside
 * the VM), run by the compiled binary: each bus has its own cannelloni and Waveshare listener,
 * frames stay on their bus, the route carries what its filter passes from can0 to can1 (and not
 * back), /metrics labels by bus and counts the route. Skipped without vcan, root or the binary.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatFrame, type CanFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { ISSUE_EXAMPLE } from "../helpers/config-examples.ts";
import { WaveshareTestClient } from "../helpers/waveshare-client.ts";
import { CAN_MANAGE_LINKS, Candump, cansend, noteSkipped, run, until } from "./vcan.ts";

noteSkipped();

const BINARY = process.env.CAN_SERVER_BINARY ?? "dist/socketcan-test/can-server";
const HAVE_BINARY = existsSync(BINARY);
const IFACES = ["can0", "can1"];
const READY = IFACES.every((i) => !existsSync(`/sys/class/net/${i}`));

/** Frames the tests put on the buses to learn that a reader is attached (ours, and Candump's sentinel). */
const MARKERS = new Set(["7FD#A1", "7FE#A0", "7FE#5E"]);
const payload = (frames: readonly CanFrame[]): string[] => frames.map(formatFrame).filter((t) => !MARKERS.has(t));

let proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;
let output = "";
let dir = "";

async function connect<T>(open: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await open();
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${String(err)}; server said:\n${output}`);
      await Bun.sleep(100);
    }
  }
}

describe.skipIf(!CAN_MANAGE_LINKS || !HAVE_BINARY || !READY)("the issue's two-bus example on can0 + can1", () => {
  beforeAll(() => {
    for (const i of IFACES) {
      run("ip", "link", "add", "dev", i, "type", "vcan");
      run("ip", "link", "set", i, "up");
    }
    dir = mkdtempSync(join(tmpdir(), "multibus-vm-"));
    writeFileSync(join(dir, "can-server.toml"), ISSUE_EXAMPLE);
    proc = Bun.spawn([BINARY, "-config", join(dir, "can-server.toml"), "-log-format", "json"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const decoder = new TextDecoder();
    void (async () => {
      for await (const c of proc!.stdout) output += decoder.decode(c, { stream: true });
    })();
    void (async () => {
      for await (const c of proc!.stderr) output += decoder.decode(c, { stream: true });
    })();
  });
  afterAll(async () => {
    proc?.kill("SIGTERM");
    await proc?.exited;
    for (const i of IFACES) Bun.spawnSync(["ip", "link", "del", i]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("each bus its listeners, frames stay on their bus, the route carries its filter's frames to can1 only", async () => {
    await until(() => output.includes('"msg":"ready"'), () => `the ready line; server said:\n${output}`, 90_000);
    expect(output).toContain('"buses":"can0,can1"');
    const c0 = await connect(() => CannelloniTestClient.connect(20000));
    const c1 = await connect(() => CannelloniTestClient.connect(20010));
    const w1 = await connect(() => WaveshareTestClient.connect(20002));
    try {
      await c0.handshake();
      await c1.handshake();
      const dump1 = await Candump.start("can1");
      const dump0 = await Candump.start("can0");
      try {
        // Attached: a frame on each bus reaches that bus's clients.
        await until(() => {
          cansend("can1", "7FD#A1");
          return c1.frames.length > 0 && w1.frames.length > 0;
        }, "clients of can1 attached");
        await until(() => {
          cansend("can0", "7FE#A0"); // not routed (outside 100/700)
          return c0.frames.length > 0;
        }, "client of can0 attached");
        const before1 = c1.frames.length;
        cansend("can0", "123#11"); // 100/700: routed
        cansend("can0", "00001D4C#FE06D704"); // 1D4C/FFFF: routed
        cansend("can0", "223#22"); // not routed
        await until(() => payload(c1.frames.slice(before1)).length >= 2, () => `routed frames at the can1 client (have ${c1.frames.map(formatFrame).join(" ")})`);
        await Bun.sleep(300);
        const onCan1 = payload(c1.frames.slice(before1));
        expect(onCan1).toEqual(["123#11", "00001D4C#FE06D704"]);
        expect(payload(dump1.frames())).toEqual(["123#11", "00001D4C#FE06D704"]);
        // can1's frames never reach can0 (no route back), can0's own client saw its bus only
        expect(payload(dump0.frames())).toEqual(["123#11", "00001D4C#FE06D704", "223#22"]);
        expect(payload(c0.frames)).toEqual(["123#11", "00001D4C#FE06D704", "223#22"]);
        expect(c0.frames.map(formatFrame)).not.toContain("7FD#A1");
      } finally {
        dump0.stop();
        dump1.stop();
      }
      const metrics = await (await fetch("http://127.0.0.1:9100/metrics")).text();
      expect(metrics).toContain('backend_up{bus="can0"} 1');
      expect(metrics).toContain('backend_up{bus="can1"} 1');
      expect(metrics).toContain('route_frames_total{route="can0->can1",result="sent"} 2');
      expect(await (await fetch("http://127.0.0.1:9100/ready")).text()).toBe("ready\n");
    } finally {
      c0.close();
      c1.close();
      w1.close();
    }
  }, 120_000);

  test("/ready names the bus that goes down", async () => {
    run("ip", "link", "set", "can1", "down");
    await until(() => output.includes('"bus":"can1"') && output.includes("backend_down"), () => `backend_down for can1; server said:\n${output}`, 20_000);
    const res = await fetch("http://127.0.0.1:9100/ready");
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/^not ready: bus can1: backend socketcan down: /);
    run("ip", "link", "set", "can1", "up");
  }, 60_000);
});
