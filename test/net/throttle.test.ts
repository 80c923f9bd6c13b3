import { expect, test } from "bun:test";
import { FailureThrottle, secretMatches } from "../../src/net/throttle.ts";

test("FailureThrottle: 5 failures a window lock a host, locks double, success clears, hosts are bounded", () => {
  const t = new FailureThrottle(5, 60_000, 240_000, 3);
  for (let i = 0; i < 4; i++) t.failed("10.0.0.1", 1000 + i);
  expect(t.lockedFor("10.0.0.1", 1010)).toBe(0);
  t.failed("10.0.0.1", 1010);
  expect(t.lockedFor("10.0.0.1", 1010)).toBe(60_000);
  expect(t.lockedFor("10.0.0.2", 1010)).toBe(0);
  // After the lock, five more failures lock for twice as long.
  for (let i = 0; i < 5; i++) t.failed("10.0.0.1", 61_100 + i);
  expect(t.lockedFor("10.0.0.1", 61_104)).toBe(120_000);
  t.succeeded("10.0.0.1");
  expect(t.lockedFor("10.0.0.1", 61_104)).toBe(0);
  for (let h = 0; h < 100; h++) t.failed(`10.0.1.${h}`, 1);
  expect(t.tracked).toBeLessThanOrEqual(3);
});

test("secretMatches compares whole secrets of any length", () => {
  expect(secretMatches("s3cret", "s3cret")).toBe(true);
  expect(secretMatches("s3cre", "s3cret")).toBe(false);
  expect(secretMatches("s3cret!", "s3cret")).toBe(false);
  expect(secretMatches("", "")).toBe(false);
});
