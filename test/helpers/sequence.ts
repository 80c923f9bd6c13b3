/**
 * Soak traffic that can be checked exactly: every "bus" frame the soak produces carries a
 * sequence number (data bytes 0..3, big-endian) on an id in its own range, so a reference client
 * can tell a lost, duplicated or reordered frame from the churn and hostile traffic around it.
 * Pure.
 */
import { CAN_EFF_FLAG, dataFrame, type CanFrame } from "../../src/can/frame.ts";

/** Extended ids 0x1A000000..0x1A0000FF carry sequenced soak frames; nothing else uses them. */
export const SEQ_ID_BASE = 0x1a000000;

export function sequencedFrame(seq: number): CanFrame {
  return dataFrame(SEQ_ID_BASE + (seq & 0xff), [seq >>> 24, (seq >>> 16) & 0xff, (seq >>> 8) & 0xff, seq & 0xff, 0xa5, 0x5a, 0x00, 0xff], true);
}

/** The sequence number of a soak frame, or null for any other frame. */
export function sequenceOf(f: CanFrame): number | null {
  if ((f.canId & CAN_EFF_FLAG) === 0 || f.len !== 8) return null;
  const id = f.canId & 0x1fffffff;
  if ((id & 0xffffff00) !== SEQ_ID_BASE) return null;
  const d = f.data;
  const seq = ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
  return (seq & 0xff) === (id & 0xff) ? seq : null;
}

/**
 * Checks that a client saw 0, 1, 2, … exactly, in order. Fed incrementally (the frames array of a
 * long run is consumed and cleared), so it holds O(1) state.
 */
export class SequenceChecker {
  next = 0;
  /** Frames out of order, duplicated or missing (first few described in `problems`). */
  errors = 0;
  readonly problems: string[] = [];
  /** The expected sequence numbers at which frames went missing or came out of order (first 20). */
  readonly gaps: number[] = [];
  other = 0;

  feed(frames: readonly CanFrame[]): void {
    for (const f of frames) {
      const seq = sequenceOf(f);
      if (seq === null) {
        this.other++;
        continue;
      }
      if (seq !== this.next) {
        this.errors++;
        if (this.problems.length < 5) this.problems.push(`expected seq ${this.next}, got ${seq}`);
        if (this.gaps.length < 20) this.gaps.push(this.next);
        this.next = seq + 1;
        continue;
      }
      this.next++;
    }
  }
}
