/**
 * What the benchmark drivers share: the send-time stamp every measured frame carries in its data
 * (float64 little-endian, ms on the performance.timeOrigin clock, comparable across processes on
 * one machine), connecting N timestamping cannelloni clients, and percentiles.
 */
import type { CanFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../../test/helpers/cannelloni-client.ts";

/** One fixed-rate (or flat-out) run: `count` frames at `rate` frames/s, 0 = as fast as possible. */
export interface Scenario {
  readonly name: string;
  readonly rate: number;
  readonly count: number;
}

/** The rates the fan-out and protocol benchmarks both measure: the Ampio maximum, a saturated 1 Mbit/s bus, flat out. */
export function busScenarios(quick: boolean): Scenario[] {
  return [
    { name: "382 f/s (Ampio 50 kbit/s max)", rate: 382, count: quick ? 400 : 1_500 },
    { name: "7,634 f/s (1 Mbit/s saturated)", rate: 7_634, count: quick ? 4_000 : 20_000 },
    { name: "flat out", rate: 0, count: quick ? 20_000 : 100_000 },
  ];
}

export const nowMs = (): number => performance.timeOrigin + performance.now();

/** Writes the current time into the first 8 bytes of `data`. */
export function stampSendTime(data: Uint8Array, at = nowMs()): void {
  new DataView(data.buffer, data.byteOffset, 8).setFloat64(0, at, true);
}

/** The send time stamped into a frame's data. */
export function sentAt(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, 8).getFloat64(0, true);
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Connects n clients (hello first, as python-can-cannelloni), lets them attach, then stamps receipts. */
export async function connectStampedClients(port: number, n: number): Promise<CannelloniTestClient[]> {
  const clients: CannelloniTestClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await CannelloniTestClient.connect(port, { helloFirst: true });
    clients.push(c);
    await c.handshake({ helloFirst: true });
  }
  await Bun.sleep(100); // let every session attach
  for (const c of clients) c.stampReceipts = true;
  return clients;
}

/** A client that stamps receipts: receipts[i] is when frames[i] arrived (ms, timeOrigin-based). */
export interface Receiver {
  readonly frames: CanFrame[];
  readonly receipts: number[];
}

/** Forgets what the clients received so far (after a warm-up run). */
export function clearReceived(clients: readonly Receiver[]): void {
  for (const c of clients) {
    c.frames.length = 0;
    c.receipts.length = 0;
  }
}

/** Frames the clients received, all together. */
export function deliveredCount(clients: readonly Receiver[]): number {
  return clients.reduce((s, c) => s + c.frames.length, 0);
}

/** Waits until the clients received `want` frames together, or `timeoutMs` passed (polling every `pollMs`). */
export async function waitDelivered(clients: readonly Receiver[], want: number, timeoutMs: number, pollMs = 2): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (deliveredCount(clients) < want && Date.now() < deadline) await Bun.sleep(pollMs);
}

/** Every received frame's latency (receipt − the send time stamped in it), ms, sorted. */
export function sortedLatencies(clients: readonly Receiver[]): Float64Array {
  const lat: number[] = [];
  for (const c of clients) c.frames.forEach((f, i) => lat.push(c.receipts[i]! - sentAt(f.data)));
  return Float64Array.from(lat).sort();
}
