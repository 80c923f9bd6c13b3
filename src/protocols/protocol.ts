/**
 * What a client wire protocol (cannelloni, Waveshare 13-byte, socketcand) provides to the server
 * layer. A WireSession is one connection's protocol state: it turns received bytes into frames
 * and control replies and encodes batches of bus frames. It does no I/O itself; the server
 * session owns the socket, the write pump and the timers. A listener is (address, protocol).
 */
import type { CanFrame } from "../can/frame.ts";
import type { ProtocolName } from "../ops/stats.ts";

export type ViolationKind = "handshake" | "malformed";

export interface WireSessionEvents {
  /** A frame the client sent for the bus. */
  frame(frame: CanFrame): void;
  /** Bytes to send that are not bus frames (hello, handshake replies). Each call is one write, in order. */
  reply(bytes: Uint8Array): void;
  /** Handshake complete: from now on the session receives bus frames. */
  ready(): void;
  /**
   * A frame the client sent that cannot go to the bus, in a protocol that reports the error and
   * carries on (socketcand `< send >` with bad fields): counted as malformed, connection kept.
   */
  rejected(reason: string): void;
  /** A protocol violation: the server counts it and closes this connection only. */
  fail(kind: ViolationKind, reason: string): void;
}

export interface WireSessionOptions {
  /** Whether CAN FD frames may be exchanged (configuration `-fd` and an FD-capable backend). */
  readonly fd: boolean;
  /** socketcand: the bus name answered to `< open NAME >`. */
  readonly busName: string;
}

export interface WireSession {
  /** Called once on accept (cannelloni sends its hello here, socketcand `< hi >`). */
  start(): void;
  /** Bytes from the client, split anywhere. After fail() further input is ignored. */
  receive(chunk: Uint8Array): void;
  /** Whether this client can be sent this frame (e.g. FD only when enabled). */
  accepts(frame: CanFrame): boolean;
  /** Encodes frames[0..count) into one buffer for one socket write. */
  encode(frames: readonly CanFrame[], count: number): Uint8Array;
}

export interface WireProtocol {
  readonly name: ProtocolName;
  readonly defaultPort: number;
  /**
   * Milliseconds to wait after the last handshake reply has been written before streaming bus
   * frames (socketcand: python-can reads each reply with one recv() and needs it alone).
   */
  readonly streamDelayMs?: number;
  open(events: WireSessionEvents, options: WireSessionOptions): WireSession;
}
