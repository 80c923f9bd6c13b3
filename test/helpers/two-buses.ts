/**
 * Two virtual buses, "can0" and "can1", in one real gateway (listeners on 127.0.0.1, ephemeral
 * ports): the fixture for the multi-bus surfaces (socketcand `< open can1 >`, GVRET bus numbers,
 * capture, recorder, MQTT, dashboard). Each bus has its own VirtualBackend and Stats.
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type BusSpec, type Gateway } from "../../src/gateway.ts";
import { memoryLogger, type Logger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

export interface TwoBuses {
  gateway: Gateway;
  /** backends[i] is bus i's (can0, can1). */
  backends: VirtualBackend[];
  stats: Stats[];
  config: Config;
  log: Logger;
  lines: string[];
  stop(): Promise<void>;
}

/** `global`: settings of the gateway (multi-bus listeners such as socketcand, GVRET); `perBus`: each bus's own. */
export async function startTwoBuses(global: Partial<Config> = {}, perBus: Partial<Config>[] = [{}, {}], names = ["can0", "can1"]): Promise<TwoBuses> {
  const config: Config = { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", ...global };
  const { log, lines } = memoryLogger("debug");
  const stats: Stats[] = [];
  const backends: VirtualBackend[] = [];
  const specs: BusSpec[] = names.map((name, i) => {
    const c: Config = { ...config, socketcandBus: name, ...(i === 0 ? {} : { listen: "127.0.0.1:0" }), ...(perBus[i] ?? {}) };
    const s = new Stats();
    const backend = new VirtualBackend({ stats: s, log, fd: c.fd });
    stats.push(s);
    backends.push(backend);
    return { name, config: c, backend, stats: s };
  });
  const gateway = await startGateway(config, { stats: stats[0]!, log, buses: specs });
  let stopped = false;
  return {
    gateway,
    backends,
    stats,
    config,
    log,
    lines,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await gateway.shutdown(500);
    },
  };
}
