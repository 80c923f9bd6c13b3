/**
 * GVRET over TCP in the protocol registry (`-gvret-listen`, off by default, port 23 when enabled
 * without one: SavvyCAN connects to port 23 only, which needs root or CAP_NET_BIND_SERVICE).
 */
import type { StreamProtocolDescriptor } from "../protocol.ts";

export const gvretDescriptor: StreamProtocolDescriptor<"gvret", "gvretListen"> = {
  name: "gvret",
  title: "GVRET (SavvyCAN network connection, TCP)",
  transport: "tcp",
  flag: "gvret-listen",
  env: "CAN_SERVER_GVRET_LISTEN",
  configKey: "gvretListen",
  defaultPort: 23,
  defaultAddress: "",
  carries: { rtr: false, fd: true, error: false },
  help: "GVRET TCP listen address for SavvyCAN's network connection (SavvyCAN uses port 23, which needs CAP_NET_BIND_SERVICE; true = :23); empty disables",
  txtKey: "gvret_port",
  isNew: true,
  multiBus: true,
  load: async () => (await import("./protocol.ts")).gvret,
};
