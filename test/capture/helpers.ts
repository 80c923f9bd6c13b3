/**
 * Shared by the capture and dashboard tests: a gateway on the virtual bus with the operations
 * endpoint (and its bus-view routes) on an ephemeral 127.0.0.1 port, and tshark as the decoder.
 */
import { startOperations, type Operations } from "../../src/ops/operations.ts";
import { buildInfo } from "../../src/ops/build-info.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import type { Config } from "../../src/cli/config.ts";
import type { WallClock } from "../../src/can/clock.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";

export interface ViewGateway extends TestGateway {
  ops: Operations;
  counters: ConsumerCounters;
  httpBase: string;
}

export async function startViewGateway(overrides: Partial<Config> = {}, extra: { clock?: WallClock } = {}): Promise<ViewGateway> {
  const tg = await startTestGateway({ metricsAddr: "127.0.0.1:0", ...overrides }, extra);
  const counters = new ConsumerCounters();
  const { memoryLogger } = await import("../../src/ops/log.ts");
  const { log } = memoryLogger("warn");
  const ops = await startOperations(tg.config, { gateway: tg.gateway, stats: tg.stats, log, build: buildInfo(), counters });
  return {
    ...tg,
    ops,
    counters,
    httpBase: `http://127.0.0.1:${ops.httpPort}`,
    stop: async () => {
      await ops.stop();
      await tg.stop();
    },
  };
}

export interface TsharkRow {
  time: string;
  id: number;
  xtd: string;
  rtr: string;
  len: number;
  brs: string;
  esi: string;
  data: string;
}

/** Decodes a pcap file with Debian's tshark (the oracle for link type and byte order). */
export function tsharkRows(file: string): TsharkRow[] {
  const r = Bun.spawnSync(
    ["tshark", "-r", file, "-T", "fields", "-E", "separator=|", "-e", "frame.time_epoch", "-e", "can.id", "-e", "can.flags.xtd", "-e", "can.flags.rtr", "-e", "can.len", "-e", "canfd.flags.brs", "-e", "canfd.flags.esi", "-e", "data.data"],
    { stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`tshark failed: ${r.stderr.toString()}`);
  return r.stdout
    .toString()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [time, id, xtd, rtr, len, brs, esi, data] = l.split("|") as [string, string, string, string, string, string, string, string];
      return { time, id: Number(id), xtd, rtr, len: Number(len), brs, esi, data };
    });
}
