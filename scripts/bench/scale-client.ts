/**
 * One client process of the scale benchmark (scripts/bench/scale.ts): holds N cannelloni and M
 * Waveshare connections to a gateway on loopback, made with the test clients of test/helpers/
 * (CannelloniTestClient, WaveshareTestClient) at most CONCURRENCY handshakes at a time (the
 * gateway's -max-handshakes admission limit). Every received frame carries its injection time;
 * latencies go into a log-scale histogram and the frames are discarded at once, so the process
 * keeps no history. Line commands on stdin:
 *   mark    zero the counters and the histogram → "ok"
 *   stats   → one JSON line: frames received since mark (total, per-client min/max), histogram,
 *           protocol problems seen, closed connections
 * Prints "connected N" once every connection is up. Exits when stdin closes.
 *
 *   bun scripts/bench/scale-client.ts CANNELLONI_PORT WAVESHARE_PORT N_CANNELLONI N_WAVESHARE [CONCURRENCY]
 */
import type { CanFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../../test/helpers/cannelloni-client.ts";
import type { TcpTestClient } from "../../test/helpers/tcp-test-client.ts";
import { WaveshareTestClient } from "../../test/helpers/waveshare-client.ts";
import { Histogram } from "./histogram.ts";
import { LineReader } from "./line-reader.ts";
import { nowMs, sentAt } from "./measure.ts";

const [canPort, wsPort, nCan, nWs, conc] = process.argv.slice(2).map(Number);
const concurrency = conc || 16;

interface Counted {
  client: TcpTestClient;
  received: number;
  problems: () => number;
}

const hist = new Histogram();
const counted: Counted[] = [];

function watch(client: TcpTestClient, problems: () => number, clearRaw: () => void): Counted {
  const entry: Counted = { client, received: 0, problems };
  client.onReceive = (frames: CanFrame[]) => {
    if (frames.length === 0) return;
    const t = nowMs();
    for (const f of frames) hist.add(t - sentAt(f.data));
    entry.received += frames.length;
    frames.length = 0;
    clearRaw();
  };
  return entry;
}

/** A connection refused by the admission limits is closed at once: back off and reconnect (≤ 10 tries). */
async function connectOne(i: number): Promise<Counted> {
  if (i < nCan!) {
    for (let attempt = 1; ; attempt++) {
      let c: CannelloniTestClient | null = null;
      try {
        c = await CannelloniTestClient.connect(canPort!, { helloFirst: true });
        const client = c;
        const refused = client.closedPromise.then(() => {
          throw new Error("refused");
        });
        refused.catch(() => {});
        await Promise.race([client.handshake({ helloFirst: true }, 10_000), refused]);
        return watch(client, () => (client.protocolError ? 1 : 0), () => {});
      } catch (e) {
        c?.close();
        if (attempt >= 10) throw e;
        await Bun.sleep(20 * attempt);
      }
    }
  }
  const w = await WaveshareTestClient.connect(wsPort!);
  return watch(w, () => w.problems.length, () => (w.raw.length = 0));
}

const total = nCan! + nWs!;
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total) counted.push(await connectOne(next++));
  }),
);
process.stdout.write(`connected ${counted.length}\n`);

const lines = new LineReader(Bun.stdin.stream().getReader());
for (;;) {
  let cmd: string;
  try {
    cmd = (await lines.next(3_600_000)).trim();
  } catch {
    break; // stdin closed
  }
  if (cmd === "mark") {
    hist.clear();
    for (const c of counted) c.received = 0;
    process.stdout.write("ok\n");
  } else if (cmd === "stats") {
    let min = Infinity;
    let max = 0;
    let sum = 0;
    let problems = 0;
    let closed = 0;
    for (const c of counted) {
      sum += c.received;
      min = Math.min(min, c.received);
      max = Math.max(max, c.received);
      problems += c.problems();
      if (c.client.closed) closed++;
    }
    process.stdout.write(JSON.stringify({ received: sum, min, max, problems, closed, hist: hist.counts() }) + "\n");
  }
}
for (const c of counted) c.client.close();
process.exit(0);
