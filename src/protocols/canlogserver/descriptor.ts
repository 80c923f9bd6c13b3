/** can-utils canlogserver stream in the protocol registry (`-canlogserver-listen`, off by default, port 28700). */
import type { StreamProtocolDescriptor } from "../protocol.ts";

export const canlogserverDescriptor: StreamProtocolDescriptor<"canlogserver", "canlogserverListen"> = {
  name: "canlogserver",
  title: "canlogserver stream (candump log lines, TCP, read-only)",
  transport: "tcp",
  flag: "canlogserver-listen",
  env: "CAN_SERVER_CANLOGSERVER_LISTEN",
  configKey: "canlogserverListen",
  defaultPort: 28700,
  defaultAddress: "",
  carries: { rtr: true, fd: true, error: true },
  help: "canlogserver listen address: one candump log line per bus frame, read-only, for SavvyCAN's CANLOGSERVER connection and nc (true = :28700); empty disables",
  txtKey: "canlogserver_port",
  isNew: true,
  load: async () => (await import("./protocol.ts")).canlogserver,
};
