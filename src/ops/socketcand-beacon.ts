/**
 * socketcand discovery beacon (`-socketcand-beacon`): every 3 s, one UDP datagram to port 42000
 * per non-loopback IPv4 interface, sent to that interface's directed broadcast address and
 * naming that interface's own address in its URL, in socketcand's exact format
 * (linux-can/socketcand src/beacon.c):
 * `<CANBeacon name="HOST" type="SocketCAN" description="…">\n<URL>can://IP:PORT</URL><Bus name="can0"/></CANBeacon>`,
 * one `<Bus name="…"/>` per bus of the gateway (socketcand writes one per `-i` interface).
 * SavvyCAN lists it as `can0,can1@HOST (can://IP:PORT)`, one port per bus, and connects to that IP literal;
 * python-can's `detect_beacon()` (4.2+) reads it with one `recv(1024)` and `ElementTree`.
 * Each subnet gets its own datagram with its own address (socketcand does the same for its one
 * `-l` interface); the targets, the socket, the timer and error logging are subnet-broadcast.ts's
 * (why per subnet and not 255.255.255.255 is explained there). Errors are logged, never thrown: a
 * discovery aid must never take the gateway down.
 */
import { hostname, type NetworkInterfaceInfo } from "node:os";
import type { Logger } from "./log.ts";
import { startSubnetBroadcast } from "./subnet-broadcast.ts";

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
  /** Every bus a client can `< open NAME >`, in order. */
  busNames: readonly string[];
}

function xmlAttr(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[c]!);
}

/** The beacon datagram's text, byte for byte as socketcand's beacon_loop() builds it (newline included). */
export function beaconXml(input: BeaconXmlInput): string {
  return (
    `<CANBeacon name="${xmlAttr(input.name)}" type="SocketCAN" description="${xmlAttr(input.description)}">\n` +
    `<URL>can://${input.address}:${input.port}</URL>${input.busNames.map((b) => `<Bus name="${xmlAttr(b)}"/>`).join("")}</CANBeacon>`
  );
}

export interface SocketcandBeaconOptions {
  /** The socketcand listener's bound TCP port, advertised in the URL. */
  port: number;
  /** Every bus a client can `< open NAME >`. */
  busNames: readonly string[];
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
  const { log, port, busNames } = opts;
  const name = opts.name ?? hostname();
  const description = opts.description ?? "can-server";
  const intervalMs = opts.intervalMs ?? SOCKETCAND_BEACON_INTERVAL_MS;
  let warnedLength = false;
  return startSubnetBroadcast({
    prefix: "socketcand_beacon",
    log,
    intervalMs,
    listenHost: opts.listenHost ?? "0.0.0.0",
    port: SOCKETCAND_BEACON_PORT,
    payload: (t) => {
      const data = Buffer.from(beaconXml({ name, description, address: t.address, port, busNames }), "utf8");
      if (data.length > SOCKETCAND_BEACON_MAX_BYTES && !warnedLength) {
        warnedLength = true;
        log.warn("socketcand_beacon_too_long", { bytes: data.length, max: SOCKETCAND_BEACON_MAX_BYTES });
      }
      return data;
    },
    startedFields: { port, bus: busNames.join(","), interval_ms: intervalMs },
    stoppedFields: { port },
    reportRecovery: true,
    target: opts.target,
    interfaces: opts.interfaces,
  });
}
