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
