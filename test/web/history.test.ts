/** The gateway's rate history ring and the dashboard's one address form (pure parts). */
import { expect, test } from "bun:test";
import { RateHistory, RATE_HISTORY_SECONDS } from "../../src/web/history.ts";
import { displayRemote } from "../../src/web/status.ts";

test("the ring keeps the newest samples in order, bounded by its capacity", () => {
  const h = new RateHistory(3);
  expect(h.columns()).toEqual({ t: [], inFps: [], outFps: [], load: [] });
  for (let i = 1; i <= 5; i++) h.push({ t: i * 1000, inFps: i, outFps: i / 2, load: i / 10 });
  expect(h.size).toBe(3);
  expect(h.columns()).toEqual({ t: [3, 4, 5], inFps: [3, 4, 5], outFps: [1.5, 2, 2.5], load: [0.3, 0.4, 0.5] });
});

test("default: ten minutes at one sample a second", () => {
  expect(RATE_HISTORY_SECONDS).toBe(600);
  const h = new RateHistory();
  for (let i = 0; i < 700; i++) h.push({ t: i * 1000, inFps: 0, outFps: 0, load: 0 });
  const c = h.columns();
  expect(c.t.length).toBe(600);
  expect(c.t[0]).toBe(100);
  expect(c.t[599]).toBe(699);
});

test("addresses in one form: IPv4-mapped IPv6 reads as IPv4; others unchanged", () => {
  expect(displayRemote("[::ffff:127.0.0.1]:35980")).toBe("127.0.0.1:35980");
  expect(displayRemote("::ffff:192.168.1.10:20000")).toBe("192.168.1.10:20000");
  expect(displayRemote("127.0.0.1:39380")).toBe("127.0.0.1:39380");
  expect(displayRemote("[fd00::5]:3000")).toBe("[fd00::5]:3000");
  expect(displayRemote("in-process")).toBe("in-process");
});
