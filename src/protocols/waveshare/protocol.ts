/**
 * Waveshare 13-byte format as a WireProtocol (docs/protocols.md §5, default port 20001):
 * no handshake, so a session is ready on accept. A bad frame (reserved bits, DLC above 8, an
 * invalid id) is reported through `rejected` (counted as malformed) and skipped, and the decoder
 * re-synchronises after stray or lost bytes (see WaveshareDecoder); the session stays open, since
 * Home Assistant's client notices a closed socket only through a watchdog. FD and error frames are never
 * sent: the format has no bits for them, and the Home Assistant client drops a frame it cannot
 * parse without reconnecting.
 */
import type { CanFrame } from "../../can/frame.ts";
import type { WireProtocol, WireSession, WireSessionEvents } from "../protocol.ts";
import { EncodeMemo } from "../encode-memo.ts";
import { encodeWaveshare, WaveshareDecoder, waveshareCanCarry } from "./codec.ts";

/** The encoding depends only on the frames: sessions share it. */
const sharedEncoding = new EncodeMemo<null>((frames, count) => encodeWaveshare(frames, count));

class WaveshareSession implements WireSession {
  private readonly decoder: WaveshareDecoder;

  constructor(private readonly events: WireSessionEvents) {
    this.decoder = new WaveshareDecoder(
      (f) => events.frame(f),
      (reason) => events.rejected(reason),
    );
  }

  start(): void {
    this.events.ready();
  }

  receive(chunk: Uint8Array): void {
    this.decoder.push(chunk);
  }

  accepts(frame: CanFrame): boolean {
    return waveshareCanCarry(frame);
  }

  encode(frames: readonly CanFrame[], count: number): Uint8Array {
    return sharedEncoding.encode(frames, count, null);
  }
}

export const waveshare: WireProtocol = {
  name: "waveshare",
  defaultPort: 20001,
  readyOnAccept: true,
  open(events: WireSessionEvents): WireSession {
    return new WaveshareSession(events);
  },
};
