/**
 * hub_broadcast_fanout says how many clients the most recent bus frame was delivered to. An echo
 * of a client's frame (delivered to every client but its sender) must not overwrite it (issue 18:
 * it did, so the gauge showed one client less on any gateway whose clients transmit). In memory:
 * a bus that writes every frame at once stands in for the backend.
 */
import { expect, test } from "bun:test";
import type { SendResult, TxRequest } from "../../src/backends/backend.ts";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { Hub, type HubClient } from "../../src/hub/hub.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";

class Client implements HubClient {
  readonly protocol = "test";
  readonly receiving = true;
  dropped = 0;
  readonly got: CanFrame[] = [];
  constructor(
    readonly id: number,
    readonly remote = `10.0.0.${id}:1`,
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

test("an echo does not overwrite hub_broadcast_fanout", () => {
  const stats = new Stats();
  const hub = new Hub({ policy: "drop", echoClients: true, tx: { rate: 0, burst: 1, maxAgeMs: 2000, queueFrames: 16 }, stats, log: memoryLogger("info").log });
  hub.connectBus({ up: true, txRefusal: () => null, send: (req: TxRequest): SendResult => (req.sent(), "accepted") });
  const clients = [1, 2, 3].map((i) => new Client(i));
  for (const c of clients) hub.attach(c);
  hub.fromBus(dataFrame(0x100, [1]));
  expect(stats.hubBroadcastFanout).toBe(3);
  hub.openTx(clients[0]!, false).send(dataFrame(0x200, [2]));
  expect(clients[1]!.got).toHaveLength(2); // the echo was delivered…
  expect(stats.hubBroadcastFanout).toBe(3); // …and the gauge still describes the bus frame
});
