/**
 * The contract between the hub and whatever reaches the CAN bus (virtual bus, Ampio serial
 * adapter, SocketCAN). A backend delivers received frames and up/down changes to its listener,
 * takes frames to transmit without ever blocking or throwing, reports what became of each one,
 * and recovers from outages by itself.
 *
 * Transmit is a conversation, so the hub can keep its promise that other clients only see
 * (echo) frames that really went to the bus, and can share the bus fairly between clients:
 * - `txRefusal(frame)`: can this backend ever carry the frame? (error frames never; RTR/FD where
 *   the hardware cannot). The hub refuses such frames before queueing them.
 * - `send(req)` answers at once: "accepted" — the backend owns the request and calls exactly one
 *   of `req.sent()` (the frame was written to the tty / the virtual bus; on SocketCAN, the
 *   kernel confirmed the transmission) or `req.lost(reason)` later, possibly before send() returns; "busy" — no room now, the hub
 *   keeps the frame and offers it again after `listener.txReady()`; "down" — the bus is not
 *   reachable; "unsupported" — see txRefusal.
 * - Backends keep their own transmit queues short (a few write batches): the waiting happens in
 *   the hub's per-client queues, where it can be fair and expire (`req.expiresAt`).
 */
import { frameProblem, isError, type CanFrame } from "../can/frame.ts";

export type BackendKind = "virtual" | "serial" | "socketcan" | "replay" | "slcan" | "cannelloni-client" | "socketcand-client";
export const BACKEND_KINDS: readonly BackendKind[] = ["socketcan", "serial", "virtual", "replay", "slcan", "cannelloni-client", "socketcand-client"];

/**
 * Why an accepted frame did not reach the bus. "unconfirmed": written, but the bus never
 * confirmed it in time (SocketCAN's transmit confirmation; docs/protocols.md §1).
 */
export type TxLoss = "expired" | "backend_down" | "write_failed" | "unconfirmed";

export type SendResult = "accepted" | "busy" | "down" | "unsupported";

/** One client frame on its way to the bus. */
export interface TxRequest {
  readonly frame: CanFrame;
  /** performance.now() after which the frame must not be written any more (report "expired"). */
  readonly expiresAt: number;
  /** The frame is on the bus (written to the device, or confirmed where the device can say). Call once. */
  sent(): void;
  /** The frame was accepted but will not reach the bus. Call once, instead of sent(). */
  lost(reason: TxLoss): void;
}

export interface BackendListener {
  /** A frame read from the bus. */
  frame(frame: CanFrame): void;
  /** The backend went up or down (reason says why, e.g. "device vanished: EIO"). */
  state(up: boolean, reason: string): void;
  /** After send() answered "busy": there is room again. */
  txReady(): void;
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
  /** Why this backend can never carry the frame (a short reason for logs), or null if it can. */
  txRefusal(frame: CanFrame): string | null;
  /** Offers a frame for the bus; never throws, never blocks. See the module comment. */
  send(req: TxRequest): SendResult;
  /** Stops reading and writing, releases the device; accepted requests are lost("backend_down"). */
  stop(): Promise<void>;
  /**
   * What the backend knows of the CAN controller's health, for the HTTP API's bus view
   * (src/api/api.ts) and whoever else shows it; absent or null where the backend knows nothing
   * (virtual, replay, remote buses).
   */
  health?(): BusHealth | null;
  /**
   * The bit rate the bus really runs at, where the backend can read it before start (SocketCAN:
   * the interface's netlink bit timing; src/gateway.ts resolveBitrate); null and why where it
   * cannot (vcan).
   */
  interfaceBitrate?(): { bitrate: number | null; detail: string };
}

/** A CAN controller's health as a backend reports it (issue 21 item 3); every field optional but state. */
export interface BusHealth {
  /** "error-active", "error-warning", "error-passive", "bus-off", "stopped"; null: not known. */
  readonly state: string | null;
  /** The controller's transmit and receive error counters (TEC, REC). */
  readonly txErrors?: number;
  readonly rxErrors?: number;
  /** Controller restarts (after bus-off) and bus-off events since the interface came up. */
  readonly restarts?: number;
  readonly busOff?: number;
  /** Error frames seen, by class (e.g. "ack", "bit", "stuff", "crc", "form", "controller"). */
  readonly errorFrames?: Readonly<Record<string, number>>;
  /** The bit rate the controller really runs at (0 or absent: not known). */
  readonly bitrate?: number;
}

/** A condition no retry can fix; the process exits with code 1 and this message. */
export class BackendFatalError extends Error {
  override readonly name = "BackendFatalError";
}

/**
 * The refusals every backend shares: error frames are never written to a bus (a client cannot
 * forge bus errors), CAN FD only where enabled, and frames that break the frame model.
 */
export function commonTxRefusal(frame: CanFrame, fdCapable: boolean): string | null {
  if (isError(frame)) return "error frames are never sent to the bus";
  if (frame.fd && !fdCapable) return "CAN FD is not enabled (-fd) or not supported by the backend";
  return frameProblem(frame);
}

/**
 * Bus bit rate assumed when -bitrate is 0: the Ampio bus runs at 50 kbit/s (the serial adapter is
 * Ampio's), 500 kbit/s is the most common SocketCAN set-up, the virtual bus models 1 Mbit/s, a
 * replayed log is taken to come from an Ampio bus (the demo log does), an slcan adapter is set to
 * 500 kbit/s (`S6`) like a SocketCAN interface, a remote bus is assumed to be a SocketCAN one.
 */
export const DEFAULT_BITRATE: Readonly<Record<BackendKind, number>> = {
  serial: 50_000,
  socketcan: 500_000,
  virtual: 1_000_000,
  replay: 50_000,
  slcan: 500_000,
  "cannelloni-client": 500_000,
  "socketcand-client": 500_000,
};
