/**
 * `-backend cannelloni-client` / `-backend socketcand-client` from the configuration (-remote,
 * -remote-bus, -fd): the remote folder's one entry for the backend registry (../create.ts).
 */
import type { Config } from "../../cli/config.ts";
import { parsePeerAddress } from "../../net/address.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { BackendFatalError } from "../backend.ts";
import { cannelloniClientWire } from "./cannelloni-wire.ts";
import { RemoteBackend } from "./remote-backend.ts";
import { socketcandClientWire } from "./socketcand-wire.ts";

export function remoteBackendFromConfig(config: Config, stats: Stats, log: Logger): RemoteBackend {
  const remote = parsePeerAddress(config.remote);
  // The configuration layer refuses this with exit 2 first; a direct caller still gets one clear error.
  if (remote === null) throw new BackendFatalError(`-backend ${config.backend} needs -remote HOST:PORT`);
  const wire = config.backend === "socketcand-client" ? socketcandClientWire(config.remoteBus, stats) : cannelloniClientWire;
  return new RemoteBackend({ host: remote.host, port: remote.port, wire, fd: config.fd, stats, log });
}
