/**
 * A real kernel driver as an slcan client, inside the VM: the gateway runs on vcan0 (SocketCAN
 * backend) with -slcan-listen on 127.0.0.1; `socat pty,link=/dev/…,raw,echo=0 tcp:127.0.0.1:PORT`
 * plus `slcand -o -c -s2 /dev/… slcanN` plus `ip link set slcanN up` turn the gateway's bus into a
 * kernel interface (the slcan module is loaded here). Then `cansend slcanN …` reaches a
 * cannelloni client and the backend (candump vcan0), and frames from the bus (cansend vcan0)
 * appear in `candump slcanN` exactly. Skipped, with a notice, without vcan0, root, the slcan
 * module, slcand or socat.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import { formatFrame } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { Candump, cansend, CAN_MANAGE_LINKS, HAVE_VCAN, IFACE, noteSkipped, until } from "./vcan.ts";

noteSkipped();

function slcanSkipReason(): string | null {
  if (!HAVE_VCAN) return "no vcan0";
  if (!CAN_MANAGE_LINKS) return "not root";
  for (const tool of ["/usr/bin/slcand", "/usr/bin/socat"]) if (!existsSync(tool)) return `${tool} missing`;
  if (!existsSync("/sys/module/slcan")) {
    const r = Bun.spawnSync(["modprobe", "slcan"], { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0) return `modprobe slcan failed: ${r.stderr.toString().trim()}`;
  }
  return null;
}
const skipReason = slcanSkipReason();
if (HAVE_VCAN && skipReason) process.stderr.write(`slcan kernel-driver test skipped: ${skipReason}\n`);

const procs: Subprocess[] = [];
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  for (const p of procs.splice(0).reverse()) {
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 3000);
    await p.exited;
    clearTimeout(t);
  }
});

describe.skipIf(skipReason !== null)("slcand + the kernel slcan driver as a client of -slcan-listen", () => {
  test(
    "cansend on slcanN reaches a cannelloni client and vcan0; bus frames appear in candump slcanN exactly",
    async () => {
      const config: Config = { ...defaultConfig(), backend: "socketcan", canIf: IFACE, listen: "127.0.0.1:0", slcanListen: "127.0.0.1:0" };
      const stats = new Stats();
      const { log, lines } = memoryLogger("debug");
      const backend = new SocketCanBackend({ iface: IFACE, fd: false, stats, log });
      const gateway: Gateway = await startGateway(config, { stats, log, backend });
      cleanups.push(() => gateway.shutdown(500));
      const slcanPort = gateway.port("slcan")!;

      const cnl = await CannelloniTestClient.connect(gateway.port("cannelloni")!);
      cleanups.push(() => cnl.close());
      await cnl.handshake();

      const tag = process.pid % 10000;
      const pty = `/dev/cs-slpty${tag}`;
      const ifname = `slcan${tag % 100}`;
      procs.push(Bun.spawn(["socat", `pty,link=${pty},raw,echo=0`, `tcp:127.0.0.1:${slcanPort}`], { stdout: "ignore", stderr: "inherit" }));
      await until(() => existsSync(pty), "socat's pty link", 20_000);
      // -F: stay in the foreground, so the process can be ended by its id; -c: close (C) on exit.
      procs.push(Bun.spawn(["slcand", "-F", "-o", "-c", "-s2", pty, ifname], { stdout: "ignore", stderr: "inherit" }));
      await until(() => existsSync(`/sys/class/net/${ifname}`), `${ifname} to appear`, 20_000);
      const up = Bun.spawnSync(["ip", "link", "set", ifname, "up"], { stderr: "pipe" });
      expect(up.exitCode, up.stderr.toString()).toBe(0);
      const events = (): { msg: string; [k: string]: unknown }[] => lines.map((l) => JSON.parse(l) as { msg: string });
      await until(() => events().some((e) => e.msg === "client_ready" && e.protocol === "slcan"), "slcand to open the channel (O)", 20_000);
      // slcand asked for S2 (50 kbit/s); the gateway does not retune vcan0 and says so.
      expect(events().some((e) => e.msg === "client_notice" && String(e.note).includes("50000 bit/s"))).toBe(true);

      // Bus → slcanN: candump on the kernel interface shows exactly what was sent on vcan0.
      const onSlcan = await Candump.start(ifname);
      cleanups.push(() => onSlcan.stop());
      const fromBus = ["123#DEADBEEF", "12345678#0011223344556677", "321#R3", "000#", "7FF#01"];
      for (const t of fromBus) cansend(IFACE, t);
      const seen = (await onSlcan.waitFrames(fromBus.length, 30_000)).map(formatFrame);
      // (Candump's start-up sentinel went out on slcanN to the gateway, which never echoes a
      // client's frame back to it: only vcan0's frames arrive, and Candump drops the sentinel.)
      expect(seen).toEqual(fromBus);

      // slcanN → the gateway → vcan0 and the cannelloni client.
      const onVcan = await Candump.start(IFACE);
      cleanups.push(() => onVcan.stop());
      const fromSlcan = ["456#CAFE", "1ABCDEF0#0102030405060708", "222#R2", "333#"];
      for (const t of fromSlcan) cansend(ifname, t);
      expect((await onVcan.waitFrames(fromSlcan.length, 30_000)).map(formatFrame)).toEqual(fromSlcan);
      await until(
        () => fromSlcan.every((t) => cnl.frames.map(formatFrame).includes(t.endsWith("#R2") ? "222#R" : t)),
        () => `the slcan frames at the cannelloni client (have ${cnl.frames.map(formatFrame).join(" ")})`,
        30_000,
      );
      expect(stats.protocol("slcan").rxFrames).toBeGreaterThanOrEqual(fromSlcan.length);
      expect(stats.socketcanTxFrames).toBeGreaterThanOrEqual(fromSlcan.length);
    },
    120_000,
  );
});
