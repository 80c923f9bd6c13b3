/**
 * Starts a real gateway (real listeners on 127.0.0.1, ephemeral ports) on the virtual bus, with
 * counters and log lines exposed for assertions.
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

export interface TestGateway {
  gateway: Gateway;
  backend: VirtualBackend;
  stats: Stats;
  lines: string[];
  config: Config;
  port: number;
  /** Log events (msg field) seen so far. */
  events(): { msg: string; [k: string]: unknown }[];
  stop(): Promise<void>;
}

export async function startTestGateway(overrides: Partial<Config> = {}): Promise<TestGateway> {
  const config: Config = { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", ...overrides };
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const backend = new VirtualBackend({ stats, log, fd: config.fd });
  const gateway = await startGateway(config, { stats, log, backend });
  let stopped = false;
  return {
    gateway,
    backend,
    stats,
    lines,
    config,
    port: gateway.port("cannelloni")!,
    events: () => lines.map((l) => JSON.parse(l) as { msg: string }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await gateway.shutdown(500);
    },
  };
}
