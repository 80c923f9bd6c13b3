/** cannelloni over TCP in the protocol registry: always on (`-listen`, go-ampio-server's flag). */
import type { StreamProtocolDescriptor } from "../protocol.ts";

export const cannelloniDescriptor: StreamProtocolDescriptor<"cannelloni", "listen"> = {
  name: "cannelloni",
  title: "cannelloni (TCP)",
  transport: "tcp",
  flag: "listen",
  env: "CAN_SERVER_LISTEN",
  configKey: "listen",
  defaultPort: 20000,
  defaultAddress: ":20000",
  required: true,
  carries: { rtr: true, fd: true, error: true },
  help: "cannelloni TCP listen address (host:port, :port)",
  txtKey: null,
  isNew: false,
  load: async () => (await import("./protocol.ts")).cannelloni,
};
