/**
 * The hub's transmit side in memory: a scripted backend (it can be made busy, slow or down) stands
 * in for the bus so fairness, rate limits, expiry and the truthful echo can be checked frame by
 * frame. The real backends run the same contract in test/backends/.
 */
import { describe, expect, test } from "bun:test";
import type { SendResult, TxRequest } from "../../src/backends/backend.ts";
import { CAN_ERR_FLAG, dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { Hub, type HubClient } from "../../src/hub/hub.ts";
import { TxScheduler, type TxLimits } from "../../src/hub/tx-scheduler.ts";
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
  receiving = true;
  dropped = 0;
  readonly got: CanFrame[] = [];
  constructor(
    readonly id: number,
    readonly remote = `10.0.0.${id}:5000`,
  ) {}
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

  test("rate limit (policed: UDP): a burst passes, the rest is dropped as rate_limited and never echoed", () => {
    const { hub, bus, a, watcher, stats } = setup({ rate: 10, burst: 5 });
    const lane = hub.openTx(a, false, "policed");
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
    const lane = hub.openTx(a, false, "policed");
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

describe("hub TX scheduler: paced producers (TCP) are shaped, never dropped for rate or queue (issue 18)", () => {
  test("over the rate a paced lane keeps its frames, reports no room at its mark, and says when it has room", async () => {
    const { hub, bus, a, watcher, stats } = setup({ rate: 400, burst: 5 });
    const lane = hub.openTx(a, false, "paced");
    let rooms = 0;
    lane.onRoom = () => rooms++;
    let n = 0;
    while (lane.hasRoom) lane.send(f(n++ & 0x7ff));
    // 5 went at once (the burst), the lane holds its mark (32 frames) and now asks to wait.
    expect(bus.held).toHaveLength(5);
    expect(lane.queue.length).toBe(lane.pauseAt);
    expect(n).toBe(5 + lane.pauseAt);
    expect([...stats.txDropped.values()].reduce((x, y) => x + y, 0)).toBe(0);
    // A producer that decoded a little more before it stopped: still queued, not dropped.
    for (let i = 0; i < 10; i++) expect(lane.send(f(n++ & 0x7ff))).toBe(true);
    // 400/s: the rest goes out paced by the bucket; room is reported once it is down to half.
    const deadline = Date.now() + 2000;
    while (bus.held.length + bus.written.length < n && Date.now() < deadline) {
      bus.drain();
      await Bun.sleep(10);
    }
    bus.drain();
    expect(bus.written.map((x) => x.canId)).toEqual(Array.from({ length: n }, (_, i) => i & 0x7ff));
    expect(rooms).toBe(1);
    expect(lane.hasRoom as boolean).toBe(true); // (narrowed to false by the loop above)
    expect(watcher.got).toHaveLength(n);
    expect([...stats.txDropped.values()].reduce((x, y) => x + y, 0)).toBe(0);
  });

  test("16 paced connections of one host flooding at once: their frames wait their turn, none expires", async () => {
    // Each lane held about a burst whatever the host's other lanes held: on Ampio serial's auto
    // limits (190 frames/s, lanes of 47) 16 connections of one host held 16 × 47 / 190 = 4 s of its
    // rate, past -tx-max-age (2 s), so the last frames expired — paced clients dropped for rate.
    // The same here at 2,000/s with 256-frame lanes and -tx-max-age 1 s (16 × 256 / 2,000 = 2 s).
    const stats = new Stats();
    const { log } = memoryLogger("error");
    let sent = 0;
    const tx = new TxScheduler({ rate: 2000, burst: 500, maxAgeMs: 1000, queueFrames: 256 }, stats, log, () => sent++);
    tx.connect({ up: true, txRefusal: () => null, send: (r) => (r.sent(), "accepted") });
    let producing = true;
    const lanes = Array.from({ length: 16 }, (_, i) => tx.openLane({ id: i, protocol: "test", remote: `127.0.0.1:${40000 + i}` }, { readOnly: false, flow: "paced" }));
    for (const lane of lanes) {
      // An honest paced producer (a TCP session): sends while there is room, goes on at onRoom.
      const fill = (): void => {
        while (producing && lane.hasRoom) lane.send(f(lane.origin.id));
      };
      lane.onRoom = fill;
      fill();
    }
    await Bun.sleep(2500);
    producing = false;
    expect(sent).toBeGreaterThan(2000);
    expect(stats.txDropped.get("expired") ?? 0).toBe(0);
    expect([...stats.txDropped.values()].reduce((x, y) => x + y, 0)).toBe(0);
    // The host's lanes hold together about a quarter of -tx-max-age of its rate, each its part.
    expect(lanes[0]!.pauseAt).toBe(Math.floor(500 / 16));
    for (const lane of lanes) lane.close();
  });

  test("a paced frame that waits past tx-max-age in the gateway still expires (counted)", async () => {
    const { hub, bus, a, stats } = setup({ maxAgeMs: 30 });
    bus.capacity = 0;
    const lane = hub.openTx(a, false, "paced");
    for (let i = 0; i < 3; i++) lane.send(f(i));
    await Bun.sleep(80);
    expect(stats.txDropped.get("expired")).toBe(3);
    expect(lane.hasRoom).toBe(true);
  });

  /** Three paced lanes, two from one host, flood a bus that takes one frame at a time. */
  function shares(fairness: "host" | "connection"): Map<string, number> {
    const { hub, bus } = setup({ queueFrames: 1000, fairness });
    bus.capacity = 1;
    const lanes = [new Observer(1, "127.0.0.1:4001"), new Observer(2, "127.0.0.1:4002"), new Observer(3, "127.0.0.2:4001")].map((o) => hub.openTx(o, false, "paced"));
    lanes.forEach((l, k) => {
      for (let i = 0; i < 30; i++) l.send(f(0x100 * (k + 1)));
    });
    for (let i = 0; i < 30; i++) {
      bus.drain(1);
      hub.busReady();
    }
    const by = new Map<string, number>();
    // The first frame went at once, when it arrived; the 29 after it show the turns.
    for (const x of bus.written.slice(1)) by.set(x.canId.toString(16), (by.get(x.canId.toString(16)) ?? 0) + 1);
    return by;
  }

  test("round-robin across hosts, then across a host's connections: two connections of one host share one turn", () => {
    const by = shares("host");
    const hostA = (by.get("100") ?? 0) + (by.get("200") ?? 0);
    expect(hostA + (by.get("300") ?? 0)).toBe(29);
    expect(Math.abs(hostA - (by.get("300") ?? 0))).toBeLessThanOrEqual(1);
    expect(Math.abs((by.get("100") ?? 0) - (by.get("200") ?? 0))).toBeLessThanOrEqual(1);
  });

  test("-tx-fairness connection: each connection has its own turn", () => {
    const by = shares("connection");
    for (const id of ["100", "200", "300"]) expect(Math.abs((by.get(id) ?? 0) - 10)).toBeLessThanOrEqual(1);
  });

  test("policed lanes (UDP) of one host share one bucket and still drop over the rate", () => {
    const { hub, stats } = setup({ rate: 10, burst: 5 });
    const p1 = hub.openTx(new Observer(1, "127.0.0.1:20000"), false, "policed");
    const p2 = hub.openTx(new Observer(2, "127.0.0.1:20001"), false, "policed");
    let accepted = 0;
    for (let i = 0; i < 10; i++) {
      if (p1.send(f(1))) accepted++;
      if (p2.send(f(2))) accepted++;
    }
    expect(accepted).toBe(5);
    expect(stats.txDropped.get("rate_limited")).toBe(15);
  });
});

describe("hub TX scheduler: buffered producers (MQTT, the dashboard: no flow control, bursts)", () => {
  test("a burst over the rate is shaped within the lane's queue, not dropped; only what overflows the queue is (tx_queue_full)", async () => {
    const { hub, bus, a, stats } = setup({ rate: 500, burst: 5, queueFrames: 40 });
    const lane = hub.openTx(a, false);
    let accepted = 0;
    for (let i = 0; i < 50; i++) if (lane.send(f(i))) accepted++;
    // 5 go at once (the burst), 40 wait for tokens, 5 find the queue full.
    expect(accepted).toBe(45);
    expect(stats.txDropped.get("tx_queue_full")).toBe(5);
    expect(stats.txDropped.get("rate_limited")).toBe(0);
    expect(lane.hasRoom).toBe(true); // a buffered producer is never asked to wait
    const deadline = Date.now() + 2000;
    while (bus.held.length + bus.written.length < 45 && Date.now() < deadline) {
      bus.drain();
      await Bun.sleep(10);
    }
    bus.drain();
    expect(bus.written.map((x) => x.canId)).toEqual(Array.from({ length: 45 }, (_, i) => i));
  });
});

describe("hub TX scheduler: per-host bookkeeping is forgotten with the host", () => {
  test("a host whose connection closed with frames waiting, then the bus went down, leaves no share behind", () => {
    // The scheduler alone (the Hub keeps it private), with the same scripted bus.
    const stats = new Stats();
    const { log } = memoryLogger("error");
    const tx = new TxScheduler({ ...UNLIMITED }, stats, log, () => {});
    const bus = new ScriptedBus();
    bus.capacity = 0; // busy: every frame waits in its lane
    tx.connect(bus);
    for (let host = 1; host <= 50; host++) {
      const lane = tx.openLane({ id: host, protocol: "test", remote: `10.0.1.${host}:5000` }, { readOnly: false, flow: "paced" });
      lane.send(f(host));
      lane.send(f(host));
      lane.close(); // the client left; its two frames still wait for the bus
      expect(tx.shareCount).toBe(1);
      bus.up = false;
      tx.busDown(); // ... and are dropped as backend_down: the lane is settled
      bus.up = true;
      expect(tx.shareCount).toBe(0);
    }
    expect(stats.txDropped.get("backend_down")).toBe(100);
  });
});
