/**
 * Bus health on a real kernel, through the compiled binary: error frames written to vcan0 by
 * can-utils' cansend (an 8-digit id with CAN_ERR_FLAG is an error frame; vcan passes it to every
 * socket subscribed with CAN_RAW_ERR_FILTER) drive the bus state through error-warning,
 * error-passive and bus-off and back (CAN_ERR_RESTARTED); /metrics, /ready and
 * /api/v1/buses/vcan0 reflect each step; a cannelloni client never receives an error frame.
 * vcan0 has no CAN netlink attributes (kind "vcan"): the bit rate falls back to the default, and
 * the start-up log says so. Skipped when there is no vcan0 or no binary.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { formatFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { cansend, HAVE_VCAN, IFACE, noteSkipped, until } from "./vcan.ts";

noteSkipped();

const BINARY = process.env.CAN_SERVER_BINARY ?? "dist/socketcan-test/can-server";
const HAVE_BINARY = existsSync(BINARY);

const procs: Subprocess<"ignore", "pipe", "pipe">[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const p of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
});

function server(args: string[]): { output: () => string } {
  const proc = Bun.spawn([BINARY, ...args], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  procs.push(proc);
  let text = "";
  const decoder = new TextDecoder();
  for (const s of [proc.stderr, proc.stdout]) {
    void (async () => {
      for await (const chunk of s) text += decoder.decode(chunk, { stream: true });
    })();
  }
  return { output: () => text };
}

async function connectWithRetry(port: number): Promise<CannelloniTestClient> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await CannelloniTestClient.connect(port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await Bun.sleep(100);
    }
  }
}

const MARKER = "7FD#A1";
/** Error frames (linux/can/error.h): can_id = CAN_ERR_FLAG | classes; data[1] controller bits; data[6..7] TEC/REC. */
const WARNING = "20000204#0008000000006000"; // CRTL + CNT: TX_WARNING, TEC 96
const PASSIVE = "20000204#0020000000008003"; // CRTL + CNT: TX_PASSIVE, TEC 128, REC 3
const ACK = "20000028#0000000000000000"; // ACK + PROT
const BUSOFF = "20000040#0000000000000000";
const RESTARTED = "20000100#0000000000000000";

describe.skipIf(!HAVE_VCAN || !HAVE_BINARY)("bus health (compiled binary, error frames on vcan0)", () => {
  test("warning, passive, bus-off and back: metrics, readiness and the API follow; clients never see error frames", async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const http = port + 1;
    const { output } = server(["-backend", "socketcan", "-can-if", IFACE, "-listen", `127.0.0.1:${port}`, "-metrics-addr", `127.0.0.1:${http}`, "-log-format", "json"]);
    const client = await connectWithRetry(port);
    cleanups.push(() => client.close());
    await client.handshake();
    await until(() => {
      if (client.frames.some((f) => formatFrame(f) === MARKER)) return true;
      cansend(IFACE, MARKER);
      return false;
    }, () => `the attach marker at the client; server said:\n${output()}`, 30_000);

    // vcan has no CAN bit timing: the default, and the log says which source and why.
    const bitrateLine = output().split("\n").find((l) => l.includes('"bus_bitrate"'));
    expect(bitrateLine).toBeDefined();
    const b = JSON.parse(bitrateLine!) as Record<string, unknown>;
    expect(b.source).toBe("default");
    expect(b.bitrate).toBe(500000);
    expect(String(b.detail)).toContain("vcan");

    const get = async (path: string) => fetch(`http://127.0.0.1:${http}${path}`);
    const metrics = async () => (await get("/metrics")).text();
    const bus = async () => (await (await get(`/api/v1/buses/${IFACE}`)).json()) as { error_state: string | null; bitrate_source: string; health: Record<string, unknown> & { error_frames: Record<string, number> } };
    const metricValue = (text: string, name: string): number | null => {
      const m = text.match(new RegExp(`^${name} (-?[0-9.e+]+)$`, "m"));
      return m ? Number(m[1]) : null;
    };
    const stateIs = async (value: number) => {
      let text = "";
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        text = await metrics();
        if (metricValue(text, "can_bus_state") === value) return text;
        await Bun.sleep(50);
      }
      throw new Error(`can_bus_state never became ${value}; metrics:\n${text.split("\n").filter((l) => l.startsWith("can_bus")).join("\n")}`);
    };

    expect(metricValue(await metrics(), "can_bus_state")).toBe(-1); // nothing reported yet (vcan has no netlink state)
    cansend(IFACE, WARNING);
    let text = await stateIs(1);
    expect(metricValue(text, "can_bus_tx_errors")).toBe(96);
    expect((await bus()).error_state).toBe("error-warning");

    cansend(IFACE, PASSIVE);
    cansend(IFACE, ACK);
    text = await stateIs(2);
    expect(metricValue(text, "can_bus_tx_errors")).toBe(128);
    expect(metricValue(text, "can_bus_rx_errors")).toBe(3);

    cansend(IFACE, BUSOFF);
    text = await stateIs(3);
    const ready = await get("/ready");
    expect(ready.status).toBe(503);
    const reason = await ready.text();
    expect(reason).toContain("bus-off");
    expect(reason).not.toContain("backend socketcan down");

    cansend(IFACE, RESTARTED);
    text = await stateIs(0);
    expect(metricValue(text, "can_bus_restarts_total")).toBe(1);
    const view = await bus();
    expect(view.bitrate_source).toBe("assumed");
    expect(view.health).toMatchObject({ state: "error-active", restarts: 1, bus_off: 1, tx_errors: 128, rx_errors: 3 });
    const counts = view.health.error_frames;
    expect(counts).toMatchObject({ crtl_warning: 1, crtl_passive: 1, ack: 1, prot: 1, busoff: 1, restarted: 1, lostarb: 0 });
    expect(text).toContain('can_bus_errors_total{class="busoff"} 1');
    expect(text).toContain('can_bus_errors_total{class="ack"} 1');
    expect((await get("/ready")).status).toBe(200);

    // Each change logged once.
    const changes = output().split("\n").filter((l) => l.includes('"can_bus_state"'));
    expect(changes.map((l) => (JSON.parse(l) as { to: string }).to)).toEqual(["error-warning", "error-passive", "bus-off", "error-active"]);

    // The client saw none of the error frames: only what came after is a bus frame.
    cansend(IFACE, "123#11");
    const got = () => client.frames.map(formatFrame).filter((t) => t !== MARKER);
    await until(() => got().length >= 1, () => `123#11 at the client (have ${got().join(" ")})`);
    expect(got()).toEqual(["123#11"]);
  });
});
