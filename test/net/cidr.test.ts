/**
 * CIDR allowlists (`-allow`, `-tx-allow`): address and network parsing, matching of IPv4, IPv6
 * and IPv4-mapped peers as Bun reports them, the edge prefixes 0/32/128, and refusal of malformed
 * or ambiguous input. The last test asks a real dual-stack socket what a peer address looks like.
 */
import { describe, expect, test } from "bun:test";
import { CidrList, parseAddress, parseCidr, splitList } from "../../src/net/cidr.ts";

const bytes = (a: string): number[] | null => {
  const b = parseAddress(a);
  return b ? [...b] : null;
};
const list = (...entries: string[]): CidrList => CidrList.parse(entries);

describe("parseAddress", () => {
  test("IPv4 is stored IPv4-mapped", () => {
    expect(bytes("192.168.1.10")).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10]);
    expect(bytes("0.0.0.0")).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    expect(bytes(" 255.255.255.255 ")).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 255, 255, 255, 255]);
  });

  test("IPv6 forms: full, compressed, ::, brackets, zone, upper case", () => {
    expect(bytes("2001:db8:0:0:0:0:0:1")).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(bytes("2001:DB8::1")).toEqual(bytes("2001:db8:0:0:0:0:0:1"));
    expect(bytes("::1")).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(bytes("::")).toEqual(new Array<number>(16).fill(0));
    expect(bytes("1::")).toEqual([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(bytes("1:2:3:4:5:6:7::")).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0]);
    expect(bytes("[::1]")).toEqual(bytes("::1"));
    expect(bytes("fe80::1%eth0")).toEqual(bytes("fe80::1"));
  });

  test("IPv4-mapped IPv6, dotted and hex, equals the plain IPv4 address", () => {
    expect(bytes("::ffff:192.168.1.10")).toEqual(bytes("192.168.1.10"));
    expect(bytes("::ffff:c0a8:10a")).toEqual(bytes("192.168.1.10"));
    expect(bytes("0:0:0:0:0:ffff:192.168.1.10")).toEqual(bytes("192.168.1.10"));
  });

  const bad = [
    "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.-4", "+1.2.3.4", "1.2.3.4 5", "a.b.c.d",
    // leading zeros are octal to inet_aton: ambiguous, refused
    "010.0.0.1", "1.2.3.04",
    // brackets and zones belong to IPv6
    "[1.2.3.4]", "1.2.3.4%eth0",
    "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8::", ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:", "12345::", "g::1", "::ffff:1.2.3", "::1.2.3.4:5", "1.2.3.4::", "0x1::",
  ];
  for (const a of bad) test(`refuses ${JSON.stringify(a)}`, () => expect(parseAddress(a)).toBeNull());
});

describe("parseCidr", () => {
  test("IPv4 prefixes count from the mapped prefix (96 + n)", () => {
    expect(parseCidr("10.0.0.0/8")).toMatchObject({ text: "10.0.0.0/8", prefix: 104 });
    expect(parseCidr("0.0.0.0/0")!.prefix).toBe(96);
    expect(parseCidr("10.0.0.5/32")!.prefix).toBe(128);
    expect(parseCidr("10.0.0.5")!.prefix).toBe(128); // a bare address is one host
  });

  test("IPv6 prefixes are taken as written", () => {
    expect(parseCidr("::/0")!.prefix).toBe(0);
    expect(parseCidr("fd00::/8")!.prefix).toBe(8);
    expect(parseCidr("::1/128")!.prefix).toBe(128);
    expect(parseCidr("::1")!.prefix).toBe(128);
  });

  for (const c of ["10.0.0.0/33", "::/129", "10.0.0.0/", "/8", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/a", "10.0.0.0/1000", "fd00::/8x", "localhost/8"]) {
    test(`refuses ${JSON.stringify(c)}`, () => expect(parseCidr(c)).toBeNull());
  }
});

describe("CidrList.allows", () => {
  test("an empty list allows everyone, even an unparseable peer", () => {
    const l = list();
    expect(l.empty).toBe(true);
    expect(l.allows("203.0.113.7")).toBe(true);
    expect(l.allows("not an address")).toBe(true);
  });

  test("IPv4 network: inside, outside, boundaries", () => {
    const l = list("192.168.1.0/24");
    expect(l.empty).toBe(false);
    expect(l.allows("192.168.1.0")).toBe(true);
    expect(l.allows("192.168.1.255")).toBe(true);
    expect(l.allows("192.168.0.255")).toBe(false);
    expect(l.allows("192.168.2.0")).toBe(false);
  });

  test("a prefix that does not end on a byte boundary", () => {
    const l = list("10.1.2.64/27"); // .64 - .95
    expect(l.allows("10.1.2.63")).toBe(false);
    expect(l.allows("10.1.2.64")).toBe(true);
    expect(l.allows("10.1.2.95")).toBe(true);
    expect(l.allows("10.1.2.96")).toBe(false);
    const v6 = list("2001:db8:8000::/33");
    expect(v6.allows("2001:db8:8000::1")).toBe(true);
    expect(v6.allows("2001:db8:ffff::1")).toBe(true);
    expect(v6.allows("2001:db8:7fff::1")).toBe(false);
  });

  test("host bits in the network are ignored (as Go's ParseCIDR)", () => {
    expect(list("192.168.1.77/24").allows("192.168.1.3")).toBe(true);
  });

  test("/32 and a bare address match exactly one host", () => {
    for (const l of [list("192.168.1.10/32"), list("192.168.1.10")]) {
      expect(l.allows("192.168.1.10")).toBe(true);
      expect(l.allows("192.168.1.11")).toBe(false);
      expect(l.allows("192.168.1.9")).toBe(false);
    }
  });

  test("0.0.0.0/0 is every IPv4 peer but no IPv6 peer", () => {
    const l = list("0.0.0.0/0");
    expect(l.allows("1.2.3.4")).toBe(true);
    expect(l.allows("255.255.255.255")).toBe(true);
    expect(l.allows("::ffff:8.8.8.8")).toBe(true);
    expect(l.allows("::1")).toBe(false);
    expect(l.allows("2001:db8::1")).toBe(false);
  });

  test("IPv4-mapped peers of a dual-stack listener match IPv4 networks", () => {
    const l = list("192.168.1.0/24", "127.0.0.1");
    expect(l.allows("::ffff:192.168.1.10")).toBe(true);
    expect(l.allows("::FFFF:192.168.1.10")).toBe(true);
    expect(l.allows("::ffff:c0a8:010a")).toBe(true);
    expect(l.allows("::ffff:127.0.0.1")).toBe(true);
    expect(l.allows("::ffff:192.168.2.10")).toBe(false);
    // The IPv4-compatible form (::a.b.c.d, deprecated) is not IPv4-mapped: not the same host.
    expect(l.allows("::192.168.1.10")).toBe(false);
  });

  test("IPv6 networks: /128, /64, ::/0", () => {
    const one = list("::1/128");
    expect(one.allows("::1")).toBe(true);
    expect(one.allows("[::1]")).toBe(true);
    expect(one.allows("::2")).toBe(false);
    expect(one.allows("127.0.0.1")).toBe(false); // loopback in the other family is another address
    const lan = list("fd00:1:2:3::/64");
    expect(lan.allows("fd00:1:2:3:abcd::9")).toBe(true);
    expect(lan.allows("fd00:1:2:4::9")).toBe(false);
    expect(lan.allows("fe80::1%eth0")).toBe(false);
    expect(list("::/0").allows("2001:db8::1")).toBe(true);
  });

  test("a mapped-form IPv6 network matches plain IPv4 peers", () => {
    const l = list("::ffff:10.0.0.0/104");
    expect(l.allows("10.200.0.1")).toBe(true);
    expect(l.allows("11.0.0.1")).toBe(false);
  });

  test("several networks: any one is enough", () => {
    const l = list("10.0.0.0/8", "fd00::/8", "192.168.1.10");
    expect(l.allows("10.9.9.9")).toBe(true);
    expect(l.allows("fdff::1")).toBe(true);
    expect(l.allows("192.168.1.10")).toBe(true);
    expect(l.allows("192.168.1.11")).toBe(false);
    expect(l.toString()).toBe("10.0.0.0/8,fd00::/8,192.168.1.10");
  });

  test("a non-empty list refuses an unparseable peer (fails closed)", () => {
    const l = list("0.0.0.0/0", "::/0");
    expect(l.allows("")).toBe(false);
    expect(l.allows("unknown")).toBe(false);
    expect(l.allows("1.2.3.4.5")).toBe(false);
  });

  test("parse throws a RangeError naming the first bad entry", () => {
    expect(() => list("10.0.0.0/8", "10.0.0.0/33", "nope")).toThrow(RangeError);
    expect(() => list("10.0.0.0/8", "10.0.0.0/33", "nope")).toThrow(/"10\.0\.0\.0\/33"/);
  });
});

test("splitList trims and drops empty entries", () => {
  expect(splitList("")).toEqual([]);
  expect(splitList(" , ,")).toEqual([]);
  expect(splitList("10.0.0.0/8, ::1 ,,192.168.1.10")).toEqual(["10.0.0.0/8", "::1", "192.168.1.10"]);
});


test("a real IPv4 client of a dual-stack listener: the address Bun reports matches an IPv4 network", async () => {
  let seen: string | null = null;
  const got = Promise.withResolvers<void>();
  const server = Bun.listen({
    hostname: "::",
    port: 0,
    socket: {
      open(s) {
        seen = s.remoteAddress;
        got.resolve();
      },
      data() {},
    },
  });
  try {
    const client = await Bun.connect({ hostname: "127.0.0.1", port: server.port, socket: { data() {} } });
    await got.promise;
    client.end();
    expect(seen).not.toBeNull();
    expect(seen!).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    expect(list("127.0.0.0/8").allows(seen!)).toBe(true);
    expect(list("10.0.0.0/8").allows(seen!)).toBe(false);
    expect(list("::1").allows(seen!)).toBe(false);
  } finally {
    server.stop(true);
  }
});
