/**
 * What the discovery aids share (the socketcand beacon, GVRET discovery): one UDP datagram per
 * non-loopback IPv4 subnet a listener serves, sent to that subnet's directed broadcast address
 * every interval. Why per subnet and not 255.255.255.255: Linux sends a limited broadcast out of
 * one interface only (the default route's), and a beacon must name an address reachable from the
 * subnet it lands in. The interface list is re-read every tick, so addresses from DHCP or
 * interfaces that come up later are picked up. Errors are logged (events named `<prefix>_…`),
 * never thrown: a discovery aid must never take the gateway down.
 */
import dgram from "node:dgram";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import type { LogFields, Logger } from "./log.ts";

export interface BroadcastTarget {
  /** Interface name, for logs. */
  readonly ifname: string;
  /** The interface's address (the one a beacon advertises). */
  readonly address: string;
  /** Directed broadcast address of its subnet (address | ~netmask). */
  readonly broadcast: string;
}

function ipv4ToInt(ip: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

const WILDCARD_HOSTS = new Set(["", "0.0.0.0", "::", "[::]"]);

/**
 * Where to broadcast, from an interface table (os.networkInterfaces() shape) and the listener's
 * host: every non-internal IPv4 address when the listener is on a wildcard address, else only the
 * interface holding exactly that address (a listener on 127.0.0.1 or an IPv6 address gets none:
 * nobody on the LAN could connect). Subnets of /31 and /32 have no broadcast address and are
 * skipped.
 */
export function broadcastTargets(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>, listenHost: string): BroadcastTarget[] {
  const all = WILDCARD_HOSTS.has(listenHost);
  const targets: BroadcastTarget[] = [];
  for (const [ifname, infos] of Object.entries(interfaces)) {
    for (const info of infos ?? []) {
      if (info.family !== "IPv4" || info.internal) continue;
      if (!all && info.address !== listenHost) continue;
      const addr = ipv4ToInt(info.address);
      const mask = ipv4ToInt(info.netmask);
      if (addr === null || mask === null || mask >= 0xfffffffe) continue;
      targets.push({ ifname, address: info.address, broadcast: intToIpv4((addr | ~mask) >>> 0) });
    }
  }
  return targets;
}

export interface SubnetBroadcastOptions {
  /** Log event prefix: `<prefix>_started`, `_targets`, `_no_address`, `_send_error`, … */
  readonly prefix: string;
  readonly log: Logger;
  readonly intervalMs: number;
  /** Host of the listener's address (wildcard = every interface), see broadcastTargets. */
  readonly listenHost: string;
  /** UDP port the datagrams go to on each broadcast address. */
  readonly port: number;
  /** The datagram for one target. */
  readonly payload: (target: BroadcastTarget) => Uint8Array;
  /** Fields of the `<prefix>_started` and `<prefix>_stopped` events. */
  readonly startedFields: LogFields;
  readonly stoppedFields: LogFields;
  /**
   * Also log a repeated send error at debug and its end at info (`<prefix>_send_ok`); without,
   * only a new or changed error is logged (at warn, as always).
   */
  readonly reportRecovery?: boolean;
  /** Tests: send every datagram here (unicast) instead of each subnet's broadcast address. */
  readonly target?: { address: string; port: number };
  /** Interface table source; default os.networkInterfaces (tests pass a fixed table). */
  readonly interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

export interface SubnetBroadcast {
  /** Stops the timer and closes the socket; idempotent, never rejects. */
  stop(): Promise<void>;
}

export function startSubnetBroadcast(opts: SubnetBroadcastOptions): SubnetBroadcast {
  const { log, prefix } = opts;
  const readInterfaces = opts.interfaces ?? networkInterfaces;
  let stopped = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastTargets: string | null = null;
  // Last error per destination: logged at warn when it appears or changes, not every tick.
  const lastError = new Map<string, string>();

  const socket = dgram.createSocket({ type: "udp4" });
  socket.on("error", (err: Error) => log.warn(`${prefix}_socket_error`, { error: err.message }));

  const tick = (): void => {
    if (stopped) return;
    let targets: BroadcastTarget[];
    try {
      targets = broadcastTargets(readInterfaces(), opts.listenHost);
    } catch (e) {
      log.warn(`${prefix}_interfaces_error`, { error: (e as Error).message });
      return;
    }
    const summary = targets.map((t) => `${t.ifname}:${t.address}->${t.broadcast}`).join(",");
    if (summary !== lastTargets) {
      lastTargets = summary;
      if (targets.length === 0) log.warn(`${prefix}_no_address`, { listen_host: opts.listenHost });
      else log.info(`${prefix}_targets`, { targets: summary });
    }
    for (const t of targets) {
      const data = opts.payload(t);
      const destAddress = opts.target?.address ?? t.broadcast;
      const destPort = opts.target?.port ?? opts.port;
      const key = `${destAddress}:${destPort}`;
      const onSent = (err: Error | null): void => {
        if (err) {
          if (lastError.get(key) !== err.message) log.warn(`${prefix}_send_error`, { to: key, error: err.message });
          else if (opts.reportRecovery) log.debug(`${prefix}_send_error`, { to: key, error: err.message });
          lastError.set(key, err.message);
        } else if (lastError.delete(key) && opts.reportRecovery) {
          log.info(`${prefix}_send_ok`, { to: key });
        }
      };
      try {
        socket.send(data, destPort, destAddress, onSent);
      } catch (e) {
        onSent(e as Error);
      }
    }
  };

  try {
    socket.bind(0, "0.0.0.0", () => {
      if (stopped) return;
      try {
        // SO_BROADCAST: without it the kernel refuses a datagram to a broadcast address (EACCES).
        socket.setBroadcast(true);
      } catch (e) {
        log.warn(`${prefix}_socket_error`, { error: (e as Error).message });
      }
      log.info(`${prefix}_started`, opts.startedFields);
      tick();
      timer = setInterval(tick, opts.intervalMs);
    });
  } catch (e) {
    log.warn(`${prefix}_socket_error`, { error: (e as Error).message });
  }

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        stopped = true;
        if (timer !== undefined) clearInterval(timer);
        const done = (): void => {
          log.info(`${prefix}_stopped`, opts.stoppedFields);
          resolve();
        };
        try {
          socket.close(done);
        } catch {
          // Already closed (e.g. after a bind failure).
          done();
        }
      });
      return stopping;
    },
  };
}
