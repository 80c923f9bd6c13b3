/**
 * Does a package description name every client protocol of the registry? Shared by the host test
 * (test/release/descriptions.test.ts, on the sources) and scripts/release-test.sh (on the built
 * .deb and tarball: `bun test/release/protocol-names.ts < text` exits 1 naming what is missing).
 */
import { PROTOCOLS, type ProtocolName } from "../../src/protocols/registry.ts";

/** How a description names each protocol (cannelloni UDP: "cannelloni" and "UDP" in one clause). */
const NAMED: Record<ProtocolName, RegExp> = {
  cannelloni: /cannelloni/i,
  "cannelloni-udp": /cannelloni[^.;:]*\bUDP\b/i,
  waveshare: /waveshare/i,
  socketcand: /socketcand/i,
  slcan: /\bslcan\b/i,
  gvret: /\bGVRET\b/i,
  canlogserver: /canlogserver/i,
};

/** The registry's protocols a text does not name. */
export function unnamedProtocols(text: string): ProtocolName[] {
  return PROTOCOLS.map((p) => p.name).filter((n) => !NAMED[n].test(text));
}

if (import.meta.main) {
  const text = await new Response(Bun.stdin.stream()).text();
  const missing = unnamedProtocols(text);
  if (missing.length > 0) {
    console.error(`description does not name: ${missing.join(", ")}`);
    process.exit(1);
  }
}
