/**
 * Sending from the dashboard obeys -tx-allow like every other client (issue 12: "the allowlist of
 * the access-control work applies here too"): with -web-tx and the right token, a browser outside
 * -tx-allow is still read-only — its frame is dropped as read_only and never reaches the bus. The
 * WebBus is driven in memory here (the browser path is in dashboard.test.ts).
 */
import { afterEach, expect, test } from "bun:test";
import { formatFrame, type CanFrame } from "../../src/can/frame.ts";
import { ConsumerCounters } from "../../src/capture/counters.ts";
import { WebBus } from "../../src/web/bus.ts";
import { CidrList } from "../../src/net/cidr.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";

let gw: TestGateway | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
});

function webBus(g: TestGateway, txAllow: string[]): WebBus {
  const { log } = memoryLogger("debug");
  return new WebBus({
    hub: g.gateway.hub,
    counters: new ConsumerCounters(),
    log,
    allocateId: () => g.gateway.registry.allocateId(),
    tx: { enabled: true, token: "s3cret", txAllow: CidrList.parse(txAllow) },
  });
}

test("a browser outside -tx-allow cannot send even with the token; one inside can", async () => {
  gw = await startTestGateway();
  const onBus: CanFrame[] = [];
  gw.backend.observe((f) => onBus.push(f));
  const outside = webBus(gw, ["192.168.1.10/32"]);
  const r1 = outside.send(outside.newViewer("127.0.0.1:40000"), "123#01", "s3cret");
  expect(r1.ok).toBe(false);
  expect(r1.error).toContain("read_only");
  expect(gw.stats.txDropped.get("read_only")).toBe(1);
  const inside = webBus(gw, ["127.0.0.0/8"]);
  const r2 = inside.send(inside.newViewer("127.0.0.1:40001"), "124#02", "s3cret");
  expect(r2.ok).toBe(true);
  expect(onBus.map(formatFrame)).toEqual(["124#02"]);
});

test("wrong -web-token guesses are throttled per host and burst-logged; another host is not locked out", async () => {
  gw = await startTestGateway();
  const onBus: CanFrame[] = [];
  gw.backend.observe((f) => onBus.push(f));
  const { log, lines } = memoryLogger("debug");
  const counters = new ConsumerCounters();
  const bus = new WebBus({ hub: gw.gateway.hub, counters, log, allocateId: () => gw!.gateway.registry.allocateId(), tx: { enabled: true, token: "s3cret", txAllow: CidrList.parse([]) } });
  const guesser = bus.newViewer("127.0.0.2:40000");
  const errors = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    const r = bus.send(guesser, "123#01", `guess${i}`);
    expect(r.ok).toBe(false);
    const kind = r.error!.startsWith("too many") ? "locked" : r.error!;
    errors.set(kind, (errors.get(kind) ?? 0) + 1);
  }
  expect(errors.get("wrong token")).toBe(5);
  expect(errors.get("locked")).toBe(1995);
  // Locked out: even the right token is not checked now.
  expect(bus.send(guesser, "123#01", "s3cret").ok).toBe(false);
  // Every refusal counted, one log line for the burst.
  expect(counters.webTokenRefused).toBe(2001);
  expect(lines.filter((l) => l.includes("web_tx_refused")).length).toBe(1);
  // Another host with the right token sends.
  const user = bus.newViewer("127.0.0.1:40001");
  expect(bus.send(user, "124#02", "s3cret")).toEqual({ ok: true });
  expect(onBus.map(formatFrame)).toEqual(["124#02"]);
});

test("a browser that sent and closed gives its TX lane back (closed, its share released from the scheduler)", async () => {
  gw = await startTestGateway();
  // The scheduler's share table is internal to the hub; read here to show the lane left it.
  const scheduler = (gw.gateway.hub as unknown as { tx: { shareCount: number } }).tx;
  const before = scheduler.shareCount;
  const bus = webBus(gw, []);
  const v = bus.newViewer("127.0.0.9:40002");
  expect(bus.send(v, "125#03", "s3cret")).toEqual({ ok: true });
  const lane = v.lane!;
  expect(scheduler.shareCount).toBe(before + 1);
  // The WebSocket closes (the browser tab went away); close() does not use the socket itself.
  v.close(null as never, 1001, "");
  await Bun.sleep(20); // the frame handed over still goes; then the lane settles
  expect(lane.closedWith).not.toBeNull();
  expect(scheduler.shareCount).toBe(before);
});
