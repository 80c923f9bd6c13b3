/**
 * Browser safety for the HTTP endpoint. DNS rebinding: a page on evil.example re-resolves its
 * own name to the gateway's address, and the browser then lets it read /api/status, /metrics or
 * /capture.pcap as "same origin" — but it still sends `Host: evil.example`. So a request is
 * served only when its Host names the gateway: an IP literal (a page loaded from an address is
 * that address's own), `localhost`, this machine's hostname, `hostname.local` (mDNS), the
 * hostname in the machine's DNS search domains (`gw.lan`), or a name the operator lists
 * (`-http-hosts`, e.g. the name a reverse proxy forwards). A request without
 * Host (HTTP/1.0 probes) is no browser's and is served.
 *
 * Cross-site WebSockets: browsers do not apply the same-origin policy to WebSockets, so any page
 * could open /ws and read the bus; they do send `Origin`. A WebSocket upgrade or a state-changing
 * request (not GET/HEAD) with an Origin is served only when the Origin is the gateway itself: its
 * host[:port] equals the Host the request was sent to, or its host name is one of the names above
 * (an IP literal alone is not enough here: another device's page at http://192.168.1.5 is foreign).
 * Without Origin (curl, websocat, scripts) nothing is checked: those are not browsers.
 */
import { readFileSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { parseAddress } from "./cidr.ts";

/** The host part of a Host header value ("[::1]:9100" → "::1", "Gateway.local.:80" → "gateway.local"). */
export function hostHeaderName(value: string): string {
  let v = value.trim().toLowerCase();
  if (v.startsWith("[")) {
    const end = v.indexOf("]");
    return end > 0 ? v.slice(1, end) : v;
  }
  const colon = v.lastIndexOf(":");
  if (colon >= 0 && v.indexOf(":") === colon) v = v.slice(0, colon);
  return v.endsWith(".") ? v.slice(0, -1) : v;
}

/** The DNS search domains of this machine (`search`/`domain` in /etc/resolv.conf): "gw" is also "gw.lan". */
export function searchDomains(text?: string): string[] {
  let t = text;
  if (t === undefined) {
    try {
      t = readFileSync("/etc/resolv.conf", "utf8");
    } catch {
      return [];
    }
  }
  const out: string[] = [];
  for (const line of t.split("\n")) {
    const m = /^\s*(?:search|domain)\s+(.+)$/.exec(line);
    if (m) for (const d of m[1]!.trim().split(/\s+/)) if (d !== "" && d !== ".") out.push(d.toLowerCase().replace(/\.$/, ""));
  }
  return out;
}

export class HostCheck {
  private readonly names: ReadonlySet<string>;

  /**
   * `extra`: -http-hosts entries; `hostname`: this machine's name (default os.hostname());
   * `domains`: its DNS search domains (default from /etc/resolv.conf).
   */
  constructor(extra: readonly string[] = [], hostname: string = osHostname(), domains: readonly string[] = searchDomains()) {
    const h = hostname.toLowerCase();
    const names = new Set(["localhost", h, `${h}.local`]);
    // A hostname given as an FQDN also answers to its first label (and that label's .local).
    const first = h.split(".")[0]!;
    if (first !== "") names.add(first).add(`${first}.local`);
    for (const d of domains) names.add(`${first}.${d}`);
    for (const e of extra) {
      const n = hostHeaderName(e);
      if (n !== "") names.add(n);
    }
    this.names = names;
  }

  /** Names accepted besides IP literals (for the log line at start-up). */
  get accepted(): string[] {
    return [...this.names];
  }

  /** Whether a request with this Host header is for the gateway (null: no header, allowed). */
  hostAllowed(host: string | null): boolean {
    if (host === null) return true;
    const name = hostHeaderName(host);
    if (parseAddress(name) !== null) return true;
    return this.names.has(name) || name.endsWith(".localhost");
  }

  /** Whether a browser page from `origin` may use this endpoint (null: no Origin, allowed). */
  originAllowed(origin: string | null, host: string | null): boolean {
    if (origin === null) return true;
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false; // includes the opaque "null" origin of sandboxed frames and file: pages
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") return false;
    if (host !== null && u.host.toLowerCase() === host.trim().toLowerCase()) return true;
    return this.names.has(hostHeaderName(u.hostname));
  }
}
