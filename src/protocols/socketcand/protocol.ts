/**
 * socketcand raw mode as a WireProtocol (docs/protocols.md §8, default port 29536). The
 * session greets `< hi >`, answers `< open NAME >` (any bus of the gateway by its name, which
 * attaches the session to that bus; an unknown name fails the handshake) and `< rawmode >` with `< ok >`, and is ready after that last reply; the server
 * layer writes each reply separately and streams frames only once they are flushed, because
 * python-can matches each reply against one recv(). In raw mode `< send … >` becomes a bus frame.
 * Bytes outside `< … >` are skipped silently, as socketcand does; a command over the length bound
 * is skipped, reported through `rejected` (counted as malformed) and answered with `< error … >`;
 * a bad or unsupported command is answered with `< error … >` and the session continues, as
 * socketcand does. Only a handshake failure (a bus this gateway does not serve) ends the session.
 */
import type { CanFrame, StampedFrame } from "../../can/frame.ts";
import type { WireProtocol, WireSession, WireSessionEvents, WireSessionOptions } from "../protocol.ts";
import { CommandReader, commandWords, encodeSocketcandFrames, parseSend, printable, socketcandCanCarry, socketcandReply } from "./codec.ts";

/** socketcand commands this gateway knows but does not implement (BCM, ISO-TP, control mode…). */
export const SOCKETCAND_UNSUPPORTED_COMMANDS: ReadonlySet<string> = new Set([
  "add",
  "update",
  "delete",
  "subscribe",
  "unsubscribe",
  "filter",
  "bcmmode",
  "isotpmode",
  "controlmode",
  "statistics",
  "isotpconf",
  "sendpdu",
]);

const HI = socketcandReply("hi");
const OK = socketcandReply("ok");
const ECHO = socketcandReply("echo");

/** Where the session is: greeted (no bus), bus open (socketcand's BCM mode), raw mode. */
type Mode = "no-bus" | "bcm" | "raw";

class SocketcandSession implements WireSession {
  private mode: Mode = "no-bus";
  private failed = false;
  private readonly reader: CommandReader;

  constructor(
    private readonly events: WireSessionEvents,
    private readonly options: WireSessionOptions,
  ) {
    this.reader = new CommandReader(
      (body) => this.command(body),
      (reason) => {
        this.events.rejected(reason);
        this.error(reason);
      },
    );
  }

  start(): void {
    this.events.reply(HI.slice());
  }

  receive(chunk: Uint8Array): void {
    if (this.failed) return;
    this.reader.push(chunk);
  }

  accepts(frame: CanFrame): boolean {
    return socketcandCanCarry(frame);
  }

  encode(frames: readonly StampedFrame[], count: number): Uint8Array {
    return encodeSocketcandFrames(frames, count);
  }

  /** Handles one command body; returns false once the session has failed (stop reading). */
  private command(body: string): boolean {
    const words = commandWords(body);
    const name = words[0] ?? "";
    switch (name) {
      case "open":
        return this.open(words[1] ?? "");
      case "rawmode":
        if (this.mode === "no-bus") return this.error("no bus open");
        this.events.reply(OK.slice());
        if (this.mode === "bcm") {
          this.mode = "raw";
          this.events.ready();
        }
        return true;
      case "echo":
        this.events.reply(ECHO.slice());
        return true;
      case "send": {
        if (this.mode !== "raw") return this.error("send is only supported in raw mode");
        const frame = parseSend(words);
        if (typeof frame === "string") {
          this.events.rejected(frame);
          return this.error(frame);
        }
        this.events.frame(frame);
        return true;
      }
      case "":
        return this.error("empty command");
      default:
        if (SOCKETCAND_UNSUPPORTED_COMMANDS.has(name)) return this.error(`command not supported: ${name}`);
        return this.error(`unknown command: ${printable(name)}`);
    }
  }

  private open(bus: string): boolean {
    if (this.mode !== "no-bus") return this.error("bus already open");
    const found = this.events.selectBus ? this.events.selectBus(bus) : bus === this.options.busName;
    if (!found) {
      this.events.reply(socketcandReply(`error could not open bus ${printable(bus)}`));
      this.failed = true;
      this.events.fail("handshake", `client asked for bus "${printable(bus)}", this gateway serves ${this.options.busNames?.map((n) => `"${n}"`).join(", ") ?? `"${this.options.busName}"`}`);
      return false;
    }
    this.mode = "bcm";
    this.events.reply(OK.slice());
    return true;
  }

  private error(text: string): true {
    this.events.reply(socketcandReply(`error ${text}`));
    return true;
  }
}

export const socketcand: WireProtocol = {
  name: "socketcand",
  defaultPort: 29536,
  // python-can 4.1 reads the final `< ok >` with one recv(256) and needs it alone: frames that
  // arrived with it would make the match fail. The server waits this long after flushing it.
  streamDelayMs: 50,
  open(events: WireSessionEvents, options: WireSessionOptions): WireSession {
    return new SocketcandSession(events, options);
  },
};
