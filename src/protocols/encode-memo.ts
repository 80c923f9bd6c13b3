/**
 * The last encoding of a stateless encoder, reused while the next session asks for the same frames.
 * Fan-out hands the same frame objects, in the same order, to every session, and sessions flush one
 * after another in the same turn: with N clients of one protocol, the first encodes a batch and the
 * other N−1 write the same bytes (measured in BENCHMARKS.md, "Serial path against near-limit
 * references"). Only for encoders whose output depends on nothing but the frames and `key` (an
 * option or a timestamp compared with ===); a session with its own state (sequence numbers, a
 * session clock) must not use it. The bytes are shared, so neither the memo's users nor the write
 * pump may change them (the pump keeps unwritten tails as subarrays). Holds one batch at most.
 */
import type { CanFrame } from "../can/frame.ts";

export class EncodeMemo<K> {
  private frames: CanFrame[] = [];
  private count = -1;
  private key: K | undefined;
  private bytes: Uint8Array = new Uint8Array(0);
  /** Encodings reused and made, for tests and benchmarks. */
  hits = 0;
  misses = 0;

  constructor(private readonly encodeFn: (frames: readonly CanFrame[], count: number, key: K) => Uint8Array) {}

  encode(frames: readonly CanFrame[], count: number, key: K): Uint8Array {
    if (this.matches(frames, count, key)) {
      this.hits++;
      return this.bytes;
    }
    this.misses++;
    const bytes = this.encodeFn(frames, count, key);
    const kept = this.frames;
    kept.length = count;
    for (let i = 0; i < count; i++) kept[i] = frames[i]!;
    this.count = count;
    this.key = key;
    this.bytes = bytes;
    return bytes;
  }

  private matches(frames: readonly CanFrame[], count: number, key: K): boolean {
    if (count !== this.count || key !== this.key) return false;
    const kept = this.frames;
    for (let i = 0; i < count; i++) if (kept[i] !== frames[i]) return false;
    return true;
  }
}
