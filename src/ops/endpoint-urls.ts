/**
 * Where the HTTP endpoint (dashboard, API, capture, metrics) can be reached, as URLs a user can
 * paste into a browser: the bound address itself, or for a wildcard address (`:9100` = 0.0.0.0,
 * `[::]:9100`) every address of this machine's interfaces, loopback first. Pure: the interface
 * list is an argument (os.networkInterfaces() at the caller).
 */
import type { NetworkInterfaceInfo } from "node:os";

/** A host as it goes into a URL: IPv6 literals in brackets. */
function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * URLs for an endpoint bound to `host`:`port`. IPv6 link-local addresses are left out (a browser
 * needs their zone index, which a URL cannot portably carry).
 */
export function endpointUrls(host: string, port: number, interfaces: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>): string[] {
  const url = (h: string): string => `http://${urlHost(h)}:${port}/`;
  const v4Wildcard = host === "0.0.0.0";
  const anyWildcard = host === "::" || host === "";
  if (!v4Wildcard && !anyWildcard) return [url(host)];
  const addrs: { address: string; internal: boolean }[] = [];
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      const v6 = a.family === "IPv6";
      if (v6 && (!anyWildcard || /^fe80:/i.test(a.address))) continue;
      addrs.push({ address: a.address, internal: a.internal });
    }
  }
  // Loopback first (always there), then the others in the system's order, IPv4 before IPv6.
  addrs.sort((a, b) => Number(b.internal) - Number(a.internal) || Number(a.address.includes(":")) - Number(b.address.includes(":")));
  const urls = [...new Set(addrs.map((a) => url(a.address)))];
  return urls.length > 0 ? urls : [url(v4Wildcard ? "127.0.0.1" : "::1")];
}
