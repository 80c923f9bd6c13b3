/**
 * The per-id table's rate is an average over about 10 s (as the Ampio inventory's module rate), so
 * an id that sends about once a second reads about 1/s instead of 0 and 2 in turns, and it is
 * measured over the time that really passed since the table was last computed (the table is only
 * computed while a page is open). The WebBus is driven in memory with real (short) waits.
 */
import { expect, test } from "bun:test";
import { dataFrame, stamp } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { CidrList } from "../../src/net/cidr.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Hub } from "../../src/hub/hub.ts";
import { Stats } from "../../src/ops/stats.ts";
import { RATE_TAU_S, WebBus } from "../../src/web/bus.ts";

function bus(): WebBus {
  const { log } = memoryLogger("error");
  const hub = new Hub({ policy: "drop", echoClients: true, tx: { rate: 0, burst: 1, queueFrames: 16, maxAgeMs: 2000 }, stats: new Stats(), log });
  let id = 1;
  return new WebBus({ hub, counters: new ConsumerCounters(), log, allocateId: () => id++, tx: { enabled: false, token: "", txAllow: CidrList.parse([]) } });
}
const frame = () => stamp(dataFrame(0x1d4c, [0xfe, 0x06, 0xd9, 0x04], true), Date.now() * 1000, 0);
const rateOf = (rows: { id: string; rate: number }[]): number => rows.find((r) => r.id === "00001D4C")!.rate;

test("the rate is averaged: an empty interval after a busy one does not read 0", async () => {
  const b = bus();
  b.enqueue(frame());
  expect(rateOf(b.sniffer(1))).toBe(0); // first look: the count so far spans an unknown time
  await Bun.sleep(200);
  b.enqueue(frame());
  const first = rateOf(b.sniffer(1)); // one frame in ~0.2 s: the average starts there
  expect(first).toBeGreaterThan(1); // (at most 1 s passed even on a loaded machine)
  expect(first).toBeLessThan(5.01);
  await Bun.sleep(200);
  const second = rateOf(b.sniffer(1)); // nothing in ~0.2 s: decays by about 2 %, not to 0
  expect(second).toBeLessThan(first);
  expect(second).toBeGreaterThan(first * Math.exp(-0.5 / RATE_TAU_S) - 0.01);
});

test("the interval is the time that passed, not the caller's nominal one", async () => {
  const b = bus();
  b.enqueue(frame());
  b.sniffer(1);
  for (let i = 0; i < 10; i++) b.enqueue(frame());
  await Bun.sleep(500);
  const r = rateOf(b.sniffer(10)); // ten frames over ~0.5 s = ~20/s, not the 1/s a nominal 10 s would give
  expect(r).toBeGreaterThan(5);
  expect(r).toBeLessThan(20.01);
});
