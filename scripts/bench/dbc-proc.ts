/**
 * Benchmark harness for DBC decoding, gateway side: a gateway on the virtual bus whose frames are
 * the messages of a DBC (ids cycling through its messages, the injection time in the first 8 data
 * bytes), driven by stdin lines like gateway-proc.ts (gateway-harness.ts). Modes:
 *   --mode none     no DBC consumer (the baseline)
 *   --mode store    the -dbc signal store (src/consumers/signals.ts) and a reader that decodes
 *                   every stored signal 4 times a second, as a dashboard or /api/signals poller would
 *   --mode eager    the store plus a hub client that decodes every frame completely (codec.decode):
 *                   the per-frame decoding cost the store's design avoids
 * Prints "port N"; its `stats` line adds stored/decoded/dropped counters.
 *   bun scripts/bench/dbc-proc.ts --dbc FILE --mode none|store|eager
 */
import { readFileSync } from "node:fs";
import { type CanFrame, type StampedFrame } from "../../src/can/frame.ts";
import { SignalStore } from "../../src/consumers/signals.ts";
import { SignalModel } from "../../src/consumers/signal-model.ts";
import { DbcCodec, dbcText, parseDbc } from "../../src/dbc/index.ts";
import { startGateway } from "../../src/gateway.ts";
import { BoundedQueue } from "../../src/hub/bounded-queue.ts";
import type { HubClient } from "../../src/hub/hub.ts";
import { benchConfig, benchRig, driveFromStdin } from "./gateway-harness.ts";
import { stampSendTime } from "./measure.ts";

const arg = (name: string): string => process.argv[process.argv.indexOf(name) + 1] ?? "";
const file = arg("--dbc");
const mode = arg("--mode");
const codec = new DbcCodec(parseDbc(dbcText(readFileSync(file)), file));
const ids = codec.messages.filter((m) => m.message.length === 8).map((m) => m.message);

const { stats, log, backend } = benchRig();
// Ten bench clients connect at once from one host: no per-host handshake limit here.
const config = benchConfig({ hubBuffer: 100_000 });
const gateway = await startGateway(config, { stats, log, backend });

let store: SignalStore | null = null;
let reads = 0;
if (mode === "store" || mode === "eager") {
  store = new SignalStore(codec, { bus: "can0", file, log });
  store.setId(gateway.registry.allocateId());
  store.attach(gateway.hub);
  const model = new SignalModel("can0", [store]);
  setInterval(() => {
    reads += model.readAll().length;
  }, 250);
}

/** Decodes every frame it is given, in batches off the hub's path (as a naive decoder would). */
class EagerDecoder implements HubClient {
  readonly protocol = "dbc-eager";
  readonly remote = "in-process";
  readonly receiving = true;
  dropped = 0;
  decoded = 0;
  signals = 0;
  private readonly q = new BoundedQueue<StampedFrame>(100_000);
  private scheduled = false;
  constructor(readonly id: number) {}
  get queued(): number {
    return this.q.length;
  }
  accepts(): boolean {
    return true;
  }
  enqueue(f: StampedFrame): boolean {
    if (!this.q.offer(f)) return false;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const batch: StampedFrame[] = [];
        this.q.drainInto(batch, 100_000);
        for (const fr of batch) {
          const d = codec.decode(fr);
          if (d !== null) {
            this.decoded++;
            this.signals += d.signals.length;
          }
        }
      });
    }
    return true;
  }
  kick(): void {}
}
const eager = mode === "eager" ? new EagerDecoder(gateway.registry.allocateId()) : null;
if (eager !== null) gateway.hub.attach(eager);

process.stdout.write(`port ${gateway.port("cannelloni")}\n`);
const frame = (seq: number): CanFrame => {
  const m = ids[seq % ids.length]!;
  const data = new Uint8Array(8);
  stampSendTime(data);
  return codec.message(m.name)!.frame(data);
};
await driveFromStdin(backend, () => ({ dropped: stats.hubDroppedFrames, stored: store?.counters().stored ?? 0, storeDropped: store?.counters().dropped ?? 0, reads, decoded: eager?.decoded ?? 0, decodedSignals: eager?.signals ?? 0 }), { frame });
store?.detach();
await gateway.shutdown(200);
process.exit(0);
