/**
 * What the serial backend and serial gateway tests share: a per-file scope that hands out real
 * socat pty pairs and open adapter-end fds and releases them, with anything else a test defers,
 * after each test (last acquired, first released); the backend contract fixture of a backend on a
 * pty (serial and slcan); and a frame-by-frame comparison that names the first differing frame
 * instead of dumping 20,000 of them.
 */
import { expect } from "bun:test";
import fs from "node:fs";
import type { BackoffOptions } from "../../../src/backends/backoff.ts";
import type { SerialBackend } from "../../../src/backends/serial/serial-backend.ts";
import { type CanFrame, dataFrame, formatFrame, framesEqual } from "../../../src/can/frame.ts";
import { type Logger, memoryLogger } from "../../../src/ops/log.ts";
import { Stats } from "../../../src/ops/stats.ts";
import { createPtyPair, openPeer, type PtyPair, waitFor } from "../../helpers/pty.ts";
import { recordingListener, TxLog } from "../../helpers/tx-request.ts";
import { type BackendFixture, FILLER_ID_BASE, isFiller } from "../contract.ts";

export class PtyScope {
  private readonly cleanups: (() => Promise<void> | void)[] = [];

  /** Runs `fn` when the current test is released. */
  readonly defer = (fn: () => Promise<void> | void): void => {
    this.cleanups.push(fn);
  };

  /** A pty pair named `name`, started unless `start` is false, closed on release. */
  readonly pty = async (name: string, start = true): Promise<PtyPair> => {
    const p = await createPtyPair(name, { start });
    this.defer(() => p.close());
    return p;
  };

  /** The adapter end opened for reading and writing, closed on release. */
  readonly peer = (device: string): number => {
    const fd = openPeer(device);
    this.defer(() => {
      try {
        fs.closeSync(fd);
      } catch {
        // The pty pair was already torn down.
      }
    });
    return fd;
  };

  /** Call from afterEach: undoes everything in reverse order. */
  async release(): Promise<void> {
    for (const c of this.cleanups.splice(0).reverse()) await c();
  }
}

/** The adapter end of a pty contract fixture: what the host wrote, parsed by the test's own parser. */
export interface PtyAdapterEnd {
  /** Frames the host transmitted, in order. */
  readonly frames: CanFrame[];
  /** First protocol violation seen ("" if none). */
  readonly error: string;
  /** Stop reading (the host's writes pile up in the pty until it pushes back). */
  paused: boolean;
  /** The device was re-plugged: read the new adapter-end fd. */
  reopen(fd: number): void;
  close(): void;
}

export interface PtyContractOptions<A extends PtyAdapterEnd> {
  /** The pty pair's name. */
  readonly name: string;
  /** The backend under test on the host end `path`. */
  readonly backend: (o: { path: string; stats: Stats; log: Logger; reconnect: BackoffOptions }) => SerialBackend;
  /** The adapter played on the adapter-end fd. */
  readonly adapter: (fd: number) => A;
  /**
   * Whether the adapter end counts the device as open (slcan: the host opened the channel). Given:
   * the fixture waits for it after start, and a replug reopens the adapter end first so it can
   * answer the open sequence. Absent: a replug waits for the backend to be up, then reopens it.
   */
  readonly adapterOpen?: (adapter: A) => boolean;
}

/**
 * The backend contract fixture of a backend on a socat pty pair (test/backends/contract.ts):
 * unplugging kills socat; stalling is real back-pressure: the adapter stops reading and fillers
 * fill the pty and socat buffers until fs.writeSync hits EAGAIN and the backend holds frames it
 * cannot write.
 */
export async function ptyContractFixture<A extends PtyAdapterEnd>(scope: PtyScope, o: PtyContractOptions<A>): Promise<BackendFixture> {
  const pair = await scope.pty(o.name);
  const stats = new Stats();
  const { log } = memoryLogger("debug");
  const backend = o.backend({ path: pair.deviceA, stats, log, reconnect: { initialMs: 10, maxMs: 100, factor: 2 } });
  const adapter = o.adapter(scope.peer(pair.deviceB));
  scope.defer(() => adapter.close());
  const listener = recordingListener();
  await backend.start(listener);
  scope.defer(() => backend.stop());
  const adapterOpen = o.adapterOpen;
  if (adapterOpen !== undefined) await waitFor(() => adapterOpen(adapter), 5000, "the adapter opened by the backend");
  let filler = 0;
  return {
    backend,
    listener,
    busFrames: () => {
      if (adapter.error) throw new Error(adapter.error);
      return adapter.frames.filter((f) => !isFiller(f));
    },
    unplug: async () => {
      await pair.kill();
      await waitFor(() => !backend.up, 5000, "backend down");
    },
    replug: async () => {
      await pair.recreate();
      if (adapterOpen !== undefined) {
        adapter.reopen(scope.peer(pair.deviceB));
        await waitFor(() => backend.up && adapterOpen(adapter), 5000, "backend up and the adapter opened again");
      } else {
        await waitFor(() => backend.up, 5000, "backend up");
        adapter.reopen(scope.peer(pair.deviceB));
      }
    },
    stall: async () => {
      adapter.paused = true;
      // Fill the pty until a write hits EAGAIN; then the batch in flight is stuck and what
      // the test sends next waits in the queue. A few fillers per turn leave the queue room.
      const fills = new TxLog();
      const deadline = Date.now() + 20_000;
      while (backend.txRetries === 0 || fills.with("pending").length === 0) {
        if (Date.now() > deadline) throw new Error("the pty never filled up");
        for (let i = 0; i < 8; i++) {
          if (backend.send(fills.request(dataFrame(FILLER_ID_BASE + (filler++ & 0xffff), [1, 2, 3, 4, 5, 6, 7, 8]))) !== "accepted") break;
        }
        await Bun.sleep(1);
      }
    },
    unstall: async () => {
      adapter.paused = false;
    },
  };
}

export function expectSameFrames(got: CanFrame[], want: CanFrame[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!framesEqual(got[i]!, want[i]!)) throw new Error(`frame ${i}: got ${formatFrame(got[i]!)}, want ${formatFrame(want[i]!)}`);
  }
}
