/**
 * What a USB-serial CAN adapter speaks on its tty: the one part that differs between the Ampio
 * adapter (binary frames, ../../protocols/ampio-serial/codec.ts) and a Lawicel slcan adapter
 * (ASCII lines, ../slcan/slcan-wire.ts). The tty itself (open, raw mode, non-blocking writes,
 * hot-plug, reconnect) is serial-backend.ts, shared by both.
 */
import type { CanFrame } from "../../can/frame.ts";
import { AmpioSerialDecoder, ampioTxRefusal, encodeAmpioTx } from "../../protocols/ampio-serial/codec.ts";

export interface WireDecoderEvents {
  /** A frame read from the bus. */
  frame(frame: CanFrame): void;
  /** Bytes that looked like a frame but were not a valid one (counted as malformed frames). */
  reject(): void;
  /** Bytes of line noise skipped while looking for a frame. */
  skip(bytes: number): void;
  /**
   * The adapter refused something (slcan: BEL); `what` names it ("open (O)", "a command or a
   * frame"); `opening`: it refused part of the open sequence (it may not be on the bus).
   */
  nack?(what: string, opening: boolean): void;
}

export interface WireDecoder {
  push(chunk: Uint8Array): void;
  /** Forgets a partial frame (the device was reopened). */
  reset(): void;
}

export interface SerialWire {
  /** "serial" (Ampio) or "slcan": the backend kind and the log field. */
  readonly kind: "serial" | "slcan";
  /** Longest encoding of one frame, in bytes (sizes the write batch). */
  readonly maxFrameBytes: number;
  /** Why this adapter cannot carry a frame the common rules allow (null if it can). */
  txRefusal(frame: CanFrame): string | null;
  /** The bytes of one frame, for a frame txRefusal() accepted. */
  encode(frame: CanFrame): Uint8Array;
  decoder(events: WireDecoderEvents): WireDecoder;
  /** Written once right after each open, before the backend reports up (slcan: close, bit rate, open). */
  readonly openSequence?: Uint8Array;
  /** Written best-effort before the tty is closed by stop() (slcan: close the channel). */
  readonly closeSequence?: Uint8Array;
}

/** The Ampio adapter: host→adapter frames of spec §4, adapter→host frames with checksum. */
export const ampioWire: SerialWire = {
  kind: "serial",
  maxFrameBytes: 18,
  txRefusal: ampioTxRefusal,
  encode: (frame) => encodeAmpioTx(frame)!,
  decoder: (events) => new AmpioSerialDecoder(events),
};
