import type { Config } from "./config.ts";

/**
 * The name of the bus of a configuration: explicit (-socketcand-bus, or a `[[bus]]` table's
 * name), else the SocketCAN interface, else can0. socketcand clients open it, the recorder and
 * canlogserver write it as the interface, metrics label it.
 */
export function socketcandBusName(config: Config): string {
  if (config.socketcandBus) return config.socketcandBus;
  return config.backend === "socketcan" ? config.canIf : "can0";
}
