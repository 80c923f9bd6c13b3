/**
 * The configuration file (-config, issue 19 item 1): the issue's example as written, precedence
 * (flag > file > environment > default), per-bus settings, routes, -print-config reading back to
 * the same configuration, and bad files as one error naming file, line and key. Files are real
 * files in a temporary directory; the binary-level checks (exit codes, stderr) run src/main.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfiguration } from "../../src/cli/config-file.ts";
import { ConfigError } from "../../src/cli/parse.ts";
import { printConfig } from "../../src/cli/print-config.ts";
import { ISSUE_EXAMPLE } from "../helpers/config-examples.ts";

const dir = mkdtempSync(join(tmpdir(), "config-file-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(text: string): string {
  const p = join(dir, `c${n++}.toml`);
  writeFileSync(p, text);
  return p;
}


function badFile(text: string, argv: string[] = [], env: Record<string, string> = {}): string {
  const p = file(text);
  try {
    loadConfiguration(["-config", p, ...argv], env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message.replace(p, "FILE");
  }
  throw new Error("no error");
}

describe("configuration file", () => {
  test("the issue's example: two buses with their own backend, device and listeners, one route", () => {
    const c = loadConfiguration(["-config", file(ISSUE_EXAMPLE)], {});
    expect(c.busTables).toBe(true);
    expect(c.config.metricsAddr).toBe("127.0.0.1:9100");
    expect(c.config.socketcandListen).toBe(":29536");
    expect(c.buses.map((b) => b.name)).toEqual(["can0", "can1"]);
    const [a, b] = c.buses;
    expect([a!.config.backend, a!.config.canIf, a!.config.bitrate, a!.config.listen, a!.config.waveshareListen]).toEqual(["socketcan", "can0", 50000, ":20000", ":20001"]);
    expect([b!.config.backend, b!.config.canIf, b!.config.bitrate, b!.config.listen, b!.config.waveshareListen]).toEqual(["socketcan", "can1", 0, ":20010", ":20002"]);
    // globals reach every bus; the default bus is what single-bus code reads
    expect(b!.config.metricsAddr).toBe("127.0.0.1:9100");
    expect(c.config).toBe(a!.config);
    expect(c.routes).toEqual([
      {
        name: "can0->can1",
        from: "can0",
        to: "can1",
        filters: [
          { id: 0x100, mask: 0x700, extended: false },
          { id: 0x1d4c, mask: 0xffff, extended: true },
        ],
        rewrite: null,
        hopLimit: 1,
        rate: 0,
      },
    ]);
  });

  test("README shows the same example", async () => {
    const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
    expect(readme).toContain("```toml\n" + ISSUE_EXAMPLE + "```");
  });

  test("flags override the file for globals and the default bus; the file overrides the environment", () => {
    const env = { CAN_SERVER_METRICS: "127.0.0.1:1", CAN_SERVER_IF: "vcan9", CAN_SERVER_LOG_LEVEL: "debug", CAN_SERVER_FD: "true" };
    const c = loadConfiguration(["-config", file(ISSUE_EXAMPLE), "-bitrate", "125000", "-metrics-addr", "127.0.0.1:9200"], env);
    expect(c.config.metricsAddr).toBe("127.0.0.1:9200"); // flag > file
    expect(c.sources.get("metricsAddr")).toBe("flag");
    expect(c.buses[0]!.config.bitrate).toBe(125000); // flag > the default bus's table
    expect(c.buses[1]!.config.bitrate).toBe(0); // other buses: only their table
    expect(c.buses[0]!.config.canIf).toBe("can0"); // file > environment
    expect(c.config.logLevel).toBe("debug"); // environment where the file says nothing
    expect(c.sources.get("logLevel")).toBe("environment");
    expect(c.buses[1]!.config.fd).toBe(true); // "inherit" settings come from the top level
  });

  test("CAN_SERVER_CONFIG names the file; flags alone still mean one bus", () => {
    const c = loadConfiguration([], { CAN_SERVER_CONFIG: file(ISSUE_EXAMPLE) });
    expect(c.buses.length).toBe(2);
    const flagsOnly = loadConfiguration(["-backend", "virtual", "-waveshare-listen", ":20001"], {});
    expect(flagsOnly.busTables).toBe(false);
    expect(flagsOnly.buses.map((b) => b.name)).toEqual(["can0"]);
    expect(flagsOnly.buses[0]!.config).toBe(flagsOnly.config);
    expect(flagsOnly.config.waveshareListen).toBe(":20001");
  });

  test("a file without [[bus]] tables is flags written down (one bus)", () => {
    const c = loadConfiguration(["-config", file('backend = "virtual"\nlisten = ":0"\nclient-tx-rate = 100\nhandshake-timeout = "5s"\nallow = ["127.0.0.1", "10.0.0.0/8"]\n')], {});
    expect(c.busTables).toBe(false);
    expect([c.config.backend, c.config.listen, c.config.clientTxRate, c.config.handshakeTimeoutMs, c.config.allow]).toEqual(["virtual", ":0", 100, 5000, ["127.0.0.1", "10.0.0.0/8"]]);
  });

  test("a bus after the first has no listener it did not ask for and inherits FD/TX settings", () => {
    const c = loadConfiguration(["-config", file('fd = true\nclient-tx-rate = 50\n[[bus]]\nname = "a"\nbackend = "virtual"\nlisten = ":0"\n[[bus]]\nname = "b"\nbackend = "virtual"\nclient-tx-rate = 7\n')], {});
    const b = c.buses[1]!.config;
    expect([b.listen, b.waveshareListen, b.fd, b.clientTxRate]).toEqual(["", "", true, 7]);
    expect(c.buses[0]!.config.clientTxRate).toBe(50);
  });

  test("-print-config reads back to the same configuration, with sources", () => {
    const p = file(ISSUE_EXAMPLE);
    const c = loadConfiguration(["-config", p, "-log-level", "warn"], { CAN_SERVER_MQTT_PREFIX: "home" });
    const text = printConfig(c);
    expect(text).toContain('metrics-addr = "127.0.0.1:9100"  # file');
    expect(text).toContain('log-level = "warn"  # flag');
    expect(text).toContain('mqtt-prefix = "home"  # environment CAN_SERVER_MQTT_PREFIX');
    expect(text).toContain('hub-buffer = 512  # default');
    const again = loadConfiguration(["-config", file(text)], {});
    expect(again.buses.map((b) => b.config)).toEqual(c.buses.map((b) => ({ ...b.config, config: again.config.config })));
    expect(again.routes).toEqual(c.routes);
    // flags only: one bus, every flag
    const single = loadConfiguration(["-backend", "virtual", "-tx-max-age", "1500ms"], {});
    const back = loadConfiguration(["-config", file(printConfig(single))], {});
    expect({ ...back.config, config: "" }).toEqual(single.config);
  });

  test("secrets are not printed", () => {
    const c = loadConfiguration(["-mqtt-password", "hunter2", "-web-token", "s3cret"], {});
    const text = printConfig(c);
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("s3cret");
    expect(text).toContain("# mqtt-password = (set, not shown)  # flag");
  });

  test("a password inside -mqtt-url is not printed either", () => {
    // The bridge takes the password from the URL's userinfo when -mqtt-password is not set.
    const c = loadConfiguration(["-mqtt-url", "mqtts://alice:hunter2@broker.example:8883"], {});
    const text = printConfig(c);
    expect(text).not.toContain("hunter2");
    expect(text).toContain('# mqtt-url = "mqtts://alice:(not%20shown)@broker.example:8883"  # flag (its password not shown)');
    // Without a password the URL is printed as given.
    expect(printConfig(loadConfiguration(["-mqtt-url", "mqtt://alice@127.0.0.1:1883"], {}))).toContain('mqtt-url = "mqtt://alice@127.0.0.1:1883"  # flag');
  });
});

describe("bad configuration files: one error naming the file, line and key, and what is accepted", () => {
  test("not TOML: the line of the mistake", () => {
    expect(badFile('metrics-addr = "127.0.0.1:9100"\n\n[[bus]]\nname = "can0"\nbitrate = 50 000\n')).toMatch(/^FILE line 5: not valid TOML: /);
  });
  test("unknown top-level key", () => {
    expect(badFile('metrics-addr = ":9100"\nmetric-addr = ":9100"\n')).toBe(
      'FILE line 2: key "metric-addr": unknown setting; accepted: the name of any flag in -help (without the dash, e.g. metrics-addr), [[bus]], [[route]] and [[job]] tables',
    );
  });
  test("a bad value says what is accepted", () => {
    expect(badFile('hub-policy = "maybe"\n')).toBe('invalid value "maybe" for FILE line 1: key "hub-policy": expected one of drop|kick');
    expect(badFile("handshake-timeout = 3\n")).toMatch(/^invalid value "3" for FILE line 1: key "handshake-timeout": expected a duration like 500ms/);
    expect(badFile('[[bus]]\nname = "a"\nbackend = "virtual"\nbaud = "fast"\n')).toMatch(/^invalid value "fast" for FILE line 4: key "baud" in \[\[bus\]\] #1: expected an integer/);
  });
  test("a bus setting at the top level next to [[bus]] tables, a global inside a bus", () => {
    expect(badFile('can-if = "can0"\n[[bus]]\nname = "a"\n')).toMatch(/^FILE line 1: key "can-if": "can-if" is a setting of one bus; with \[\[bus\]\] tables put it inside/);
    expect(badFile('[[bus]]\nname = "a"\n\n[[bus]]\nname = "b"\nmetrics-addr = ":9100"\n')).toMatch(/^FILE line 6: key "metrics-addr" in \[\[bus\]\] #2: "metrics-addr" is not a setting of one bus; put it at the top level/);
  });
  test("bus names: missing, invalid, twice", () => {
    expect(badFile('[[bus]]\nbackend = "virtual"\n')).toMatch(/in \[\[bus\]\] #1: every \[\[bus\]\] needs name = "…"/);
    expect(badFile('[[bus]]\nname = "a b"\n')).toMatch(/every \[\[bus\]\] needs name/);
    expect(badFile('[[bus]]\nname = "a"\nlisten = ":1"\n[[bus]]\nname = "a"\nlisten = ":2"\n')).toMatch(/^FILE line 5: key "name" in \[\[bus\]\] #2: bus name "a" is used twice/);
  });
  test("two listeners on one port", () => {
    expect(badFile('[[bus]]\nname = "a"\nlisten = ":20000"\n[[bus]]\nname = "b"\nwaveshare-listen = ":20000"\n')).toBe(
      "FILE: -waveshare-listen of bus b and -listen of bus a both listen on TCP port 20000; give each its own port",
    );
  });
  test("routes: unknown bus, to itself, bad filter, unknown key", () => {
    const buses = '[[bus]]\nname = "a"\nlisten = ":1"\n[[bus]]\nname = "b"\nlisten = ":2"\n';
    expect(badFile(buses + '[[route]]\nfrom = "a"\nto = "c"\n')).toBe('FILE line 9: key "to" in [[route]] #1: expected the name of a bus: "a", "b"');
    expect(badFile(buses + '[[route]]\nfrom = "a"\nto = "a"\n')).toMatch(/a route goes from one bus to another/);
    expect(badFile(buses + '[[route]]\nfrom = "a"\nto = "b"\nfilter = ["xyz"]\n')).toMatch(/^FILE line 10: key "filter" in \[\[route\]\] #1: "xyz" is not ID\/MASK in hex/);
    expect(badFile(buses + '[[route]]\nfrom = "a"\nto = "b"\nhops = 2\n')).toMatch(/unknown route setting; a \[\[route\]\] accepts name, from, to, filter/);
  });
  test("a file that cannot be read", () => {
    expect(() => loadConfiguration(["-config", join(dir, "missing.toml")], {})).toThrow(/cannot read configuration file .*missing\.toml: no such file/);
  });
  test("the binary: exit 2 and one line on stderr; -print-config exits 0", () => {
    const main = new URL("../../src/main.ts", import.meta.url).pathname;
    const bad = Bun.spawnSync(["bun", main, "-config", file("nonsense = 1\n")], { env: { PATH: process.env.PATH ?? "" } });
    expect(bad.exitCode).toBe(2);
    const err = bad.stderr.toString();
    expect(err.trim().split("\n").length).toBe(1);
    expect(err).toMatch(/^can-server: configuration error: .*c\d+\.toml line 1: key "nonsense": unknown setting/);
    const ok = Bun.spawnSync(["bun", main, "-config", file(ISSUE_EXAMPLE), "-print-config"], { env: { PATH: process.env.PATH ?? "" } });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout.toString()).toContain('[[bus]]\nname = "can1"\nbackend = "socketcan"  # file\ncan-if = "can1"  # file');
  });

  test("the binary: a replay file that cannot be read is a configuration error on any bus, not only the first", () => {
    const main = new URL("../../src/main.ts", import.meta.url).pathname;
    const missing = join(dir, "missing-replay.log");
    const text = `[[bus]]\nname = "a"\nbackend = "virtual"\nlisten = "127.0.0.1:0"\n[[bus]]\nname = "b"\nbackend = "replay"\nreplay-file = ${JSON.stringify(missing)}\n`;
    const path = file(text);
    const r = Bun.spawnSync(["bun", main, "-config", path], { env: { PATH: process.env.PATH ?? "" }, timeout: 20_000 });
    expect(r.stderr.toString()).toBe(`can-server: configuration error: ${path}: [[bus]] "b": -replay-file ${JSON.stringify(missing)} cannot be read: no such file\n`);
    expect(r.exitCode).toBe(2);
  });
});
