/**
 * can-utils `canlogserver` stream as a WireSession (docs/protocols.md §9, default port 28700):
 * no handshake (ready on accept), then one candump log line per bus frame,
 * `(SEC.USEC) IFACE FRAME\n`, with the configured interface name unpadded (SavvyCAN's
 * CANLOGSERVER client splits each line into exactly three space-separated tokens). The stream is
 * read-only: bytes the client sends are ignored, and each received chunk is reported once as
 * `rejected` so it shows in the malformed counters; the connection is never failed for it.
 * Each line carries its frame's arrival time (StampedFrame.ts).
 */
import { formatCandumpLogLine } from "../../can/candump-log.ts";
import type { CanFrame, StampedFrame } from "../../can/frame.ts";
import type { WireProtocol, WireSession, WireSessionEvents, WireSessionOptions } from "../protocol.ts";

export const CANLOGSERVER_NAME = "canlogserver";
export const CANLOGSERVER_DEFAULT_PORT = 28700;

export interface CanlogserverOptions extends WireSessionOptions {
  /** Interface name written in every line; defaults to `busName`. */
  readonly iface?: string;
}

const encoder = new TextEncoder();

/** Encodes frames[0..count) as log lines stamped with their arrival time; FD frames only when `fd`. */
export function encodeCanlogserverLines(frames: readonly StampedFrame[], count: number, iface: string, fd: boolean): Uint8Array {
  let text = "";
  for (let i = 0; i < count; i++) {
    const frame = frames[i]!;
    if (frame.fd && !fd) continue;
    text += formatCandumpLogLine({ timestampUs: frame.ts, iface, frame }) + "\n";
  }
  return encoder.encode(text);
}

export class CanlogserverSession implements WireSession {
  private ignored = 0;
  private readonly iface: string;

  constructor(
    private readonly events: WireSessionEvents,
    private readonly options: CanlogserverOptions,
  ) {
    this.iface = sanitizeIface(options.iface ?? options.busName);
  }

  /** Bytes received from the client and ignored so far. */
  get ignoredBytes(): number {
    return this.ignored;
  }

  start(): void {
    this.events.ready();
  }

  receive(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.ignored += chunk.length;
    this.events.rejected(`canlogserver is read-only: ignored ${chunk.length} bytes from the client`);
  }

  accepts(frame: CanFrame): boolean {
    return !frame.fd || this.options.fd;
  }

  encode(frames: readonly StampedFrame[], count: number): Uint8Array {
    return encodeCanlogserverLines(frames, count, this.iface, this.options.fd);
  }
}

/** A name that keeps the line at three tokens: no whitespace or parentheses, 1..15 characters. */
function sanitizeIface(name: string): string {
  const s = name.replace(/[\s()]/g, "_").slice(0, 15);
  return s === "" ? "can0" : s;
}

export function open(events: WireSessionEvents, options: CanlogserverOptions): CanlogserverSession {
  return new CanlogserverSession(events, options);
}

export const canlogserver: WireProtocol = { name: "canlogserver", defaultPort: CANLOGSERVER_DEFAULT_PORT, readyOnAccept: true, open };
