/**
 * `-backend socketcand-client`: one bus of a remote socketcand (or another can-server's
 * -socketcand-listen) as this gateway's bus. The client side of socketcand's raw mode
 * (docs/protocols.md, socketcand): the server greets `< hi >`, we send `< open NAME >`
 * (-remote-bus) and, after its `< ok >`, `< rawmode >`; after the second `< ok >` frames flow:
 * `< frame ID SEC.USEC DATA >` from the server (DATA hex without spaces, possibly empty), and
 * `< send ID LEN B0 B1 … >` from us. An `< error … >` during the handshake (no such bus) fails
 * the connection with the server's words; later errors (a frame it refused) are counted as
 * adapter refusals. Raw mode has no form for RTR, FD or error frames: they are refused.
 */
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_RTR_FLAG, CAN_SFF_MASK, type CanFrame } from "../../can/frame.ts";
import type { Stats } from "../../ops/stats.ts";
import { CommandReader, commandWords, printable } from "../../protocols/socketcand/codec.ts";
import type { RemoteSession, RemoteSessionEvents, RemoteWire } from "./remote-backend.ts";

const HEX = /^[0-9a-fA-F]+$/;

/** `< frame ID SEC.USEC DATA >` words → frame, or why not. */
export function parseRawFrame(words: readonly string[]): CanFrame | string {
  const idText = words[1] ?? "";
  const data = words[3] ?? "";
  if (!HEX.test(idText) || idText.length > 8) return `bad id "${printable(idText)}"`;
  if (data !== "" && (!HEX.test(data) || data.length % 2 !== 0 || data.length > 16)) return `bad data "${printable(data)}"`;
  const id = parseInt(idText, 16);
  const ext = idText.length === 8 || id > CAN_SFF_MASK;
  if (id > CAN_EFF_MASK) return `id ${printable(idText)} above 0x1FFFFFFF`;
  const bytes = new Uint8Array(data.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(data.slice(2 * i, 2 * i + 2), 16);
  return { canId: (ext ? id | CAN_EFF_FLAG : id) >>> 0, len: bytes.length, data: bytes, fd: false, fdFlags: 0 };
}

function hex(n: number, digits: number): string {
  return n.toString(16).toUpperCase().padStart(digits, "0");
}

/** `< send ID LEN B0 … >` for a classic data frame. */
export function formatSend(f: CanFrame): string {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const id = ext ? hex(f.canId & CAN_EFF_MASK, 8) : hex(f.canId & CAN_SFF_MASK, 3);
  let s = `< send ${id} ${f.data.length}`;
  for (const b of f.data) s += ` ${hex(b, 2)}`;
  return `${s} >`;
}

type Phase = "greeting" | "opening" | "raw-request" | "raw";

class SocketcandClientSession implements RemoteSession {
  private phase: Phase = "greeting";
  private readonly reader: CommandReader;

  constructor(
    private readonly events: RemoteSessionEvents,
    private readonly bus: string,
    private readonly stats: Stats,
  ) {
    this.reader = new CommandReader(
      (body) => this.element(commandWords(body)),
      (reason) => this.events.fail(`socketcand element refused: ${reason}`),
    );
  }

  push(chunk: Uint8Array): void {
    this.reader.push(chunk);
  }

  /** One `< … >` element from the server; false stops reading (the session failed). */
  private element(words: string[]): boolean {
    const name = words[0] ?? "";
    if (name === "error") {
      const text = words.slice(1).map(printable).join(" ");
      if (this.phase !== "raw") {
        this.events.fail(`socketcand refused ${this.phase === "greeting" ? "us" : this.phase === "opening" ? `< open ${this.bus} >` : "< rawmode >"}: ${text}`);
        return false;
      }
      this.stats.error("adapter_refused");
      return true;
    }
    switch (this.phase) {
      case "greeting":
        if (name !== "hi") return this.unexpected(words);
        this.phase = "opening";
        this.events.write(new TextEncoder().encode(`< open ${this.bus} >`));
        return true;
      case "opening":
        if (name !== "ok") return this.unexpected(words);
        this.phase = "raw-request";
        this.events.write(new TextEncoder().encode("< rawmode >"));
        return true;
      case "raw-request":
        if (name !== "ok") return this.unexpected(words);
        this.phase = "raw";
        this.events.ready();
        return true;
      case "raw": {
        if (name !== "frame") return true; // e.g. `< ok >` or status elements: nothing to do
        const frame = parseRawFrame(words);
        if (typeof frame === "string") this.stats.malformedFrames++;
        else this.events.frame(frame);
        return true;
      }
    }
  }

  private unexpected(words: string[]): false {
    this.events.fail(`unexpected socketcand reply "< ${words.map(printable).join(" ")} >" while ${this.phase}`);
    return false;
  }
}

/** The wire for remote bus `bus` (socketcand's `< open NAME >`). */
export function socketcandClientWire(bus: string, stats: Stats): RemoteWire {
  return {
    kind: "socketcand-client",
    open: (events) => new SocketcandClientSession(events, bus, stats),
    txRefusal: (frame) => ((frame.canId & CAN_RTR_FLAG) !== 0 || frame.fd ? "socketcand raw mode carries classic data frames only" : null),
    encode: (frame) => new TextEncoder().encode(formatSend(frame)),
  };
}
