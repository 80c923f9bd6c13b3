/**
 * mDNS/DNS-SD advertisement (`-mdns-enable`): publishes `_can-server._tcp` on the cannelloni
 * port with TXT backend=, version=, commit= (as go-ampio-server does) plus waveshare_port= and
 * socketcand_port= when those listeners are on (the first bus's), with several buses `buses=can0,can1`
 * and each bus's cannelloni port as `port_<bus>=` (mdnsBusTxt; one advertisement for the
 * process), and withdraws it (goodbye packets, TTL 0) on
 * shutdown. bonjour-service over Bun's node:dgram multicast; its socket errors are logged, never
 * thrown (the library's default error callback throws, which would take the gateway down over a
 * discovery feature).
 */
import { EventEmitter } from "node:events";
import { hostname } from "node:os";
import { Bonjour } from "bonjour-service";
import type { BackendKind } from "../backends/backend.ts";
import type { BuildInfo } from "./build-info.ts";
import type { Logger } from "./log.ts";

export const MDNS_SERVICE_TYPE = "_can-server._tcp";

export interface MdnsOptions {
  /** Instance name (`-mdns-name`); "" means `can-server-<hostname>`. */
  name: string;
  /** The cannelloni listener's bound port. */
  port: number;
  txt: Record<string, string>;
  log: Logger;
  /** Host name announced in SRV/A records (default `<hostname>.local`). */
  host?: string;
}

export interface MdnsAdvertisement {
  /** Sends the goodbye and closes the socket; resolves within about a second even on errors. */
  stop(): Promise<void>;
}

/** `-mdns-name`, or `can-server-<hostname>` when empty (go-ampio-server's default). */
export function mdnsInstanceName(configured: string, host: string = hostname()): string {
  return configured !== "" ? configured : `can-server-${host}`;
}

export interface MdnsTxtInput {
  backend: BackendKind;
  build: BuildInfo;
  /** Bound ports of the optional listeners; omitted when disabled. */
  wavesharePort?: number;
  socketcandPort?: number;
}

export function mdnsTxt(input: MdnsTxtInput): Record<string, string> {
  const txt: Record<string, string> = { backend: input.backend, version: input.build.version, commit: input.build.commit };
  if (input.wavesharePort !== undefined) txt["waveshare_port"] = String(input.wavesharePort);
  if (input.socketcandPort !== undefined) txt["socketcand_port"] = String(input.socketcandPort);
  return txt;
}

/** A TXT string holds at most 255 bytes (RFC 6763 §6.1). */
export const MDNS_TXT_MAX_BYTES = 255;

/**
 * TXT keys for several buses: `buses=<name>,<name>…` (in order, the first is the default bus) and
 * `port_<bus>=<cannelloni TCP port>` for each bus with its own cannelloni listener. One bus:
 * nothing (go-ampio-server's TXT). Names that would push `buses=` past 255 bytes are left out of
 * it (their `port_` keys stay); bus names are at most 15 characters, so that takes 16 buses.
 */
export function mdnsBusTxt(buses: readonly { readonly name: string; readonly cannelloniPort?: number }[]): Record<string, string> {
  if (buses.length < 2) return {};
  const txt: Record<string, string> = {};
  let list = "";
  for (const b of buses) {
    const next = list === "" ? b.name : `${list},${b.name}`;
    if ("buses=".length + Buffer.byteLength(next) <= MDNS_TXT_MAX_BYTES) list = next;
  }
  txt["buses"] = list;
  for (const b of buses) if (b.cannelloniPort !== undefined) txt[`port_${b.name}`] = String(b.cannelloniPort);
  return txt;
}

const STOP_TIMEOUT_MS = 1000;

export function startMdns(opts: MdnsOptions): MdnsAdvertisement {
  const { log } = opts;
  const name = mdnsInstanceName(opts.name);
  const fields = { service: MDNS_SERVICE_TYPE, name, port: opts.port };
  const bonjour = new Bonjour({}, (err: Error) => log.warn("mdns_send_error", { error: err.message }));
  // multicast-dns emits "error" (cannot bind UDP 5353: EADDRINUSE/EACCES) on its own emitter, which
  // bonjour-service does not listen to; unhandled, an "error" event throws. The emitter is private
  // in the library's types, hence the narrow cast.
  const inner = (bonjour as unknown as { server?: { mdns?: unknown } }).server?.mdns;
  if (inner instanceof EventEmitter) {
    inner.on("error", (err: Error) => log.warn("mdns_socket_error", { error: err.message }));
    inner.on("warning", (err: Error) => log.debug("mdns_socket_warning", { error: err.message }));
  }
  const service = bonjour.publish({
    name,
    type: "can-server",
    protocol: "tcp",
    port: opts.port,
    host: opts.host ?? `${hostname()}.local`,
    txt: opts.txt,
  });
  service.on("up", () => log.info("mdns_started", fields));

  let stopped: Promise<void> | null = null;
  return {
    stop() {
      stopped ??= new Promise<void>((resolve) => {
        let done = false;
        const finish = (): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          bonjour.destroy(() => {});
          log.info("mdns_stopped", fields);
          resolve();
        };
        const timer = setTimeout(finish, STOP_TIMEOUT_MS);
        try {
          bonjour.unpublishAll(finish);
        } catch (e) {
          log.warn("mdns_send_error", { error: (e as Error).message });
          finish();
        }
      });
      return stopped;
    },
  };
}
