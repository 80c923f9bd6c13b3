/**
 * The protocol registry: every client protocol the gateway serves, one line each. Each entry
 * (declared in its own folder's descriptor.ts) names the protocol, its listen flag, environment
 * variable and Config key, default port, transport (TCP stream or UDP datagrams), what frames it
 * carries and how to load its session factory. The flag table (cli/config.ts), the listener
 * wiring (gateway.ts), metrics labels (ops/stats.ts), mDNS TXT records (ops/operations.ts) and
 * -help read it, so a new protocol is its folder plus one line here. Order = order in -help and
 * in the README table.
 */
import { cannelloniUdpDescriptor } from "./cannelloni-udp/descriptor.ts";
import { cannelloniDescriptor } from "./cannelloni/descriptor.ts";
import { canlogserverDescriptor } from "./canlogserver/descriptor.ts";
import { gvretDescriptor } from "./gvret/descriptor.ts";
import { slcanDescriptor } from "./slcan/descriptor.ts";
import { socketcandDescriptor } from "./socketcand/descriptor.ts";
import { waveshareDescriptor } from "./waveshare/descriptor.ts";

export const PROTOCOLS = [
  cannelloniDescriptor,
  waveshareDescriptor,
  socketcandDescriptor,
  slcanDescriptor,
  gvretDescriptor,
  canlogserverDescriptor,
  cannelloniUdpDescriptor,
] as const;

export type AnyProtocolDescriptor = (typeof PROTOCOLS)[number];
export type ProtocolName = AnyProtocolDescriptor["name"];
export type ProtocolConfigKey = AnyProtocolDescriptor["configKey"];

/** Every protocol name: the `protocol` label of the per-protocol metrics. */
export const PROTOCOL_NAMES: readonly ProtocolName[] = PROTOCOLS.map((p) => p.name);

/** The listen addresses in Config, one string per protocol ("" = disabled). */
export type ProtocolListenConfig = { [P in AnyProtocolDescriptor as P["configKey"]]: string };

export function protocolByName(name: ProtocolName): AnyProtocolDescriptor {
  return PROTOCOLS.find((p) => p.name === name)!;
}
