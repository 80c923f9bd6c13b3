/**
 * The transmit contract every backend runs (hono style: one suite, many implementations; the
 * codecs have test/protocols/conformance.ts). An implementation hands in a fixture: a started
 * backend, what the other end of its bus really received (read independently: the adapter end of
 * a pty, candump, the virtual bus's observer), and the means to unplug and replug its device and,
 * where the device can push back, to stall and unstall it. The suite checks what the hub relies
 * on (src/backends/backend.ts): each accepted frame is reported exactly once, sent() only once
 * it was written (never while it waits), refused frames are "unsupported" and never written, a
 * down bus answers "down", "busy" is followed by txReady(), a frame that waited past expiresAt is
 * lost("expired") and never written late, and stop() loses what still waits ("backend_down").
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Backend } from "../../src/backends/backend.ts";
import { type CanFrame, dataFrame, fdFrame, formatFrame, remoteFrame } from "../../src/can/frame.ts";
import { type RecordingListener, TxLog } from "../helpers/tx-request.ts";

/** Frames the fixture itself sends (to fill a device while stalling it) use ids from here up. */
export const FILLER_ID_BASE = 0x1fff0000;
export const isFiller = (f: CanFrame): boolean => (f.canId & 0x1fffffff) >= FILLER_ID_BASE;

export interface BackendFixture {
  readonly backend: Backend;
  readonly listener: RecordingListener;
  /** What the other end of the bus received from the backend so far, fillers left out. */
  busFrames(): CanFrame[];
  /** Takes the device away; resolves once the backend reports down. */
  unplug(): Promise<void>;
  /** Brings the device back; resolves once the backend is up again. */
  replug(): Promise<void>;
  /**
   * Makes the device stop taking frames and resolves once the backend holds an accepted frame it
   * could not write (fillers may be used to get there). Absent where the device never pushes back.
   */
  stall?(): Promise<void>;
  /** Lets the device take frames again. */
  unstall?(): Promise<void>;
}

export interface BackendUnderTest {
  readonly name: string;
  /** Which frames the hardware can carry besides classic data frames. */
  readonly carries: { readonly rtr: boolean; readonly fd: boolean };
  /** Starts a fresh backend on a fresh bus (FD enabled if asked and possible). */
  open(options: { fd: boolean }): Promise<BackendFixture>;
  /** Releases what open() made (called after each test). */
  release(): Promise<void>;
  /** How long a written frame may take to show up at the other end (ms). */
  readonly settleMs: number;
  /** Whether stall()/unstall() work here (e.g. not without root in the VM). */
  readonly canStall: boolean;
}

async function until(cond: () => boolean, what: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await Bun.sleep(2);
  }
}

const names = (frames: readonly CanFrame[]): string[] => frames.map(formatFrame);

/** Classic data frames of every length, standard and extended ids. */
function dataFrames(n: number, base = 0x100): CanFrame[] {
  return Array.from({ length: n }, (_, i) =>
    dataFrame(i % 2 === 0 ? base + i : 0x10000 + base + i, Array.from({ length: i % 9 }, (_, k) => (i * 7 + k) & 0xff), i % 2 === 1),
  );
}

export function runBackendContract(c: BackendUnderTest): void {
  describe(`${c.name} backend transmit contract`, () => {
    afterEach(() => c.release());

    test("every accepted frame is reported sent exactly once, and is on the bus exactly, in order", async () => {
      const fx = await c.open({ fd: false });
      const log = new TxLog();
      const frames = dataFrames(40);
      for (const f of frames) expect(fx.backend.send(log.request(f))).toBe("accepted");
      await until(() => log.with("sent").length === frames.length, () => `${frames.length} sent (have ${log.with("sent").length})`, 10_000);
      await until(() => fx.busFrames().length >= frames.length, () => `${frames.length} frames on the bus (have ${fx.busFrames().length})`, 10_000);
      await Bun.sleep(c.settleMs);
      expect(names(fx.busFrames())).toEqual(names(frames));
      expect(log.overReported()).toEqual([]);
      // Reported in the order they were written.
      expect(names(log.reported.map((r) => r.frame))).toEqual(names(frames));
    });

    test("error frames are refused everywhere, RTR and CAN FD where the hardware cannot carry them, malformed frames always", async () => {
      const fx = await c.open({ fd: false });
      const log = new TxLog();
      const refused: CanFrame[] = [
        { canId: 0x20000004, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 }, // CAN_ERR_FLAG
        { canId: 0xa0000080, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 }, // EFF | ERR
        fdFrame(0x123, new Uint8Array(16)), // FD on a backend opened without FD
        { canId: 0x123, len: 9, data: new Uint8Array(9), fd: false, fdFlags: 0 }, // DLC 9 on classic CAN
      ];
      if (!c.carries.rtr) refused.push(remoteFrame(0x123, 2));
      for (const f of refused) {
        expect(fx.backend.txRefusal(f)).not.toBeNull();
        expect(fx.backend.send(log.request(f))).toBe("unsupported");
      }
      const marker = dataFrame(0x7e5, [0x5e]);
      expect(fx.backend.txRefusal(marker)).toBeNull();
      expect(fx.backend.send(log.request(marker))).toBe("accepted");
      await until(() => fx.busFrames().length >= 1, () => "the marker on the bus", 10_000);
      await Bun.sleep(c.settleMs);
      expect(names(fx.busFrames())).toEqual([formatFrame(marker)]);
      // An "unsupported" answer is final: the backend never reports on those requests.
      expect(log.requests.filter((r) => r.calls > 0).map((r) => formatFrame(r.frame))).toEqual([formatFrame(marker)]);
    });

    test.if(c.carries.rtr || c.carries.fd)("RTR and CAN FD frames go out where the hardware carries them", async () => {
      const fx = await c.open({ fd: c.carries.fd });
      const log = new TxLog();
      const frames: CanFrame[] = [];
      if (c.carries.rtr) frames.push(remoteFrame(0x321, 0), remoteFrame(0x12345, 4, true));
      if (c.carries.fd) frames.push(fdFrame(0x456, [0xaa, 0xbb], 1), fdFrame(0x7ab, new Uint8Array(64).fill(0xc3), 2));
      for (const f of frames) {
        expect(fx.backend.txRefusal(f)).toBeNull();
        expect(fx.backend.send(log.request(f))).toBe("accepted");
      }
      await until(() => fx.busFrames().length >= frames.length, () => `${frames.length} frames on the bus`, 10_000);
      expect(names(fx.busFrames())).toEqual(names(frames));
      await until(() => log.with("sent").length === frames.length, () => "all sent", 5000);
    });

    test("a bus that is down answers \"down\" and reports nothing; after recovery frames flow again", async () => {
      const fx = await c.open({ fd: false });
      const log = new TxLog();
      await fx.unplug();
      expect(fx.backend.up).toBe(false);
      const during = log.request(dataFrame(0x111, [1]));
      expect(fx.backend.send(during)).toBe("down");
      await Bun.sleep(20);
      expect(during.calls).toBe(0);
      await fx.replug();
      expect(fx.backend.up).toBe(true);
      const after = log.request(dataFrame(0x222, [2]));
      expect(fx.backend.send(after)).toBe("accepted");
      await until(() => after.outcome === "sent", () => `the frame after recovery sent (outcome ${after.outcome})`, 10_000);
      await until(() => fx.busFrames().length >= 1, () => "the frame after recovery on the bus", 10_000);
      await Bun.sleep(c.settleMs);
      expect(names(fx.busFrames())).toEqual(["222#02"]);
    });

    test("stop(): frames still waiting are lost(\"backend_down\"), nothing is reported after, send answers \"down\"", async () => {
      const fx = await c.open({ fd: false });
      const log = new TxLog();
      const waiting: ReturnType<TxLog["request"]>[] = [];
      if (c.canStall) {
        await fx.stall!();
        for (let i = 0; i < 3; i++) {
          const r = log.request(dataFrame(0x333 + i, [i]));
          expect(fx.backend.send(r)).toBe("accepted");
          waiting.push(r);
        }
        await Bun.sleep(20);
        expect(waiting.map((r) => r.outcome)).toEqual(["pending", "pending", "pending"]);
      }
      await fx.backend.stop();
      expect(waiting.map((r) => r.outcome)).toEqual(waiting.map(() => "backend_down"));
      expect(fx.backend.up).toBe(false);
      const late = log.request(dataFrame(0x444, [4]));
      expect(fx.backend.send(late)).toBe("down");
      if (c.canStall) await fx.unstall!();
      await Bun.sleep(c.settleMs);
      expect(late.calls).toBe(0);
      expect(log.overReported()).toEqual([]);
      expect(names(fx.busFrames())).toEqual([]);
    });

    describe.if(c.canStall)("on a device that pushes back", () => {
      test("a frame that waits is not reported sent until it was written", async () => {
        const fx = await c.open({ fd: false });
        const log = new TxLog();
        await fx.stall!();
        const frames = dataFrames(5, 0x500);
        for (const f of frames) expect(fx.backend.send(log.request(f))).toBe("accepted");
        await Bun.sleep(100);
        expect(log.with("sent")).toEqual([]);
        expect(names(fx.busFrames())).toEqual([]);
        await fx.unstall!();
        await until(() => log.with("sent").length === frames.length, () => `all sent (have ${log.with("sent").length})`, 10_000);
        await until(() => fx.busFrames().length >= frames.length, () => "the frames on the bus", 10_000);
        await Bun.sleep(c.settleMs);
        expect(names(fx.busFrames())).toEqual(names(frames));
        expect(log.overReported()).toEqual([]);
      });

      test("a full backend answers \"busy\", calls txReady() once there is room, and loses nothing it accepted", async () => {
        const fx = await c.open({ fd: false });
        const log = new TxLog();
        await fx.stall!();
        const accepted: CanFrame[] = [];
        let result = "accepted";
        for (let i = 0; i < 10_000 && result === "accepted"; i++) {
          const f = dataFrame(0x600 + (i % 0x100), [i & 0xff, i >> 8]);
          result = fx.backend.send(log.request(f));
          if (result === "accepted") accepted.push(f);
        }
        expect(result).toBe("busy");
        expect(accepted.length).toBeGreaterThan(0);
        // Another offer while full is busy too; txReady is not called while there is no room.
        expect(fx.backend.send(log.request(dataFrame(0x6ff, [])))).toBe("busy");
        await Bun.sleep(50);
        expect(fx.listener.txReadyCalls).toBe(0);
        await fx.unstall!();
        await until(() => fx.listener.txReadyCalls > 0, () => "txReady()", 10_000);
        expect(fx.listener.txReadyCalls).toBe(1);
        const next = dataFrame(0x700, [7]);
        expect(fx.backend.send(log.request(next))).toBe("accepted");
        accepted.push(next);
        await until(() => log.with("sent").length === accepted.length, () => `${accepted.length} sent (have ${log.with("sent").length})`, 20_000);
        await until(() => fx.busFrames().length >= accepted.length, () => `${accepted.length} on the bus (have ${fx.busFrames().length})`, 20_000);
        await Bun.sleep(c.settleMs);
        expect(names(fx.busFrames())).toEqual(names(accepted));
        expect(log.overReported()).toEqual([]);
      }, 30_000);

      test("a frame that waited past expiresAt is lost(\"expired\") and never written late", async () => {
        const fx = await c.open({ fd: false });
        const log = new TxLog();
        await fx.stall!();
        const keep = log.request(dataFrame(0x7a0, [1]));
        const stale = [0, 1, 2].map((i) => log.request(dataFrame(0x7b0 + i, [i]), 80));
        for (const r of [keep, ...stale]) expect(fx.backend.send(r)).toBe("accepted");
        // Reported on time, while the device is still stuck: not only once it drains.
        await until(() => stale.every((r) => r.outcome !== "pending"), () => `stale frames reported (${stale.map((r) => r.outcome)})`, 3000);
        expect(stale.map((r) => r.outcome)).toEqual(["expired", "expired", "expired"]);
        for (const r of stale) expect(r.reportedAt).toBeGreaterThan(r.expiresAt);
        expect(keep.outcome).toBe("pending");
        await fx.unstall!();
        await until(() => keep.outcome === "sent", () => `the live frame sent (${keep.outcome})`, 10_000);
        await until(() => fx.busFrames().length >= 1, () => "the live frame on the bus", 10_000);
        await Bun.sleep(c.settleMs + 50);
        expect(names(fx.busFrames())).toEqual(["7A0#01"]);
        expect(log.overReported()).toEqual([]);
      });

      test("the device lost while frames wait: they are lost(\"backend_down\"), never written after the replug", async () => {
        const fx = await c.open({ fd: false });
        const log = new TxLog();
        await fx.stall!();
        const waiting = [0, 1].map((i) => log.request(dataFrame(0x7c0 + i, [i])));
        for (const r of waiting) expect(fx.backend.send(r)).toBe("accepted");
        await fx.unplug();
        expect(waiting.map((r) => r.outcome)).toEqual(["backend_down", "backend_down"]);
        await fx.unstall!();
        await fx.replug();
        const after = log.request(dataFrame(0x7d0, [9]));
        expect(fx.backend.send(after)).toBe("accepted");
        await until(() => fx.busFrames().length >= 1, () => "the frame after the replug on the bus", 10_000);
        await Bun.sleep(c.settleMs);
        expect(names(fx.busFrames())).toEqual(["7D0#09"]);
        expect(after.outcome).toBe("sent");
        expect(log.overReported()).toEqual([]);
      });
    });
  });
}
