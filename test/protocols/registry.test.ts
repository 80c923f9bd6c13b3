/**
 * The protocol registry (src/protocols/registry.ts) and what reads it: every protocol has one
 * listen flag with its env var and Config key in the flag table (go-ampio-server's -listen and the
 * existing -waveshare-listen / -socketcand-listen unchanged), off by default except cannelloni
 * TCP, the `true` / bare-flag shorthand for the default port, the UDP peer list (repeatable and
 * comma-separated), the rules between flags, -help, the metrics labels, and the layering rule
 * that nothing under src/protocols/ imports from cli/, ops/ or server/.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FLAGS } from "../../src/cli/config.ts";
import { ConfigError, defaultConfig, parseConfig, usage } from "../../src/cli/parse.ts";
import { protocolDefault } from "../../src/cli/help.ts";
import { PROTOCOL_NAMES as STATS_PROTOCOL_NAMES, Stats } from "../../src/ops/stats.ts";
import { PROTOCOL_NAMES, PROTOCOLS } from "../../src/protocols/registry.ts";

const error = (argv: string[], env: Record<string, string> = {}): string => {
  try {
    parseConfig(argv, env);
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return "";
};

describe("protocol registry", () => {
  test("names, flags, env vars and Config keys are unique; each protocol has exactly one listen flag in the table", () => {
    for (const field of ["name", "flag", "env", "configKey"] as const) {
      expect(new Set(PROTOCOLS.map((p) => p[field])).size).toBe(PROTOCOLS.length);
    }
    for (const p of PROTOCOLS) {
      const spec = FLAGS.filter((f) => f.name === p.flag);
      expect(spec).toHaveLength(1);
      expect(spec[0]!.env).toBe(p.env);
      expect(spec[0]!.key).toBe(p.configKey);
      expect(spec[0]!.kind).toBe("addr");
      expect(spec[0]!.def).toBe(p.defaultAddress);
    }
  });

  test("existing flags keep their names, variables, keys and defaults; every new listener is off by default", () => {
    const c = defaultConfig();
    expect(c.listen).toBe(":20000");
    expect(FLAGS.find((f) => f.name === "listen")).toMatchObject({ env: "CAN_SERVER_LISTEN", key: "listen", required: true });
    expect(FLAGS.find((f) => f.name === "waveshare-listen")).toMatchObject({ env: "CAN_SERVER_WAVESHARE_LISTEN", key: "waveshareListen", def: "" });
    expect(FLAGS.find((f) => f.name === "socketcand-listen")).toMatchObject({ env: "CAN_SERVER_SOCKETCAND_LISTEN", key: "socketcandListen", def: "" });
    for (const key of ["slcanListen", "gvretListen", "canlogserverListen", "cannelloniUdpListen"] as const) expect(c[key]).toBe("");
    expect(c.cannelloniUdpPeer).toEqual([]);
    expect(c.gvretDiscovery).toBe(false);
    expect(c.cannelloniUdpAcceptAny).toBe(false);
    expect(c.cannelloniUdpMtu).toBe(1500);
    expect(error(["-listen="])).toMatch(/-listen/);
  });

  test("default ports: slcan 3333, GVRET 23, canlogserver 28700, cannelloni UDP 20000; transports", () => {
    const byName = Object.fromEntries(PROTOCOLS.map((p) => [p.name, p]));
    expect(byName["slcan"]).toMatchObject({ defaultPort: 3333, transport: "tcp" });
    expect(byName["gvret"]).toMatchObject({ defaultPort: 23, transport: "tcp" });
    expect(byName["canlogserver"]).toMatchObject({ defaultPort: 28700, transport: "tcp" });
    expect(byName["cannelloni-udp"]).toMatchObject({ defaultPort: 20000, transport: "udp" });
    expect(byName["slcan"]!.minHandshakeTimeoutMs).toBe(60_000);
  });

  test("`true`, `on` or the bare flag mean the default port; `false` disables; addresses as usual", () => {
    expect(parseConfig(["-slcan-listen", "true"], {}).slcanListen).toBe(":3333");
    expect(parseConfig(["-gvret-listen"], {}).gvretListen).toBe(":23");
    const c = parseConfig(["-canlogserver-listen", "-fd"], {});
    expect(c.canlogserverListen).toBe(":28700");
    expect(c.fd).toBe(true);
    expect(parseConfig(["-cannelloni-udp-listen=on"], {}).cannelloniUdpListen).toBe(":20000");
    expect(parseConfig([], { CAN_SERVER_GVRET_LISTEN: "yes" }).gvretListen).toBe(":23");
    expect(parseConfig(["-slcan-listen", "false"], {}).slcanListen).toBe("");
    expect(parseConfig(["-slcan-listen", "127.0.0.1:4444"], {}).slcanListen).toBe("127.0.0.1:4444");
    expect(error(["-slcan-listen", "nonsense"])).toMatch(/-slcan-listen/);
  });

  test("cannelloni UDP peers: repeatable and comma-separated, validated, and need the UDP listener", () => {
    const c = parseConfig(["-cannelloni-udp-listen", ":20000", "-cannelloni-udp-peer", "10.0.0.2:20000,[fd00::5]:3000", "-cannelloni-udp-peer", "esp32.local:20000"], {});
    expect(c.cannelloniUdpPeer).toEqual(["10.0.0.2:20000", "[fd00::5]:3000", "esp32.local:20000"]);
    expect(parseConfig([], { CAN_SERVER_CANNELLONI_UDP_LISTEN: ":20000", CAN_SERVER_CANNELLONI_UDP_PEER: "a:1,b:2" }).cannelloniUdpPeer).toEqual(["a:1", "b:2"]);
    expect(error(["-cannelloni-udp-listen", ":1", "-cannelloni-udp-peer", "10.0.0.2"])).toMatch(/not host:port/);
    expect(error(["-cannelloni-udp-listen", ":1", "-cannelloni-udp-peer", "10.0.0.2:0"])).toMatch(/not host:port/);
    expect(error(["-cannelloni-udp-peer", "10.0.0.2:20000"])).toMatch(/need -cannelloni-udp-listen/);
    expect(error(["-cannelloni-udp-accept-any"])).toMatch(/need -cannelloni-udp-listen/);
    expect(error(["-gvret-discovery"])).toMatch(/-gvret-discovery.*needs -gvret-listen/);
    expect(error(["-gvret-discovery", "-gvret-listen"])).toBe("");
  });

  test("-help lists every protocol with its flag and default port", () => {
    const u = usage();
    for (const p of PROTOCOLS) {
      expect(u).toMatch(new RegExp(`  -${p.flag} +${protocolDefault(p).replace(/[()]/g, "\\$&")}\n`));
      expect(u).toContain(`  -${p.flag} [HOST]:PORT`);
    }
  });

  test("metrics labels: Stats has per-protocol counters for every registered protocol", () => {
    expect([...STATS_PROTOCOL_NAMES]).toEqual(PROTOCOLS.map((p) => p.name));
    expect([...PROTOCOL_NAMES]).toEqual(["cannelloni", "waveshare", "socketcand", "slcan", "gvret", "canlogserver", "cannelloni-udp"]);
    const s = new Stats();
    for (const p of PROTOCOL_NAMES) expect(s.protocol(p)).toEqual({ clients: 0, accepted: 0, rxFrames: 0, txFrames: 0, malformed: 0, handshakeFailures: 0 });
  });

  test("every registered protocol loads its session factory, with the registry's name", async () => {
    for (const p of PROTOCOLS) expect((await p.load()).name).toBe(p.name);
  });

  test("layers point down: nothing under src/protocols/ imports from cli/, ops/, server/, hub/ or gateway", () => {
    const root = new URL("../../src/protocols/", import.meta.url).pathname;
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (name.endsWith(".ts")) files.push(path);
      }
    };
    walk(root);
    expect(files.length).toBeGreaterThan(15);
    const offending = files.flatMap((f) =>
      [...readFileSync(f, "utf8").matchAll(/from "([^"]+)"|import\("([^"]+)"\)/g)]
        .map((m) => m[1] ?? m[2]!)
        .filter((spec) => /(^|\/)(cli|ops|server|hub)\/|gateway\.ts$/.test(spec))
        .map((spec) => `${f.slice(root.length)} → ${spec}`),
    );
    expect(offending).toEqual([]);
  });
});
