/**
 * Flags + environment → Config: the seed's names and defaults, Go flag syntax, precedence
 * flag > env > default, and one clear error for every kind of bad input.
 */
import { describe, expect, test } from "bun:test";
import { FLAGS } from "../../src/cli/config.ts";
import { ConfigError, defaultConfig, parseConfig, parseDuration, parseListenAddress, usage } from "../../src/cli/parse.ts";

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

  test("a bad variable is an error when its flag is not given", () => {
    expect(() => parseConfig([], { CAN_SERVER_HUB_POLICY: "block" })).toThrow(/CAN_SERVER_HUB_POLICY.*drop\|kick/);
  });

  test("a bad variable is ignored when the flag is given (flag wins, as in the seed)", () => {
    expect(parseConfig(["-hub-policy", "kick"], { CAN_SERVER_HUB_POLICY: "block" }).hubPolicy).toBe("kick");
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
    [[], { CAN_SERVER_BAUD: "fast" }, /CAN_SERVER_BAUD.*integer/],
    [[], { CAN_SERVER_MDNS_ENABLE: "maybe" }, /CAN_SERVER_MDNS_ENABLE.*true\|false/],
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
