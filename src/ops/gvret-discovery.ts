/**
 * GVRET discovery (`-gvret-discovery`): once a second, the 4-byte datagram ESP32RET broadcasts
 * (`1C EF AC ED`, src/protocols/gvret/codec.ts) to UDP port 17222 on every non-loopback IPv4
 * subnet the GVRET listener serves (the interface selection of the socketcand beacon:
 * beaconTargets). SavvyCAN listens on 17222, lists the sender's address, and connects to it on
 * TCP port 23 — its port is fixed, so discovery is only useful with the listener on 23 (a
 * warning says so otherwise). Errors are logged, never thrown.
 */
import dgram from "node:dgram";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import { GVRET_DISCOVERY_PAYLOAD, GVRET_DISCOVERY_PORT } from "../protocols/gvret/codec.ts";
import type { Logger } from "./log.ts";
import { beaconTargets } from "./socketcand-beacon.ts";

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
  const readInterfaces = opts.interfaces ?? networkInterfaces;
  const socket = dgram.createSocket({ type: "udp4" });
  let stopped = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastTargets: string | null = null;
  const lastError = new Map<string, string>();
  socket.on("error", (err: Error) => log.warn("gvret_discovery_socket_error", { error: err.message }));
  if (opts.port !== 23) log.warn("gvret_discovery_port", { port: opts.port, note: "SavvyCAN connects to port 23 only" });

  const tick = (): void => {
    if (stopped) return;
    let targets;
    try {
      targets = beaconTargets(readInterfaces(), opts.listenHost);
    } catch (e) {
      log.warn("gvret_discovery_interfaces_error", { error: (e as Error).message });
      return;
    }
    const summary = targets.map((t) => `${t.ifname}:${t.address}->${t.broadcast}`).join(",");
    if (summary !== lastTargets) {
      lastTargets = summary;
      if (targets.length === 0) log.warn("gvret_discovery_no_address", { listen_host: opts.listenHost });
      else log.info("gvret_discovery_targets", { targets: summary });
    }
    for (const t of targets) {
      const address = opts.target?.address ?? t.broadcast;
      const port = opts.target?.port ?? GVRET_DISCOVERY_PORT;
      const key = `${address}:${port}`;
      const onSent = (err: Error | null): void => {
        if (err) {
          if (lastError.get(key) !== err.message) log.warn("gvret_discovery_send_error", { to: key, error: err.message });
          lastError.set(key, err.message);
        } else lastError.delete(key);
      };
      try {
        socket.send(GVRET_DISCOVERY_PAYLOAD, port, address, onSent);
      } catch (e) {
        onSent(e as Error);
      }
    }
  };

  socket.bind(0, "0.0.0.0", () => {
    if (stopped) return;
    try {
      socket.setBroadcast(true);
    } catch (e) {
      log.warn("gvret_discovery_socket_error", { error: (e as Error).message });
    }
    log.info("gvret_discovery_started", { port: opts.port, interval_ms: opts.intervalMs ?? GVRET_DISCOVERY_INTERVAL_MS });
    tick();
    timer = setInterval(tick, opts.intervalMs ?? GVRET_DISCOVERY_INTERVAL_MS);
  });

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        stopped = true;
        if (timer !== undefined) clearInterval(timer);
        const done = (): void => {
          log.info("gvret_discovery_stopped", {});
          resolve();
        };
        try {
          socket.close(done);
        } catch {
          done();
        }
      });
      return stopping;
    },
  };
}
