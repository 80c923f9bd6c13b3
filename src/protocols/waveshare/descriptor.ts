/** Waveshare 13-byte TCP in the protocol registry (`-waveshare-listen`, off by default). */
import type { StreamProtocolDescriptor } from "../protocol.ts";

export const waveshareDescriptor: StreamProtocolDescriptor<"waveshare", "waveshareListen"> = {
  name: "waveshare",
  title: "Waveshare 13-byte (TCP)",
  transport: "tcp",
  flag: "waveshare-listen",
  env: "CAN_SERVER_WAVESHARE_LISTEN",
  configKey: "waveshareListen",
  defaultPort: 20001,
  defaultAddress: "",
  carries: { rtr: true, fd: false, error: false },
  help: "Waveshare 13-byte TCP listen address (e.g. :20001); empty disables",
  txtKey: "waveshare_port",
  isNew: true,
  load: async () => (await import("./protocol.ts")).waveshare,
};
