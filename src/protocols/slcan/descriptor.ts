/**
 * slcan over TCP in the protocol registry (`-slcan-listen`, off by default, port 3333 when
 * enabled without one). Handshake timeout at least 60 s: the session is "ready" only once the
 * client opens the channel (`O`/`L`), and python-can waits 2 s first, socat + slcand open it when
 * slcand starts, and someone typing at `nc` takes longer than 3 s. An idle connection that never
 * opens still holds one -max-handshakes slot only, and is closed after that minute.
 */
import type { StreamProtocolDescriptor } from "../protocol.ts";

export const slcanDescriptor: StreamProtocolDescriptor<"slcan", "slcanListen"> = {
  name: "slcan",
  title: "slcan (Lawicel ASCII over TCP)",
  transport: "tcp",
  flag: "slcan-listen",
  env: "CAN_SERVER_SLCAN_LISTEN",
  configKey: "slcanListen",
  defaultPort: 3333,
  defaultAddress: "",
  carries: { rtr: true, fd: true, error: false },
  help: "slcan (Lawicel ASCII) over TCP listen address, for python-can slcan (socket://host:port) and socat + slcand (e.g. :3333; true = :3333); empty disables",
  txtKey: "slcan_port",
  minHandshakeTimeoutMs: 60_000,
  isNew: true,
  load: async () => (await import("./protocol.ts")).slcan,
};
