/**
 * Backend factory: config → Backend. Hardware backends are imported lazily so the virtual bus
 * never loads bun:ffi code.
 */
import type { Config } from "../cli/config.ts";
import type { Logger } from "../ops/log.ts";
import type { Stats } from "../ops/stats.ts";
import { BackendFatalError, type Backend } from "./backend.ts";
import { VirtualBackend } from "./virtual/virtual-backend.ts";

export async function createBackend(config: Config, stats: Stats, log: Logger): Promise<Backend> {
  const blog = log.child({ backend: config.backend });
  switch (config.backend) {
    case "virtual":
      return new VirtualBackend({ stats, log: blog, fd: config.fd, demo: config.virtualDemo });
    case "serial": {
      const { SerialBackend } = await import("./serial/serial-backend.ts");
      return new SerialBackend({ path: config.serial, baud: config.baud, stats, log: blog });
    }
    case "socketcan": {
      const { SocketCanBackend } = await import("./socketcan/socketcan-backend.ts");
      const { DEFAULT_TX_CONFIRM_TIMEOUT_MS } = await import("./socketcan/tx-queue.ts");
      // A frame is written before its -tx-max-age runs out; once written it cannot be taken back,
      // so it gets at least that long again to be confirmed (a slow bus whose other nodes keep
      // winning arbitration), and never less than the default.
      const txConfirmTimeoutMs = Math.max(DEFAULT_TX_CONFIRM_TIMEOUT_MS, config.txMaxAgeMs);
      return new SocketCanBackend({ iface: config.canIf, fd: config.fd, txConfirmTimeoutMs, stats, log: blog });
    }
    case "slcan": {
      const { createSlcanBackend } = await import("./slcan/slcan-backend.ts");
      return createSlcanBackend({ path: config.serial, baud: config.baud, bitrate: config.bitrate, stats, log: blog });
    }
    case "cannelloni-client":
    case "socketcand-client":
      return (await import("./remote/from-config.ts")).remoteBackendFromConfig(config, stats, blog);
    case "replay": {
      const { ReplayBackend, parseReplaySpeed } = await import("./replay/replay-backend.ts");
      if (!config.replayFile) throw new BackendFatalError("-backend replay needs -replay-file FILE (a candump log)");
      return new ReplayBackend({ file: config.replayFile, loop: config.replayLoop, speed: parseReplaySpeed(config.replaySpeed), fd: config.fd, stats, log: blog });
    }
  }
}
