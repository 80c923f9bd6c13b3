/**
 * A Lawicel slcan adapter on a tty (CANable with slcan firmware, USBtin, CANUSB): the wire half
 * of `-backend slcan`; the tty, hot-plug and reconnects are ../serial/serial-backend.ts. Frames
 * both ways use the pure codec of the slcan TCP protocol (src/protocols/slcan/codec.ts,
 * docs/protocols.md §6), here with the gateway as the host and the adapter as the device:
 * - After each open the backend writes `C\r` (close, in case the adapter was left open), `Sn\r`
 *   (the bit rate from -bitrate) and `O\r` (open). No slcand needed.
 * - Received: `t T r R` lines are bus frames. A bare CR is an ack, `z`/`Z` are the transmit acks
 *   of auto-poll adapters, `V…`/`N…`/`F…` are replies: all ignored. BEL (07, not line-ended) is
 *   the adapter refusing a command or a frame: counted (errors_total{where="adapter_refused"})
 *   and reported through `nack`. A malformed frame line is a malformed frame.
 * - Sent: `tiiiL…\r` / `TiiiiiiiiL…\r` / `riiiL\r` / `RiiiiiiiiL\r`, upper-case hex. A frame
 *   counts as sent once written to the tty (the adapter's ack, where it sends one, is not waited
 *   for: CANable firmware sends none).
 * - stop() writes `C\r`, so the adapter leaves the bus.
 */
import { formatSlcanFrame, isSlcanFrameCommand, parseSlcanFrame, SLCAN_BELL, SlcanLineReader } from "../../protocols/slcan/codec.ts";
import type { SerialWire, WireDecoder, WireDecoderEvents } from "../serial/wire.ts";

/** Lawicel `S0`..`S8` and CANable's `S9`. */
export const SLCAN_BITRATE_CODES: ReadonlyMap<number, number> = new Map([
  [10_000, 0], [20_000, 1], [50_000, 2], [100_000, 3], [125_000, 4], [250_000, 5], [500_000, 6], [800_000, 7], [1_000_000, 8], [83_333, 9],
]);

/** `S6` for 500000; null if the rate has no Lawicel code. */
export function slcanBitrateCommand(bitrate: number): string | null {
  const code = SLCAN_BITRATE_CODES.get(bitrate);
  return code === undefined ? null : `S${code}`;
}

/** The bit rates an slcan adapter can be set to, for error messages. */
export function slcanBitrates(): string {
  return [...SLCAN_BITRATE_CODES.keys()].join(", ");
}

function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** What the open sequence's commands do, in the order written (for the replies' meaning). */
const OPEN_COMMANDS = ["close", "the bit rate (S)", "open (O)"] as const;

/** Longest classic line: `T` + 8 id digits + DLC + 16 data digits + CR. */
const MAX_LINE_BYTES = 1 + 8 + 1 + 16 + 1;

/** Cuts out BELs (adapter refusals, not line-ended), then reads lines: frames, acks, replies. */
class SlcanAdapterDecoder implements WireDecoder {
  private readonly lines: SlcanLineReader;
  /**
   * Replies to the open sequence (`C`, `Sn`, `O`) still expected, in that order. A BEL to `C` is
   * normal (Lawicel adapters refuse closing a closed channel); a BEL to `Sn` or `O` is not.
   * Adapters that answer nothing leave this at 3 until the first frame arrives.
   */
  private openReplies: number = OPEN_COMMANDS.length;

  constructor(private readonly events: WireDecoderEvents) {
    this.lines = new SlcanLineReader({
      line: (text) => this.line(text),
      overlong: () => {
        // Noise that never ended in a line (a wrong -baud gives this): its bytes are counted.
        events.reject();
        events.skip(this.lineBytes);
      },
    });
  }

  /** Bytes of the current line so far, terminator included once it came (for counting noise). */
  private lineBytes = 0;

  push(chunk: Uint8Array): void {
    // Handed to the line reader up to each terminator, so its one event per line knows lineBytes.
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === SLCAN_BELL) {
        this.feed(chunk, start, i);
        start = i + 1;
        this.bell();
      } else if (b === 0x0d || b === 0x0a) {
        this.lineBytes += 1;
        this.feed(chunk, start, i + 1);
        start = i + 1;
        this.lineBytes = 0;
      } else {
        this.lineBytes++;
      }
    }
    this.feed(chunk, start, chunk.length);
  }

  private feed(chunk: Uint8Array, from: number, to: number): void {
    if (to > from) this.lines.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }

  reset(): void {
    // A partial line of the old device ends here, dropped (at worst one malformed line, counted).
    this.lines.push(new Uint8Array([0x0d]));
    this.lineBytes = 0;
    this.openReplies = OPEN_COMMANDS.length;
  }

  private bell(): void {
    if (this.openReplies > 0) {
      const command = OPEN_COMMANDS[OPEN_COMMANDS.length - this.openReplies--]!;
      if (command !== "close") this.events.nack?.(command, true);
      return;
    }
    this.events.nack?.("a command or a frame", false);
  }

  private line(text: string): void {
    if (text === "") {
      if (this.openReplies > 0) this.openReplies--;
      return; // ack
    }
    if (text === "z" || text === "Z") return; // transmit acks of auto-poll adapters
    const c = text.charAt(0);
    if (!isSlcanFrameCommand(c)) {
      // Replies (V1013, N…, F00) and anything else an adapter says besides frames.
      this.events.skip(text.length + 1);
      return;
    }
    this.openReplies = 0; // frames flow only once the channel is open
    const frame = parseSlcanFrame(text, false);
    if (typeof frame === "string") this.events.reject();
    else this.events.frame(frame);
  }
}

/** The wire of an slcan adapter set to `bitrate` (one of SLCAN_BITRATE_CODES; throws otherwise). */
export function slcanWire(bitrate: number): SerialWire {
  const s = slcanBitrateCommand(bitrate);
  if (s === null) throw new RangeError(`-bitrate ${bitrate} has no slcan code: an slcan adapter takes ${slcanBitrates()}`);
  return {
    kind: "slcan",
    maxFrameBytes: MAX_LINE_BYTES,
    txRefusal: (frame) => (frame.fd ? "slcan adapters are driven in classic CAN mode here" : null),
    encode: (frame) => ascii(`${formatSlcanFrame(frame, null)}\r`),
    decoder: (events) => new SlcanAdapterDecoder(events),
    openSequence: ascii(`C\r${s}\rO\r`),
    closeSequence: ascii("C\r"),
  };
}
