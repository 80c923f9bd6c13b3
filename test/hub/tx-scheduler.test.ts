/**
 * The hub's transmit side in memory: a scripted backend (it can be made busy, slow or down) stands
 * in for the bus so fairness, rate limits, expiry and the truthful echo can be checked frame by
 * frame. The real backends run the same contract in test/backends/.
 */
import { describe, expect, test } from "bun:test";
import type { SendResult, TxRequest } from "../../src/backends/backend.ts";
import { CAN_ERR_FLAG, dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { Hub, type HubClient } from "../../src/hub/hub.ts";
import type { TxLimits } from "../../src/hub/tx-scheduler.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

/** A bus that holds `capacity` accepted requests until the test writes them out with drain(). */
class ScriptedBus {
  up = true;
  capacity = Infinity;
  readonly held: TxRequest[] = [];
  readonly written: CanFrame[] = [];
  txRefusal(frame: CanFrame): string | null {
    return (frame.canId & CAN_ERR_FLAG) !== 0 ? "error frame" : null;
  }
  send(req: TxRequest): SendResult {
    if (!this.up) return "down";
    if (this.held.length >= this.capacity) return "busy";
    this.held.push(req);
    return "accepted";
  }
  /** Writes up to n held frames (oldest first), as a device draining its queue would. */
  drain(n = Infinity): void {
    while (n-- > 0 && this.held.length > 0) {
      const r = this.held.shift()!;
      this.written.push(r.frame);
      r.sent();
    }
  }
}

class Observer implements HubClient {
  readonly protocol = "test";
  readonly remote = "memory";
  receiving = true;
  dropped = 0;
  readonly got: CanFrame[] = [];
  constructor(readonly id: number) {}
  get queued(): number {
    return 0;
  }
  accepts(): boolean {
    return true;
  }
  enqueue(f: CanFrame): boolean {
    this.got.push(f);
    return true;
  }
  kick(): void {}
}

const UNLIMITED: TxLimits = { rate: 0, burst: 1, maxAgeMs: 2000, queueFrames: 256 };

function setup(limits: Partial<TxLimits> = {}, echoClients = true) {
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const hub = new Hub({ policy: "drop", echoClients, tx: { ...UNLIMITED, ...limits }, stats, log });
  const bus = new ScriptedBus();
  hub.connectBus(bus);
  const a = new Observer(1);
  const b = new Observer(2);
  const watcher = new Observer(3);
  for (const c of [a, b, watcher]) hub.attach(c);
  return { stats, hub, bus, a, b, watcher, lines };
}

const f = (id: number): CanFrame => dataFrame(id, [id & 0xff]);

describe("hub TX scheduler", () => {
  test("echo happens only once the backend reports the frame written", () => {
    const { hub, bus, a, watcher, stats } = setup();
    const lane = hub.openTx(a, false);
    lane.send(f(0x10));
    expect(bus.held).toHaveLength(1);
    expect(watcher.got).toHaveLength(0); // accepted, not yet on the bus
    bus.drain();
    expect(watcher.got.map((x) => x.canId)).toEqual([0x10]);
    expect(a.got).toHaveLength(0); // never echoed to its origin
    expect(stats.clientTxSent).toBe(1);
  });

  test("a request the backend loses is never echoed and is counted by reason", () => {
    const { hub, bus, a, watcher, stats } = setup();
    hub.openTx(a, false).send(f(0x11));
    bus.held.shift()!.lost("write_failed");
    expect(watcher.got).toHaveLength(0);
    expect(stats.txDropped.get("write_failed")).toBe(1);
    expect(stats.backendTxDropped).toBe(1);
  });

  test("-echo-clients false: written frames are not delivered to other clients", () => {
    const { hub, bus, a, watcher } = setup({}, false);
    hub.openTx(a, false).send(f(0x12));
    bus.drain();
    expect(bus.written).toHaveLength(1);
    expect(watcher.got).toHaveLength(0);
  });

  test("two flooding clients and one honest client share a slow bus round-robin", () => {
    const { hub, bus, a, b, watcher } = setup({ queueFrames: 1000 });
    bus.capacity = 1;
    const flood1 = hub.openTx(a, false);
    const flood2 = hub.openTx(b, false);
    const honest = hub.openTx(watcher, false);
    for (let i = 0; i < 500; i++) {
      flood1.send(f(0x100));
      flood2.send(f(0x200));
    }
    for (let i = 0; i < 5; i++) honest.send(f(0x300 + i));
    // The device takes one frame at a time; every lane gets its turn.
    for (let i = 0; i < 30; i++) {
      bus.drain(1);
      hub.busReady();
    }
    const honestWritten = bus.written.filter((x) => x.canId >= 0x300).map((x) => x.canId);
    expect(honestWritten).toEqual([0x300, 0x301, 0x302, 0x303, 0x304]);
    // 30 frames written: the honest client's 5 are in the first 3 rounds of 3.
    const lastHonest = bus.written.findIndex((x) => x.canId === 0x304);
    expect(lastHonest).toBeLessThan(16);
  });

  test("rate limit: a burst passes, the rest is dropped as rate_limited and never echoed", () => {
    const { hub, bus, a, watcher, stats } = setup({ rate: 10, burst: 5 });
    const lane = hub.openTx(a, false);
    let accepted = 0;
    for (let i = 0; i < 50; i++) if (lane.send(f(0x20))) accepted++;
    expect(accepted).toBe(5);
    expect(stats.txDropped.get("rate_limited")).toBe(45);
    expect(lane.dropped.get("rate_limited")).toBe(45);
    bus.drain();
    expect(watcher.got).toHaveLength(5);
  });

  test("rate limit refills with time", async () => {
    const { hub, a, stats } = setup({ rate: 200, burst: 1 });
    const lane = hub.openTx(a, false);
    expect(lane.send(f(1))).toBe(true);
    expect(lane.send(f(2))).toBe(false);
    await Bun.sleep(20); // 200/s: 4 tokens accrue, capped at the burst of 1
    expect(lane.send(f(3))).toBe(true);
    expect(lane.send(f(4))).toBe(false);
    expect(stats.txDropped.get("rate_limited")).toBe(2);
  });

  test("frames that wait past tx-max-age are dropped as expired, never sent late", async () => {
    const { hub, bus, a, watcher, stats } = setup({ maxAgeMs: 30 });
    bus.capacity = 0; // the device takes nothing (stuck bus)
    const lane = hub.openTx(a, false);
    for (let i = 0; i < 10; i++) lane.send(f(0x30 + i));
    expect(hub.txQueued).toBe(10);
    await Bun.sleep(80); // the sweep drops them on time even without a txReady
    expect(stats.txDropped.get("expired")).toBe(10);
    bus.capacity = Infinity;
    hub.busReady();
    bus.drain();
    expect(bus.written).toHaveLength(0);
    expect(watcher.got).toHaveLength(0);
  });

  test("frames a client left queued when it closed still go, and their fate is logged as client_tx_settled", () => {
    const { hub, bus, a, watcher, lines } = setup();
    bus.capacity = 1;
    const lane = hub.openTx(a, false);
    for (let i = 0; i < 4; i++) lane.send(f(0x40 + i));
    lane.close(); // the client's final log line would be written now: 0 sent so far
    expect(lines.some((l) => l.includes("client_tx_settled"))).toBe(false);
    bus.drain(1);
    hub.busReady(); // one more accepted
    bus.drain(1);
    bus.up = false;
    hub.busState(false); // the last two are lost with the bus
    const settled = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === "client_tx_settled");
    expect(settled).toHaveLength(1);
    expect(settled[0]).toMatchObject({ conn_id: 1, bus_tx_frames: 2, bus_tx_dropped_backend_down: 2 });
    expect(watcher.got).toHaveLength(2);
  });

  test("read-only lanes, refused frames, a down bus and a full lane are each counted", () => {
    const { hub, bus, a, b, stats } = setup({ queueFrames: 2 });
    expect(hub.openTx(a, true).send(f(1))).toBe(false);
    expect(stats.txDropped.get("read_only")).toBe(1);
    const lane = hub.openTx(b, false);
    expect(lane.send({ ...f(2), canId: (2 | CAN_ERR_FLAG) >>> 0 })).toBe(false);
    expect(stats.txDropped.get("unsupported")).toBe(1);
    expect(stats.errors.get("backend_unsupported_frame")).toBe(1);
    bus.capacity = 0;
    lane.send(f(3));
    lane.send(f(4));
    expect(lane.send(f(5))).toBe(false);
    expect(stats.txDropped.get("tx_queue_full")).toBe(1);
    bus.up = false;
    hub.busState(false);
    expect(stats.txDropped.get("backend_down")).toBe(2); // the two queued ones
    expect(lane.send(f(6))).toBe(false);
    expect(stats.txDropped.get("backend_down")).toBe(3);
    expect(stats.errors.get("backend_down_tx")).toBe(3);
  });
});

describe("hub TX scheduler and a backend that fails inside send()", () => {
  test("the bus going down during send() counts the frame once (found in review)", () => {
    const stats = new Stats();
    const { log } = memoryLogger("debug");
    const hub = new Hub({ policy: "drop", echoClients: true, tx: { ...UNLIMITED }, stats, log });
    let up = true;
    // Like SocketCAN on ENETDOWN: the request is lost, the backend reports itself down (which
    // clears the hub's lanes) — all before send() returns.
    hub.connectBus({
      get up() {
        return up;
      },
      txRefusal: () => null,
      send(req: TxRequest): SendResult {
        req.lost("write_failed");
        up = false;
        hub.busState(false);
        return "accepted";
      },
    });
    const a = new Observer(1);
    hub.openTx(a, false).send(f(0x50));
    const total = [...stats.txDropped.values()].reduce((x, y) => x + y, 0);
    expect(total).toBe(1);
    expect(stats.txDropped.get("write_failed")).toBe(1);
    expect(stats.txDropped.get("backend_down")).toBe(0);
  });
});
