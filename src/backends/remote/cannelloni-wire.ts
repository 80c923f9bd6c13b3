/**
 * `-backend cannelloni-client`: a cannelloni TCP server's bus (another can-server's -listen, real
 * cannelloni in TCP server mode, a cannelloni ESP32) as this gateway's bus. The client side of
 * docs/protocols.md §2: send `CANNELLONIv1` at once (an ESP32 waits for the client's hello), read
 * the server's 12 hello bytes (./../../protocols/cannelloni/handshake.ts), then frames both ways
 * with the pure codec (../../protocols/cannelloni/codec.ts). A stream that breaks the codec fails
 * the connection (it is reconnected: the stream cannot be resynchronised).
 */
import { CAN_RTR_FLAG, type CanFrame } from "../../can/frame.ts";
import { CannelloniDecoder, encodeCannelloni } from "../../protocols/cannelloni/codec.ts";
import { CANNELLONI_HELLO, stepHello } from "../../protocols/cannelloni/handshake.ts";
import type { RemoteSession, RemoteSessionEvents, RemoteWire } from "./remote-backend.ts";

class CannelloniClientSession implements RemoteSession {
  private matched = 0;
  private helloDone = false;
  private readonly decoder: CannelloniDecoder;

  constructor(private readonly events: RemoteSessionEvents) {
    this.decoder = new CannelloniDecoder((f) => events.frame(f));
    events.write(CANNELLONI_HELLO);
  }

  push(chunk: Uint8Array): void {
    let frames = chunk;
    if (!this.helloDone) {
      const step = stepHello(this.matched, chunk);
      if (step.kind === "error") {
        this.events.fail(`not a cannelloni server: ${step.reason}`);
        return;
      }
      if (step.kind === "need-more") {
        this.matched = step.matched;
        return;
      }
      this.helloDone = true;
      this.events.ready();
      frames = step.rest;
    }
    if (frames.length === 0) return;
    const violation = this.decoder.push(frames);
    if (violation !== null) this.events.fail(`cannelloni stream broken: ${violation}`);
  }
}

export const cannelloniClientWire: RemoteWire = {
  kind: "cannelloni-client",
  open: (events) => new CannelloniClientSession(events),
  // Classic data and FD (where enabled). An RTR frame goes out with len 0 (docs/protocols.md §2),
  // so only an RTR with DLC 0 arrives as sent; any other would arrive changed.
  txRefusal: (frame) => ((frame.canId & CAN_RTR_FLAG) !== 0 && frame.len !== 0 ? "cannelloni carries remote frames without their DLC: only DLC 0 arrives unchanged" : null),
  encode: (frame: CanFrame) => encodeCannelloni([frame], 1, { fd: true }),
};
