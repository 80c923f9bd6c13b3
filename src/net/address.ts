/**
 * Network address syntax shared by the flag parser and the listeners: "host:port", ":port",
 * "[v6]:port". Pure; the listeners use it to bind, the CLI to validate flags before anything binds.
 */

/** Validates a listen address: ":port", "host:port", "[v6]:port", port 0..65535. Empty host = every IPv4 interface. */
export function parseListenAddress(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const host = m[1] ?? m[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

/** A peer address "host:port" / "[v6]:port" with a non-empty host and port 1..65535. */
export function parsePeerAddress(text: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { host: m[1] ?? m[2]!, port };
}

/**
 * The host part of a remote "1.2.3.4:port" / "[v6]:port" (an IPv4-mapped IPv6 address as its IPv4
 * form, so a dual-stack listener and an IPv4 one name a host alike); anything else is returned as is.
 */
export function hostOfRemote(remote: string): string {
  const m = /^\[([^\]]+)\]:\d+$/.exec(remote) ?? /^([^:]+):\d+$/.exec(remote);
  const host = m ? m[1]! : remote;
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(host) ? host.slice(7) : host;
}
