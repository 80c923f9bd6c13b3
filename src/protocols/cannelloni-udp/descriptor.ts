/**
 * cannelloni UDP in the protocol registry (`-cannelloni-udp-listen`, off by default, port 20000
 * when enabled without one, as cannelloni's own default; peers come from -cannelloni-udp-peer).
 */
import type { DatagramProtocolDescriptor } from "../protocol.ts";

export const cannelloniUdpDescriptor: DatagramProtocolDescriptor<"cannelloni-udp", "cannelloniUdpListen"> = {
  name: "cannelloni-udp",
  title: "cannelloni (UDP, format v2)",
  transport: "udp",
  flag: "cannelloni-udp-listen",
  env: "CAN_SERVER_CANNELLONI_UDP_LISTEN",
  configKey: "cannelloniUdpListen",
  defaultPort: 20000,
  defaultAddress: "",
  carries: { rtr: true, fd: true, error: true },
  help: "cannelloni UDP (format v2) local address, for cannelloni and its ESP32 ports in UDP mode; peers set with -cannelloni-udp-peer (true = :20000); empty disables",
  txtKey: "cannelloni_udp_port",
  isNew: true,
  load: async () => (await import("./protocol.ts")).cannelloniUdp,
};
