/**
 * The new backends' options as flags and environment variables: -remote / CAN_SERVER_REMOTE,
 * -remote-bus / CAN_SERVER_REMOTE_BUS, and -bitrate for slcan. Bad combinations are one clear
 * ConfigError (exit 2 in main), naming the flag, its variable and what is accepted.
 */
import { describe, expect, test } from "bun:test";
import { ConfigError, parseConfig } from "../../../src/cli/parse.ts";

function attempt(argv: string[], env: Record<string, string> = {}): unknown {
  try {
    return parseConfig(argv, env);
  } catch (e) {
    return e;
  }
}

describe("remote and slcan backend options", () => {
  test("-remote and -remote-bus from flags or the environment", () => {
    const c = parseConfig(["-backend", "socketcand-client", "-remote", "10.0.0.2:29536", "-remote-bus", "can1"], {});
    expect([c.backend, c.remote, c.remoteBus]).toEqual(["socketcand-client", "10.0.0.2:29536", "can1"]);
    const e = parseConfig([], { CAN_SERVER_BACKEND: "cannelloni-client", CAN_SERVER_REMOTE: "[::1]:20000" });
    expect([e.backend, e.remote, e.remoteBus]).toEqual(["cannelloni-client", "[::1]:20000", "can0"]);
  });

  test("a remote backend without a usable -remote is a configuration error naming it", () => {
    for (const argv of [["-backend", "cannelloni-client"], ["-backend", "socketcand-client", "-remote", "host"], ["-backend", "cannelloni-client", "-remote", "h:0"]]) {
      const err = attempt(argv);
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toContain("-remote");
      expect((err as Error).message).toContain("CAN_SERVER_REMOTE");
    }
    const bus = attempt(["-backend", "socketcand-client", "-remote", "h:1", "-remote-bus", "a b"]);
    expect(bus).toBeInstanceOf(ConfigError);
    expect((bus as Error).message).toContain("-remote-bus");
  });

  test("-backend slcan takes the Lawicel bit rates only", () => {
    expect(parseConfig(["-backend", "slcan", "-bitrate", "125000"], {}).bitrate).toBe(125_000);
    expect(parseConfig(["-backend", "slcan"], {}).bitrate).toBe(0);
    const err = attempt(["-backend", "slcan", "-bitrate", "33333"]);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/-bitrate 33333 has no slcan code.*10000, 20000, 50000, 100000, 125000, 250000, 500000, 800000, 1000000, 83333/);
    // Other backends keep any bit rate.
    expect(parseConfig(["-backend", "virtual", "-bitrate", "33333"], {}).bitrate).toBe(33_333);
  });
});
