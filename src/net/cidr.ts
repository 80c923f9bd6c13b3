/**
 * CIDR allowlists for access control (`-allow`, `-tx-allow`): parse "192.168.1.0/24", "::1",
 * "fd00::/8", and match a peer address as Bun reports it ("127.0.0.1", "::1",
 * "::ffff:192.168.1.10" for an IPv4 client of a dual-stack listener — matched as IPv4). Pure.
 * Written here rather than taken from a library: it is ~100 lines, and the npm candidates either
 * pull in Node's `net` module shims or do not treat IPv4-mapped IPv6 peers as IPv4.
 */

/** One network: 16 address bytes (IPv4 is stored IPv4-mapped) and a prefix length over them. */
export interface Cidr {
  readonly text: string;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

const V4_MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function parseV4(text: string, out: Uint8Array, at: number): boolean {
  const parts = text.split(".");
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // No leading zeros: "010" is octal 8 to inet_aton but decimal 10 here, so refuse the ambiguity
    // (as Go's net.ParseIP does since 1.17).
    if (!/^(?:0|[1-9]\d{0,2})$/.test(p)) return false;
    const n = Number(p);
    if (n > 255) return false;
    out[at + i] = n;
  }
  return true;
}

/** Parses an IPv4 or IPv6 address (zone ids such as %eth0 are ignored) into 16 bytes, or null. */
export function parseAddress(text: string): Uint8Array | null {
  const out = new Uint8Array(16);
  let t = text.trim();
  const zone = t.indexOf("%");
  if (zone >= 0) t = t.slice(0, zone);
  const bracketed = t.startsWith("[") && t.endsWith("]");
  if (bracketed) t = t.slice(1, -1);
  if (!t.includes(":")) {
    if (bracketed || zone >= 0) return null; // brackets and zones belong to IPv6

    out.set(V4_MAPPED_PREFIX);
    return parseV4(t, out, 12) ? out : null;
  }
  // IPv6: up to 8 groups, one "::", an optional dotted IPv4 tail.
  const halves = t.split("::");
  if (halves.length > 2) return null;
  const groups = (s: string): string[] | null => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === null || tail === null) return null;
  const words: number[] = [];
  const pushGroups = (gs: string[], target: number[]): boolean => {
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i]!;
      if (g.includes(".")) {
        if (i !== gs.length - 1) return false;
        const v4 = new Uint8Array(4);
        if (!parseV4(g, v4, 0)) return false;
        target.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return false;
      target.push(parseInt(g, 16));
    }
    return true;
  };
  const tailWords: number[] = [];
  // A dotted IPv4 part may only end the whole address, not the part before "::" ("1.2.3.4::").
  if (halves.length === 2 && halves[0]!.includes(".")) return null;
  if (!pushGroups(head, words) || !pushGroups(tail, tailWords)) return null;
  if (halves.length === 2) {
    const missing = 8 - words.length - tailWords.length;
    if (missing < 1) return null;
    for (let i = 0; i < missing; i++) words.push(0);
  }
  words.push(...tailWords);
  if (words.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

/** "a.b.c.d/n", "v6/n" or a bare address (one host). Null when malformed. */
export function parseCidr(text: string): Cidr | null {
  const t = text.trim();
  const slash = t.indexOf("/");
  const addrText = slash < 0 ? t : t.slice(0, slash);
  const bytes = parseAddress(addrText);
  if (!bytes) return null;
  const v4 = !addrText.includes(":");
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p)) return null;
    prefix = Number(p);
    if (prefix > max) return null;
  }
  return { text: t, bytes, prefix: v4 ? prefix + 96 : prefix };
}

function contains(net: Cidr, addr: Uint8Array): boolean {
  let bits = net.prefix;
  for (let i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((net.bytes[i]! & mask) !== (addr[i]! & mask)) return false;
  }
  return true;
}

/** A list of networks; an empty list means "no restriction". */
export class CidrList {
  private constructor(readonly networks: readonly Cidr[]) {}

  /** Parses "net[,net...]"; throws RangeError naming the first bad entry. Empty text = empty list. */
  static parse(entries: readonly string[]): CidrList {
    const nets: Cidr[] = [];
    for (const e of entries) {
      const c = parseCidr(e);
      if (!c) throw new RangeError(`invalid CIDR ${JSON.stringify(e)} (expected e.g. 192.168.1.0/24, 10.0.0.5, ::1 or fd00::/8)`);
      nets.push(c);
    }
    return new CidrList(nets);
  }

  get empty(): boolean {
    return this.networks.length === 0;
  }

  /** Whether the address is in any network; an empty list allows everyone. Unparseable: false. */
  allows(address: string): boolean {
    if (this.networks.length === 0) return true;
    const addr = parseAddress(address);
    if (!addr) return false;
    for (const n of this.networks) if (contains(n, addr)) return true;
    return false;
  }

  toString(): string {
    return this.networks.map((n) => n.text).join(",");
  }
}

/** Splits a comma-separated flag value into trimmed non-empty entries. */
export function splitList(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
