/**
 * The bit rate and controller state of a real can-dev interface, read over netlink, inside the VM:
 * the kernel slcan driver on a socat pty pair (attached by slcand; the other end of the pty is
 * drained and never answers, which the driver does not need for its link state) is a can-dev device
 * (kind "can") with IFLA_CAN_STATE and, after `ip link set … type can bitrate 50000`,
 * IFLA_CAN_BITTIMING — as an MCP2515 HAT set up for an Ampio bus. The gateway started with
 * -bitrate 0 uses 50 kbit/s (bus_bitrate source "interface", client_tx_rate 190, not 500 kbit/s's
 * 1908); the backend's health comes from netlink (error-active, kind can). Skipped without vcan0,
 * root, the slcan module, slcand or socat.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { existsSync } from "node:fs";
import { SocketCanBackend } from "../../src/backends/socketcan/socketcan-backend.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { CAN_MANAGE_LINKS, HAVE_VCAN, noteSkipped, until } from "./vcan.ts";

noteSkipped();

function skipReason(): string | null {
  if (!HAVE_VCAN) return "no vcan0";
  if (!CAN_MANAGE_LINKS) return "not root";
  for (const tool of ["/usr/bin/slcand", "/usr/bin/socat"]) if (!existsSync(tool)) return `${tool} missing`;
  if (!existsSync("/sys/module/slcan")) {
    const r = Bun.spawnSync(["modprobe", "slcan"], { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0) return `modprobe slcan failed: ${r.stderr.toString().trim()}`;
  }
  return null;
}
const reason = skipReason();
if (HAVE_VCAN && reason) process.stderr.write(`can-dev bit rate test skipped: ${reason}\n`);

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

function ip(...args: string[]): void {
  const r = Bun.spawnSync(["ip", ...args], { stdout: "ignore", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.toString().trim()}`);
}

describe.skipIf(reason !== null)("a real can-dev interface (kernel slcan driver): bit rate and state over netlink", () => {
  test(
    "the interface's 50 kbit/s drives the auto TX rate and the log says so; the state comes from netlink",
    async () => {
      const tag = process.pid % 10000;
      const a = `/dev/cs-hpa${tag}`;
      const b = `/dev/cs-hpb${tag}`;
      const ifname = `slh${tag % 100}`;
      procs.push(Bun.spawn(["socat", `pty,link=${a},raw,echo=0`, `pty,link=${b},raw,echo=0`], { stdout: "ignore", stderr: "inherit" }));
      await until(() => existsSync(a) && existsSync(b), "socat's pty links", 20_000);
      procs.push(Bun.spawn(["cat", b], { stdout: "ignore", stderr: "ignore" }));
      procs.push(Bun.spawn(["slcand", "-F", "-o", "-s6", a, ifname], { stdout: "ignore", stderr: "inherit" }));
      await until(() => existsSync(`/sys/class/net/${ifname}`), `${ifname} to appear`, 20_000);
      ip("link", "set", ifname, "type", "can", "bitrate", "50000");
      ip("link", "set", ifname, "up");

      const config: Config = { ...defaultConfig(), backend: "socketcan", canIf: ifname, listen: "127.0.0.1:0", bitrate: 0 };
      const stats = new Stats();
      const { log, lines } = memoryLogger("debug");
      const backend = new SocketCanBackend({ iface: ifname, fd: false, stats, log });
      const gateway = await startGateway(config, { stats, log, backend });
      cleanups.push(() => gateway.shutdown(500));
      const events = () => lines.map((l) => JSON.parse(l) as { msg: string; [k: string]: unknown });
      const bitrate = events().find((e) => e.msg === "bus_bitrate");
      expect(bitrate).toMatchObject({ source: "interface", bitrate: 50000 });
      expect(events().find((e) => e.msg === "client_limits")).toMatchObject({ client_tx_rate: 190 });
      expect(gateway.buses[0]!.bitrateSource).toBe("interface");
      expect(gateway.buses[0]!.bitrate).toBe(50000);

      await until(() => backend.up, "the backend up");
      const h = backend.health();
      expect(h).toMatchObject({ state: "error-active", source: "netlink", kind: "can", bitrate: 50000 });
      expect(stats.busHealth?.report().stateValue).toBe(0);
      expect(events().some((e) => e.msg === "can_bus_state" && e.to === "error-active" && e.source === "netlink")).toBe(true);

      // The link going down is a lost link (reason "is down"), the controller "stopped" (netlink);
      // back up, error-active again — each logged once.
      ip("link", "set", ifname, "down");
      await until(() => !backend.up, "the backend down");
      expect(backend.downReason).toContain("is down");
      await until(() => backend.health().state === "stopped", () => `state stopped (is ${backend.health().state})`);
      ip("link", "set", ifname, "up");
      await until(() => backend.up && backend.health().state === "error-active", () => `up and error-active (is ${backend.health().state})`, 20_000);
      const changes = events().filter((e) => e.msg === "can_bus_state").map((e) => e.to);
      expect(changes).toEqual(["error-active", "stopped", "error-active"]);
      expect(gateway.readiness().ready).toBe(true);

      // -bitrate still overrides the interface.
      await gateway.shutdown(500);
      cleanups.length = 0;
      const stats2 = new Stats();
      const m2 = memoryLogger("info");
      const g2 = await startGateway({ ...config, bitrate: 125000 }, { stats: stats2, log: m2.log, backend: new SocketCanBackend({ iface: ifname, fd: false, stats: stats2, log: m2.log }) });
      cleanups.push(() => g2.shutdown(500));
      expect(m2.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === "bus_bitrate")).toMatchObject({ source: "flag", bitrate: 125000 });
    },
    120_000,
  );
});
