/**
 * What the serial backend and serial gateway tests share: a per-file scope that hands out real
 * socat pty pairs and open adapter-end fds and releases them, with anything else a test defers,
 * after each test (last acquired, first released); and a frame-by-frame comparison that names the
 * first differing frame instead of dumping 20,000 of them.
 */
import { expect } from "bun:test";
import fs from "node:fs";
import { type CanFrame, formatFrame, framesEqual } from "../../../src/can/frame.ts";
import { createPtyPair, openPeer, type PtyPair } from "../../helpers/pty.ts";

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

export function expectSameFrames(got: CanFrame[], want: CanFrame[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!framesEqual(got[i]!, want[i]!)) throw new Error(`frame ${i}: got ${formatFrame(got[i]!)}, want ${formatFrame(want[i]!)}`);
  }
}
