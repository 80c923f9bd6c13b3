/**
 * Waveshare 13-byte format as a WireProtocol (shared/spec/PROTOCOLS.md §5, default port 20001):
 * no handshake, so a session is ready on accept. A frame violation fails the session as malformed
 * and further input is ignored. FD and error frames are never sent: the format has no bits for
 * them, and the Home Assistant client drops a frame it cannot parse without reconnecting.
 */
import type { CanFrame } from "../../can/frame.ts";
import type { WireProtocol, WireSession, WireSessionEvents } from "../protocol.ts";
import { encodeWaveshare, WaveshareDecoder, waveshareCanCarry } from "./codec.ts";

class WaveshareSession implements WireSession {
  private failed = false;
  private readonly decoder: WaveshareDecoder;

  constructor(private readonly events: WireSessionEvents) {
    this.decoder = new WaveshareDecoder((f) => events.frame(f));
  }

  start(): void {
    this.events.ready();
  }

  receive(chunk: Uint8Array): void {
    if (this.failed) return;
    const violation = this.decoder.push(chunk);
    if (violation !== null) {
      this.failed = true;
      this.events.fail("malformed", violation);
    }
  }

  accepts(frame: CanFrame): boolean {
    return waveshareCanCarry(frame);
  }

  encode(frames: readonly CanFrame[], count: number): Uint8Array {
    return encodeWaveshare(frames, count);
  }
}

export const waveshare: WireProtocol = {
  name: "waveshare",
  defaultPort: 20001,
  open(events: WireSessionEvents): WireSession {
    return new WaveshareSession(events);
  },
};
