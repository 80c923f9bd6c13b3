/**
 * Backoff (src/backends/backoff.ts), the pure reconnect-delay calculator the serial and SocketCAN
 * backends share: doubling from the first delay, capped, restartable.
 */
import { expect, test } from "bun:test";
import { Backoff } from "../../../src/backends/backoff.ts";

test("grows by the factor from the initial delay up to the cap, then stays there", () => {
  const b = new Backoff({ initialMs: 20, maxMs: 1000, factor: 2 });
  const delays = Array.from({ length: 9 }, () => b.next());
  expect(delays).toEqual([20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
  expect(b.attempts).toBe(9);
});

test("reset() starts again from the initial delay", () => {
  const b = new Backoff({ initialMs: 20, maxMs: 1000, factor: 2 });
  b.next();
  b.next();
  b.reset();
  expect(b.attempts).toBe(0);
  expect(b.next()).toBe(20);
});

test("nonsense options are clamped: factor below 1 means a constant delay, cap never below the start", () => {
  expect([0, 1, 2].map(() => new Backoff({ initialMs: 50, maxMs: 10, factor: 0.5 }).next())).toEqual([50, 50, 50]);
  const constant = new Backoff({ initialMs: 30, maxMs: 1000, factor: 0 });
  expect([constant.next(), constant.next(), constant.next()]).toEqual([30, 30, 30]);
});
