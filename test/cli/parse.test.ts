/**
 * Flags + environment → Config: the seed's names and defaults, Go flag syntax, precedence
 * flag > env > default, one clear error for every kind of bad flag, and a warning (default kept)
 * for a bad environment value, as go-ampio-server silently kept the default.
 */
import { describe, expect, test } from "bun:test";
import { FLAGS } from "../../src/cli/config.ts";
import {
  ConfigError,
  STRICT_ENV,
  defaultConfig,
  parseConfig,
  parseConfigWithWarnings,
  parseDuration,
  usage,
} from "../../src/cli/parse.ts";
import { parseListenAddress } from "../../src/net/address.ts";

/** The ConfigError thrown by parseConfig, or null. */
function configError(argv: string[], env: Record<string, string> = {}): ConfigError | null {
  try {
    parseConfig(argv, env);
    return null;
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
}

describe("defaults (drop-in with go-ampio-server)", () => {
  test("every seed default is kept", () => {
    const c = defaultConfig();
    expect(c.backend).toBe("socketcan");
    expect(c.canIf).toBe("can0");
    expect(c.serial).toBe("/dev/ttyUSB0");
    expect(c.baud).toBe(115200);
    expect(c.listen).toBe(":20000");
    expect(c.serialReadTimeoutMs).toBe(50);
    expect(c.hubBuffer).toBe(512);
    expect(c.hubPolicy).toBe("drop");
    expect(c.maxClients).toBe(0);
    expect(c.handshakeTimeoutMs).toBe(3000);
    expect(c.clientReadTimeoutMs).toBe(60_000);
    expect(c.mdnsEnable).toBe(false);
    expect(c.mdnsName).toBe("");
    expect(c.metricsAddr).toBe("");
    expect(c.logMetricsIntervalMs).toBe(0);
    expect(c.logFormat).toBe("text");
    expect(c.logLevel).toBe("info");
  });

  test("the seed's environment variable names", () => {
    const env = Object.fromEntries(FLAGS.filter((f) => f.env && !f.isNew).map((f) => [f.name, f.env]));
    expect(env).toEqual({
      backend: "CAN_SERVER_BACKEND",
      "can-if": "CAN_SERVER_IF",
      serial: "CAN_SERVER_SERIAL",
      baud: "CAN_SERVER_BAUD",
      listen: "CAN_SERVER_LISTEN",
      "serial-read-timeout": "CAN_SERVER_SERIAL_READ_TIMEOUT",
      "hub-buffer": "CAN_SERVER_HUB_BUFFER",
      "hub-policy": "CAN_SERVER_HUB_POLICY",
      "max-clients": "CAN_SERVER_MAX_CLIENTS",
      "handshake-timeout": "CAN_SERVER_HANDSHAKE_TIMEOUT",
      "client-read-timeout": "CAN_SERVER_CLIENT_READ_TIMEOUT",
      "mdns-enable": "CAN_SERVER_MDNS_ENABLE",
      "mdns-name": "CAN_SERVER_MDNS_NAME",
      "metrics-addr": "CAN_SERVER_METRICS",
      "log-metrics-interval": "CAN_SERVER_LOG_METRICS_INTERVAL",
      "log-format": "CAN_SERVER_LOG_FORMAT",
      "log-level": "CAN_SERVER_LOG_LEVEL",
    });
  });
});

describe("flag syntax", () => {
  test("single dash, double dash, = and separate value", () => {
    const c = parseConfig(["-backend", "virtual", "--listen=:1234", "-hub-buffer=7", "--hub-policy", "kick"], {});
    expect(c.backend).toBe("virtual");
    expect(c.listen).toBe(":1234");
    expect(c.hubBuffer).toBe(7);
    expect(c.hubPolicy).toBe("kick");
  });

  test("bool flags: alone, =value, and the seed unit's `-mdns-enable true` as two words", () => {
    expect(parseConfig(["-mdns-enable"], {}).mdnsEnable).toBe(true);
    expect(parseConfig(["-mdns-enable=false"], {}).mdnsEnable).toBe(false);
    const c = parseConfig(["-mdns-enable", "true", "-backend", "serial"], {});
    expect(c.mdnsEnable).toBe(true);
    expect(c.backend).toBe("serial");
    expect(parseConfig(["-mdns-enable", "false"], {}).mdnsEnable).toBe(false);
  });

  test("Go durations", () => {
    expect(parseDuration("50ms")).toBe(50);
    expect(parseDuration("3s")).toBe(3000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration("0")).toBe(0);
    expect(parseDuration(".5s")).toBe(500);
    expect(parseDuration("1.s")).toBe(1000);
    expect(parseDuration("10")).toBeNull();
    expect(parseDuration("s")).toBeNull();
    expect(parseDuration("5 s")).toBeNull();
  });

  test("listen addresses", () => {
    expect(parseListenAddress(":20000")).toEqual({ host: "0.0.0.0", port: 20000 });
    expect(parseListenAddress("127.0.0.1:0")).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseListenAddress("[::1]:9100")).toEqual({ host: "::1", port: 9100 });
    expect(parseListenAddress("20000")).toBeNull();
    expect(parseListenAddress(":70000")).toBeNull();
  });
});

describe("precedence flag > env > default", () => {
  test("env overrides default, flag overrides env", () => {
    const env = { CAN_SERVER_HUB_BUFFER: "99", CAN_SERVER_BACKEND: "serial", CAN_SERVER_METRICS: ":9100" };
    const c = parseConfig(["-backend", "virtual"], env);
    expect(c.backend).toBe("virtual");
    expect(c.hubBuffer).toBe(99);
    expect(c.metricsAddr).toBe(":9100");
  });

  test("an empty variable means unset (EnvironmentFile templates)", () => {
    expect(parseConfig([], { CAN_SERVER_BAUD: "" }).baud).toBe(115200);
    expect(parseConfig([], { CAN_SERVER_LISTEN: "" }).listen).toBe(":20000");
    expect(parseConfig([], { CAN_SERVER_WAVESHARE_LISTEN: "" }).waveshareListen).toBe("");
  });

  test("a bad variable keeps the default with a warning when its flag is not given", () => {
    const r = parseConfigWithWarnings([], { CAN_SERVER_HUB_POLICY: "block" });
    expect(r.config.hubPolicy).toBe("drop");
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]!.message).toMatch(/CAN_SERVER_HUB_POLICY.*drop\|kick.*keeping the default drop/);
  });

  test("a bad variable is ignored silently when the flag is given (flag wins, as in the seed)", () => {
    const r = parseConfigWithWarnings(["-hub-policy", "kick"], { CAN_SERVER_HUB_POLICY: "block" });
    expect(r.config.hubPolicy).toBe("kick");
    expect(r.warnings).toEqual([]);
  });
});

describe("errors name the flag or variable and the accepted values", () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["-nope"], {}, /unknown flag -nope/],
    [["-backend", "can"], {}, /-backend.*socketcan\|serial\|virtual/],
    [["-hub-buffer", "0"], {}, /-hub-buffer.*>= 1/],
    [["-hub-buffer", "ten"], {}, /-hub-buffer.*integer/],
    [["-baud", "0"], {}, /-baud/],
    [["-handshake-timeout", "3"], {}, /-handshake-timeout.*duration/],
    [["-handshake-timeout", "0s"], {}, /-handshake-timeout.*at least 1ms/],
    // Longer timers fire at once in JavaScript: refused instead of silently inverted.
    [["-handshake-timeout", "1000h"], {}, /-handshake-timeout.*at most 2147483647ms/],
    [["-log-metrics-interval", "1e400h"], {}, /-log-metrics-interval/],
    [["-listen="], {}, /-listen.*host:port or :port"?$/],
    [["-log-format", "xml"], {}, /-log-format.*text\|json/],
    [["-log-level", "trace"], {}, /-log-level.*debug\|info\|warn\|error/],
    [["-listen", "20000"], {}, /-listen.*host:port/],
    [["-listen"], {}, /-listen needs a value/],
    [["stray"], {}, /unexpected argument "stray"/],
    // Environment variables whose default is more open than any intent fail closed.
    [[], { CAN_SERVER_LISTEN: "20000" }, /CAN_SERVER_LISTEN.*host:port/],
    [[], { CAN_SERVER_ALLOW: "192.168.1.0/33" }, /CAN_SERVER_ALLOW.*"192\.168\.1\.0\/33"/],
    [[], { CAN_SERVER_TX_ALLOW: "hass.local" }, /CAN_SERVER_TX_ALLOW.*"hass\.local"/],
  ];
  for (const [argv, env, re] of cases) {
    test(`${JSON.stringify(argv)} ${JSON.stringify(env)}`, () => {
      let err: unknown = null;
      try {
        parseConfig(argv, env);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(re);
    });
  }
});

test("usage lists every flag with its env var and default", () => {
  const u = usage();
  for (const f of FLAGS) {
    expect(u).toContain(`-${f.name}`);
    if (f.env) expect(u).toContain(f.env);
  }
  expect(u).toContain("default socketcan; env CAN_SERVER_BACKEND");
});

describe("rules between flags", () => {
  const attempt = (argv: string[], env: Record<string, string> = {}): unknown => {
    try {
      return parseConfig(argv, env);
    } catch (e) {
      return e;
    }
  };
  test("-socketcand-beacon without -socketcand-listen is a configuration error naming both", () => {
    for (const [argv, env] of [
      [["-socketcand-beacon"], {}],
      [[], { CAN_SERVER_SOCKETCAND_BEACON: "true" }],
      [["-socketcand-beacon", "-socketcand-listen="], {}],
    ] as [string[], Record<string, string>][]) {
      const err = attempt(argv, env);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/-socketcand-beacon.*needs -socketcand-listen/);
    }
  });
  test("the beacon with a socketcand listener from a flag or the environment is accepted; off by default", () => {
    expect(defaultConfig().socketcandBeacon).toBe(false);
    expect(parseConfig(["-socketcand-beacon", "-socketcand-listen", ":29536"], {}).socketcandBeacon).toBe(true);
    expect(parseConfig([], { CAN_SERVER_SOCKETCAND_BEACON: "1", CAN_SERVER_SOCKETCAND_LISTEN: ":29536" }).socketcandBeacon).toBe(true);
    expect(parseConfig(["-socketcand-beacon=false"], {}).socketcandBeacon).toBe(false);
  });
  test("-help and -version still work with an incomplete combination", () => {
    expect(parseConfig(["-socketcand-beacon", "-help"], {}).help).toBe(true);
    expect(parseConfig(["-socketcand-beacon", "-version"], {}).version).toBe(true);
  });
});

describe("environment parity with go-ampio-server: a bad value warns and keeps the default", () => {
  // [variable, bad value, config key, default kept]: the examples first, then one per kind.
  const cases: [string, string, string, unknown][] = [
    ["CAN_SERVER_BAUD", "0", "baud", 115200],
    ["CAN_SERVER_BAUD", "fast", "baud", 115200],
    ["CAN_SERVER_HUB_BUFFER", "0", "hubBuffer", 512],
    ["CAN_SERVER_HUB_BUFFER", "lots", "hubBuffer", 512],
    ["CAN_SERVER_MDNS_ENABLE", "enabled", "mdnsEnable", false],
    ["CAN_SERVER_METRICS", "9100", "metricsAddr", ""],
    ["CAN_SERVER_METRICS", "localhost", "metricsAddr", ""],
    ["CAN_SERVER_METRICS", ":99999", "metricsAddr", ""],
    ["CAN_SERVER_MAX_CLIENTS", "-1", "maxClients", 0],
    ["CAN_SERVER_HANDSHAKE_TIMEOUT", "3", "handshakeTimeoutMs", 3000],
    ["CAN_SERVER_CLIENT_READ_TIMEOUT", "0s", "clientReadTimeoutMs", 60_000],
    ["CAN_SERVER_LOG_FORMAT", "xml", "logFormat", "text"],
    ["CAN_SERVER_LOG_LEVEL", "trace", "logLevel", "info"],
    ["CAN_SERVER_BACKEND", "can", "backend", "socketcan"],
    ["CAN_SERVER_WAVESHARE_LISTEN", "20001", "waveshareListen", ""],
    ["CAN_SERVER_BITRATE", "-1", "bitrate", 0],
    ["CAN_SERVER_CLIENT_TX_RATE", "fast", "clientTxRate", "auto"],
    ["CAN_SERVER_CLIENT_TX_BURST", "-5", "clientTxBurst", "auto"],
    ["CAN_SERVER_TX_MAX_AGE", "0", "txMaxAgeMs", 2000],
    ["CAN_SERVER_MAX_HANDSHAKES", "many", "maxHandshakes", 64],
  ];
  for (const [variable, value, key, kept] of cases) {
    test(`${variable}=${JSON.stringify(value)} → default ${JSON.stringify(kept)}, one warning`, () => {
      const { config, warnings } = parseConfigWithWarnings([], { [variable]: value });
      expect((config as unknown as Record<string, unknown>)[key]).toEqual(kept);
      expect(warnings).toHaveLength(1);
      const w = warnings[0]!;
      expect(w.variable).toBe(variable);
      expect(w.value).toBe(value);
      const spec = FLAGS.find((f) => f.env === variable)!;
      expect(w.kept).toBe(spec.def);
      expect(w.message).toContain(variable);
      expect(w.message).toContain(JSON.stringify(value));
      expect(w.message).toContain(`keeping the default ${spec.def === "" ? '""' : spec.def}`);
      // parseConfig (callers that cannot log) gives the same configuration.
      expect(parseConfig([], { [variable]: value })).toEqual(config);
    });
  }

  test("the same bad values as flags are still errors (exit 2)", () => {
    const flagCases: [string[], RegExp][] = [
      [["-baud", "0"], /-baud/],
      [["-hub-buffer", "0"], /-hub-buffer/],
      [["-mdns-enable=enabled"], /-mdns-enable.*true\|false/],
      [["-metrics-addr", "9100"], /-metrics-addr.*host:port/],
      [["-bitrate", "-1"], /-bitrate/],
      [["-client-tx-rate", "fast"], /-client-tx-rate.*auto/],
    ];
    for (const [argv, re] of flagCases) expect(configError(argv)?.message).toMatch(re);
  });

  test("an empty variable is still 'unset': no warning; an empty CAN_SERVER_METRICS disables metrics", () => {
    const r = parseConfigWithWarnings([], { CAN_SERVER_BAUD: "", CAN_SERVER_HUB_BUFFER: " ", CAN_SERVER_METRICS: "", CAN_SERVER_MDNS_ENABLE: "" });
    expect(r.warnings).toEqual([]);
    expect(r.config.metricsAddr).toBe("");
    expect(r.config.baud).toBe(115200);
    expect(parseConfigWithWarnings([], { CAN_SERVER_METRICS: "  " }).warnings).toEqual([]);
  });

  test("the value is reported trimmed, good variables beside a bad one still apply, one warning each", () => {
    const r = parseConfigWithWarnings([], {
      CAN_SERVER_BAUD: " 0 ",
      CAN_SERVER_HUB_BUFFER: "64",
      CAN_SERVER_MDNS_ENABLE: "enabled",
      CAN_SERVER_BACKEND: "virtual",
    });
    expect(r.config.baud).toBe(115200);
    expect(r.config.hubBuffer).toBe(64);
    expect(r.config.backend).toBe("virtual");
    expect(r.warnings.map((w) => [w.variable, w.value, w.kept])).toEqual([
      ["CAN_SERVER_BAUD", "0", "115200"],
      ["CAN_SERVER_MDNS_ENABLE", "enabled", "false"],
    ]);
  });

  test("good values give no warning", () => {
    const env = { CAN_SERVER_BAUD: "57600", CAN_SERVER_MDNS_ENABLE: "on", CAN_SERVER_METRICS: ":9100", CAN_SERVER_HUB_BUFFER: "1" };
    const r = parseConfigWithWarnings([], env);
    expect(r.warnings).toEqual([]);
    expect(r.config).toMatchObject({ baud: 57600, mdnsEnable: true, metricsAddr: ":9100", hubBuffer: 1 });
  });

  test("only the listen address and the allowlists fail closed", () => {
    expect([...STRICT_ENV].sort()).toEqual(["CAN_SERVER_ALLOW", "CAN_SERVER_LISTEN", "CAN_SERVER_TX_ALLOW"]);
    for (const v of STRICT_ENV) expect(FLAGS.some((f) => f.env === v)).toBe(true);
  });

  test("rules between flags stay errors, whichever source set them", () => {
    expect(configError([], { CAN_SERVER_SOCKETCAND_BEACON: "true" })?.message).toMatch(/needs -socketcand-listen/);
    // A bad listener variable falls back to its default (disabled), so the beacon has nothing to advertise.
    expect(configError([], { CAN_SERVER_SOCKETCAND_BEACON: "true", CAN_SERVER_SOCKETCAND_LISTEN: "29536" })?.message).toMatch(
      /needs -socketcand-listen/,
    );
  });
});

describe("isolation and access-control flags", () => {
  test("defaults", () => {
    const c = defaultConfig();
    expect(c.bitrate).toBe(0);
    expect(c.clientTxRate).toBe("auto");
    expect(c.clientTxBurst).toBe("auto");
    expect(c.txMaxAgeMs).toBe(2000);
    expect(c.maxHandshakes).toBe(64);
    expect(c.allow).toEqual([]);
    expect(c.txAllow).toEqual([]);
  });

  test("good values from flags", () => {
    const c = parseConfig(
      [
        "-bitrate", "50000",
        "-client-tx-rate", "200",
        "-client-tx-burst=AUTO",
        "-tx-max-age", "500ms",
        "-max-handshakes", "0",
        "-allow", "192.168.1.0/24, ::1",
        "-tx-allow=192.168.1.10/32",
      ],
      {},
    );
    expect(c).toMatchObject({
      bitrate: 50000,
      clientTxRate: 200,
      clientTxBurst: "auto",
      txMaxAgeMs: 500,
      maxHandshakes: 0,
      allow: ["192.168.1.0/24", "::1"],
      txAllow: ["192.168.1.10/32"],
    });
    expect(parseConfig(["-client-tx-rate", "0", "-client-tx-burst", "1"], {})).toMatchObject({ clientTxRate: 0, clientTxBurst: 1 });
    expect(parseConfig(["-bitrate", "8000000"], {}).bitrate).toBe(8_000_000);
    expect(parseConfig(["-allow="], {}).allow).toEqual([]);
    expect(parseConfig(["-allow", " , "], {}).allow).toEqual([]);
  });

  test("good values from the environment; a flag beats the environment", () => {
    const env = {
      CAN_SERVER_BITRATE: "125000",
      CAN_SERVER_CLIENT_TX_RATE: "auto",
      CAN_SERVER_CLIENT_TX_BURST: "64",
      CAN_SERVER_TX_MAX_AGE: "1m",
      CAN_SERVER_MAX_HANDSHAKES: "16",
      CAN_SERVER_ALLOW: "10.0.0.0/8,fd00::/8",
      CAN_SERVER_TX_ALLOW: "10.0.0.5",
    };
    const r = parseConfigWithWarnings([], env);
    expect(r.warnings).toEqual([]);
    expect(r.config).toMatchObject({
      bitrate: 125000,
      clientTxRate: "auto",
      clientTxBurst: 64,
      txMaxAgeMs: 60_000,
      maxHandshakes: 16,
      allow: ["10.0.0.0/8", "fd00::/8"],
      txAllow: ["10.0.0.5"],
    });
    const c = parseConfig(["-allow", "127.0.0.1", "-client-tx-burst", "8"], env);
    expect(c.allow).toEqual(["127.0.0.1"]);
    expect(c.clientTxBurst).toBe(8);
    // An empty allowlist variable means unset (everyone), like every other empty variable.
    expect(parseConfig([], { CAN_SERVER_ALLOW: "" }).allow).toEqual([]);
  });

  const bad: [string[], RegExp][] = [
    [["-bitrate", "-1"], /-bitrate.*>= 0/],
    [["-bitrate", "8000001"], /-bitrate.*<= 8000000/],
    [["-bitrate", "500k"], /-bitrate.*integer/],
    [["-client-tx-rate", "-1"], /-client-tx-rate.*auto or an integer >= 0/],
    [["-client-tx-rate", "1.5"], /-client-tx-rate.*auto or an integer/],
    [["-client-tx-rate", "100000001"], /-client-tx-rate/],
    [["-client-tx-rate", ""], /-client-tx-rate/],
    [["-client-tx-burst", "automatic"], /-client-tx-burst.*auto or an integer/],
    [["-tx-max-age", "0s"], /-tx-max-age.*at least 1ms/],
    [["-tx-max-age", "2"], /-tx-max-age.*duration/],
    [["-max-handshakes", "-1"], /-max-handshakes.*>= 0/],
    [["-max-handshakes", "1000001"], /-max-handshakes.*<= 1000000/],
    [["-allow", "192.168.1.0/33"], /-allow.*invalid CIDR "192\.168\.1\.0\/33"/],
    [["-allow", "10.0.0.0/8,localhost"], /-allow.*invalid CIDR "localhost"/],
    [["-tx-allow", "010.0.0.1"], /-tx-allow.*invalid CIDR "010\.0\.0\.1"/],
    [["-allow"], /-allow needs a value/],
  ];
  for (const [argv, re] of bad) {
    test(`bad flag ${JSON.stringify(argv)}`, () => expect(configError(argv)?.message).toMatch(re));
  }
});
