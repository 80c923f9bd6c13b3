/**
 * Starts a real gateway (real listeners on 127.0.0.1, ephemeral ports) on the virtual bus, with
 * counters and log lines exposed for assertions.
 */
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame } from "../../src/can/frame.ts";
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

/**
 * Injects 8-byte frames in bursts of 2000 until `done()` or `count` frames; yields between bursts
 * so sockets can flush. Returns how many were injected (bounded, stops by itself).
 */
export async function flood(backend: VirtualBackend, count: number, done: () => boolean): Promise<number> {
  const payload = [1, 2, 3, 4, 5, 6, 7, 8];
  let sent = 0;
  while (sent < count && !done()) {
    for (let i = 0; i < 2000; i++) backend.inject(dataFrame(0x100 + (sent++ % 0x600), payload));
    await Bun.sleep(1);
  }
  return sent;
}
