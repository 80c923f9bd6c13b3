/**
 * Frames as the hub hands them to encoders and consumers (StampedFrame): for unit tests that call
 * an encoder directly. `tsUs` is the arrival time in wall-clock microseconds.
 */
import { stamp, type CanFrame, type StampedFrame } from "../../src/can/frame.ts";

export function stamped(frame: CanFrame, tsUs = 0, bus = 0): StampedFrame {
  return stamp(frame, tsUs, bus);
}

/** Every frame stamped with the same time. */
export function allAt(tsUs: number, frames: readonly CanFrame[]): StampedFrame[] {
  return frames.map((f) => stamp(f, tsUs, 0));
}
