/**
 * The contract between the hub and whatever reaches the CAN bus (virtual bus, Ampio serial
 * adapter, SocketCAN). A backend delivers received frames and up/down changes to its listener,
 * accepts frames to transmit without ever blocking or throwing, and recovers from outages by
 * itself. Drops on transmit are counted by the backend in Stats (`backendTxDropped` plus its own
 * `errors_total{where}` site).
 */
import type { CanFrame } from "../can/frame.ts";

export type BackendKind = "virtual" | "serial" | "socketcan";
export const BACKEND_KINDS: readonly BackendKind[] = ["socketcan", "serial", "virtual"];

export interface BackendListener {
  /** A frame read from the bus. */
  frame(frame: CanFrame): void;
  /** The backend went up or down (reason says why, e.g. "device vanished: EIO"). */
  state(up: boolean, reason: string): void;
}

export interface Backend {
  readonly kind: BackendKind;
  /** Whether the bus is reachable right now (feeds /ready). */
  readonly up: boolean;
  /** Why the backend is down ("" while up). */
  readonly downReason: string;
  /** Whether CAN FD frames can be carried (configured and supported by the hardware). */
  readonly fdCapable: boolean;
  /**
   * Starts the backend. Resolves once started, even if the device is not there yet (the backend
   * then keeps retrying and reports state changes). Rejects with BackendFatalError only when the
   * backend can never work on this system (e.g. a kernel without SocketCAN).
   */
  start(listener: BackendListener): Promise<void>;
  /** Queues a frame for the bus. Never throws, never blocks; a frame that cannot go is counted. */
  send(frame: CanFrame): void;
  /** Stops reading and writing, releases the device. */
  stop(): Promise<void>;
}

/** A condition no retry can fix; the process exits with code 1 and this message. */
export class BackendFatalError extends Error {
  override readonly name = "BackendFatalError";
}
