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
