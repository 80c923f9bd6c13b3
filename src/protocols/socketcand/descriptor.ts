/** socketcand raw mode in the protocol registry (`-socketcand-listen`, off by default). */
import type { StreamProtocolDescriptor } from "../protocol.ts";

export const socketcandDescriptor: StreamProtocolDescriptor<"socketcand", "socketcandListen"> = {
  name: "socketcand",
  title: "socketcand raw mode (TCP)",
  transport: "tcp",
  flag: "socketcand-listen",
  env: "CAN_SERVER_SOCKETCAND_LISTEN",
  configKey: "socketcandListen",
  defaultPort: 29536,
  defaultAddress: "",
  carries: { rtr: false, fd: false, error: false },
  help: "socketcand (raw mode) TCP listen address (e.g. :29536); empty disables",
  txtKey: "socketcand_port",
  isNew: true,
  multiBus: true,
  load: async () => (await import("./protocol.ts")).socketcand,
};
