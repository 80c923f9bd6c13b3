/**
 * cannelloni as a WireProtocol (docs/protocols.md §2, default port 20000): on accept the
 * server sends its hello at once (ESP32 ports wait for it), then checks the client's hello, then
 * decodes frames. Any wrong hello byte fails the handshake; any frame violation fails the session
 * as malformed; after a failure further input is ignored. FD frames go out only when FD is enabled.
 */
import type { CanFrame } from "../../can/frame.ts";
import type { WireProtocol, WireSession, WireSessionEvents, WireSessionOptions } from "../protocol.ts";
import { EncodeMemo } from "../encode-memo.ts";
import { CannelloniDecoder, encodeCannelloni } from "./codec.ts";
import { CANNELLONI_HELLO, stepHello } from "./handshake.ts";

/** The TCP encoding depends only on the frames and the FD option: sessions share it. */
const sharedEncoding = new EncodeMemo<boolean>((frames, count, fd) => encodeCannelloni(frames, count, { fd }));

class CannelloniSession implements WireSession {
  private helloMatched = 0;
  private handshaken = false;
  private failed = false;
  private readonly decoder: CannelloniDecoder;

  constructor(
    private readonly events: WireSessionEvents,
    private readonly options: WireSessionOptions,
  ) {
    this.decoder = new CannelloniDecoder((f) => events.frame(f));
  }

  start(): void {
    // A fresh copy: the server may hold the bytes in its write queue.
    this.events.reply(CANNELLONI_HELLO.slice());
  }

  receive(chunk: Uint8Array): void {
    if (this.failed) return;
    let bytes = chunk;
    if (!this.handshaken) {
      const step = stepHello(this.helloMatched, chunk);
      if (step.kind === "error") {
        this.failed = true;
        this.events.fail("handshake", step.reason);
        return;
      }
      if (step.kind === "need-more") {
        this.helloMatched = step.matched;
        return;
      }
      this.handshaken = true;
      this.events.ready();
      bytes = step.rest;
      if (bytes.length === 0 || this.failed) return;
    }
    const violation = this.decoder.push(bytes);
    if (violation !== null) {
      this.failed = true;
      this.events.fail("malformed", violation);
    }
  }

  accepts(frame: CanFrame): boolean {
    return !frame.fd || this.options.fd;
  }

  encode(frames: readonly CanFrame[], count: number): Uint8Array {
    return sharedEncoding.encode(frames, count, this.options.fd);
  }
}

export const cannelloni: WireProtocol = {
  name: "cannelloni",
  defaultPort: 20000,
  open(events: WireSessionEvents, options: WireSessionOptions): WireSession {
    return new CannelloniSession(events, options);
  },
};
