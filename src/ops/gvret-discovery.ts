/**
 * GVRET discovery (`-gvret-discovery`): once a second, the 4-byte datagram ESP32RET broadcasts
 * (`1C EF AC ED`, src/protocols/gvret/codec.ts) to UDP port 17222 on every non-loopback IPv4
 * subnet the GVRET listener serves (subnet-broadcast.ts, shared with the socketcand beacon).
 * SavvyCAN listens on 17222, lists the sender's address, and connects to it on TCP port 23 — its
 * port is fixed, so discovery is only useful with the listener on 23 (a warning says so
 * otherwise). Errors are logged, never thrown.
 */
import type { NetworkInterfaceInfo } from "node:os";
import { GVRET_DISCOVERY_PAYLOAD, GVRET_DISCOVERY_PORT } from "../protocols/gvret/codec.ts";
import type { Logger } from "./log.ts";
import { startSubnetBroadcast } from "./subnet-broadcast.ts";

export const GVRET_DISCOVERY_INTERVAL_MS = 1000;

export interface GvretDiscoveryOptions {
  /** The GVRET listener's bound TCP port (SavvyCAN connects to 23 only). */
  readonly port: number;
  /** Host of the GVRET listen address ("0.0.0.0"/"::" = every interface). */
  readonly listenHost: string;
  readonly log: Logger;
  readonly intervalMs?: number;
  /** Tests: send here (unicast) instead of each subnet's broadcast address on 17222. */
  readonly target?: { address: string; port: number };
  readonly interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

export interface GvretDiscovery {
  stop(): Promise<void>;
}

export function startGvretDiscovery(opts: GvretDiscoveryOptions): GvretDiscovery {
  const { log } = opts;
  const intervalMs = opts.intervalMs ?? GVRET_DISCOVERY_INTERVAL_MS;
  if (opts.port !== 23) log.warn("gvret_discovery_port", { port: opts.port, note: "SavvyCAN connects to port 23 only" });
  return startSubnetBroadcast({
    prefix: "gvret_discovery",
    log,
    intervalMs,
    listenHost: opts.listenHost,
    port: GVRET_DISCOVERY_PORT,
    payload: () => GVRET_DISCOVERY_PAYLOAD,
    startedFields: { port: opts.port, interval_ms: intervalMs },
    stoppedFields: {},
    target: opts.target,
    interfaces: opts.interfaces,
  });
}
