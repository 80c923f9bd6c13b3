/**
 * socketcand discovery beacon (`-socketcand-beacon`): every 3 s, one UDP datagram to port 42000
 * per non-loopback IPv4 interface, sent to that interface's directed broadcast address and
 * naming that interface's own address in its URL, in socketcand's exact format
 * (linux-can/socketcand src/beacon.c):
 * `<CANBeacon name="HOST" type="SocketCAN" description="…">\n<URL>can://IP:PORT</URL><Bus name="can0"/></CANBeacon>`.
 * SavvyCAN lists it as `can0@HOST (can://IP:PORT)` and connects to that IP literal;
 * python-can's `detect_beacon()` (4.2+) reads it with one `recv(1024)` and `ElementTree`.
 * Why per interface and not 255.255.255.255: Linux sends a limited broadcast out of one interface
 * only (the default route's), and the URL must carry an address reachable from the subnet the
 * datagram lands in, so each subnet gets its own datagram with its own address (socketcand does
 * the same for its one `-l` interface). The interface list is re-read every tick, so addresses
 * from DHCP or interfaces that come up later are picked up. Errors are logged, never thrown: a
 * discovery aid must never take the gateway down.
 */
import dgram from "node:dgram";
import { hostname, networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import type { Logger } from "./log.ts";

export const SOCKETCAND_BEACON_PORT = 42000;
/** socketcand sleeps 3 s between beacons; python-can's detect_beacon waits 3.1 s by default. */
export const SOCKETCAND_BEACON_INTERVAL_MS = 3000;
/** python-can reads the datagram with recv(1024): a longer one arrives cut and fails to parse. */
export const SOCKETCAND_BEACON_MAX_BYTES = 1024;

export interface BeaconXmlInput {
  /** Host name shown by clients (socketcand: gethostname()). */
  name: string;
  /** socketcand's default is "socketcand"; clients display it at most. */
  description: string;
  /** IPv4 address clients connect to (SavvyCAN needs an IP literal, it does not resolve names). */
  address: string;
  port: number;
  busName: string;
}

function xmlAttr(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** The beacon datagram's text, byte for byte as socketcand's beacon_loop() builds it (newline included). */
export function beaconXml(input: BeaconXmlInput): string {
  return (
    `<CANBeacon name="${xmlAttr(input.name)}" type="SocketCAN" description="${xmlAttr(input.description)}">\n` +
    `<URL>can://${input.address}:${input.port}</URL><Bus name="${xmlAttr(input.busName)}"/></CANBeacon>`
  );
}

export interface BeaconTarget {
  /** Interface name, for logs. */
  readonly ifname: string;
  /** The interface's address, advertised in the URL. */
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
 * Where to send beacons, from an interface table (os.networkInterfaces() shape) and the
 * socketcand listener's host: every non-internal IPv4 address when the listener is on a wildcard
 * address, else only the interface holding exactly that address (a listener on 127.0.0.1 or an
 * IPv6 address gets none: nobody on the LAN could connect). Subnets of /31 and /32 have no
 * broadcast address and are skipped.
 */
export function beaconTargets(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>, listenHost: string): BeaconTarget[] {
  const all = WILDCARD_HOSTS.has(listenHost);
  const targets: BeaconTarget[] = [];
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

export interface SocketcandBeaconOptions {
  /** The socketcand listener's bound TCP port, advertised in the URL. */
  port: number;
  /** Bus name answered to `< open NAME >`. */
  busName: string;
  /** Default: the host name, as socketcand. */
  name?: string;
  /** Default "can-server". */
  description?: string;
  /** Default 3000 ms, as socketcand. */
  intervalMs?: number;
  /** Host of the socketcand listen address ("0.0.0.0" = every interface, the default). */
  listenHost?: string;
  log: Logger;
  /**
   * Send every datagram here instead of to the interface's broadcast address on port 42000
   * (tests: unicast to a loopback receiver, so no broadcast leaves the machine).
   */
  target?: { address: string; port: number };
  /** Interface table source; default os.networkInterfaces (tests pass a fixed table). */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

export interface SocketcandBeacon {
  /** Stops the timer and closes the socket; never rejects. */
  stop(): Promise<void>;
}

export function startSocketcandBeacon(opts: SocketcandBeaconOptions): SocketcandBeacon {
  const { log, port, busName } = opts;
  const name = opts.name ?? hostname();
  const description = opts.description ?? "can-server";
  const intervalMs = opts.intervalMs ?? SOCKETCAND_BEACON_INTERVAL_MS;
  const listenHost = opts.listenHost ?? "0.0.0.0";
  const readInterfaces = opts.interfaces ?? networkInterfaces;
  let stopped = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastTargets: string | null = null;
  let warnedLength = false;
  // Last error per destination: logged at warn when it appears or changes, not every 3 s.
  const lastError = new Map<string, string>();

  const socket = dgram.createSocket({ type: "udp4" });
  socket.on("error", (err: Error) => log.warn("socketcand_beacon_socket_error", { error: err.message }));

  const tick = (): void => {
    if (stopped) return;
    let targets: BeaconTarget[];
    try {
      targets = beaconTargets(readInterfaces(), listenHost);
    } catch (e) {
      log.warn("socketcand_beacon_interfaces_error", { error: (e as Error).message });
      return;
    }
    const summary = targets.map((t) => `${t.ifname}:${t.address}->${t.broadcast}`).join(",");
    if (summary !== lastTargets) {
      lastTargets = summary;
      if (targets.length === 0) log.warn("socketcand_beacon_no_address", { listen_host: listenHost });
      else log.info("socketcand_beacon_targets", { targets: summary });
    }
    for (const t of targets) {
      const text = beaconXml({ name, description, address: t.address, port, busName });
      const data = Buffer.from(text, "utf8");
      if (data.length > SOCKETCAND_BEACON_MAX_BYTES && !warnedLength) {
        warnedLength = true;
        log.warn("socketcand_beacon_too_long", { bytes: data.length, max: SOCKETCAND_BEACON_MAX_BYTES });
      }
      const destAddress = opts.target?.address ?? t.broadcast;
      const destPort = opts.target?.port ?? SOCKETCAND_BEACON_PORT;
      const key = `${destAddress}:${destPort}`;
      const onSent = (err: Error | null): void => {
        if (err) {
          if (lastError.get(key) !== err.message) log.warn("socketcand_beacon_send_error", { to: key, error: err.message });
          else log.debug("socketcand_beacon_send_error", { to: key, error: err.message });
          lastError.set(key, err.message);
        } else if (lastError.delete(key)) {
          log.info("socketcand_beacon_send_ok", { to: key });
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
        log.warn("socketcand_beacon_socket_error", { error: (e as Error).message });
      }
      log.info("socketcand_beacon_started", { port, bus: busName, interval_ms: intervalMs });
      tick();
      timer = setInterval(tick, intervalMs);
    });
  } catch (e) {
    log.warn("socketcand_beacon_socket_error", { error: (e as Error).message });
  }

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        stopped = true;
        if (timer !== undefined) clearInterval(timer);
        const done = (): void => {
          log.info("socketcand_beacon_stopped", { port });
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
