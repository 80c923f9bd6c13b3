/**
 * Byte codec of the Ampio USB CAN adapter (docs/protocols.md §4). The decoder is a
 * resumable streaming parser for adapter→host frames `2D D4 | L | id u32 BE | payload | checksum`
 * (L = 5..13): it takes chunks split anywhere, resynchronises on the next `2D D4` after garbage,
 * a bad length or a bad checksum without ever skipping a valid frame that follows, reports every
 * rejected candidate frame to its caller, and holds at most one partial frame between chunks.
 * A listener that throws cannot make it lose bytes: the chunk is decoded to its end and the
 * first error is rethrown from push() afterwards.
 * The encoder builds host→adapter frames `2D D4 | L | 02 | 80|dlc | id u32 BE | payload | checksum`
 * and refuses frames the adapter cannot carry (RTR, CAN FD, error frames). Pure: no I/O.
 */
import { ByteQueue } from "../byte-queue.ts";
import { CAN_EFF_FLAG, CAN_EFF_MASK, type CanFrame, frameProblem, isError, isRemote } from "../../can/frame.ts";

export const AMPIO_PREAMBLE_0 = 0x2d;
export const AMPIO_PREAMBLE_1 = 0xd4;

/** RX: L counts id (4) + payload (0..8) + checksum (1). */
export const AMPIO_RX_MIN_LEN = 5;
export const AMPIO_RX_MAX_LEN = 13;
/** Longest RX frame on the wire: preamble (2) + L (1) + 13. */
export const AMPIO_RX_MAX_FRAME_BYTES = 3 + AMPIO_RX_MAX_LEN;

/** TX: second byte after L is `0x80 | dlc`; the first is the command byte 0x02 (send frame). */
export const AMPIO_TX_COMMAND = 0x02;
export const AMPIO_TX_DLC_FLAG = 0x80;

/** Why a candidate frame (a preamble was seen) was thrown away. */
export type AmpioRejectReason = "bad_length" | "bad_checksum";

export interface AmpioDecoderEvents {
  /** A valid frame, always extended (`can_id = id | EFF`). */
  frame(frame: CanFrame): void;
  /** A candidate frame was rejected; decoding resumes at the byte after its preamble start. */
  reject(reason: AmpioRejectReason): void;
  /** Bytes dropped while hunting for a preamble (line noise); reported per run, not per byte. */
  skip?(bytes: number): void;
}

/** `(0x2D + L + Σ bytes between L and the checksum) mod 256`; 0xD4 is not summed (§4). */
function checksumOf(q: ByteQueue, len: number): number {
  let sum = AMPIO_PREAMBLE_0 + len;
  // Bytes at offsets 3 .. 3+len-2 are id + payload; the checksum sits at 3+len-1.
  const end = 2 + len;
  for (let i = 3; i < end; i++) sum += q.at(i);
  return sum & 0xff;
}

/**
 * Streaming decoder for adapter→host frames. Feed chunks with push(); frames and rejects come
 * back synchronously through the events. Memory: chunks larger than `sliceBytes` are fed in
 * slices, and after each slice at most one partial frame (< 16 bytes) stays buffered.
 */
export class AmpioSerialDecoder {
  private readonly queue: ByteQueue;
  /** First error a listener threw during the current push(); boxed because anything can be thrown. */
  private listenerFailure: { readonly error: unknown } | null = null;

  constructor(
    private readonly events: AmpioDecoderEvents,
    private readonly sliceBytes = 64 * 1024,
  ) {
    this.queue = new ByteQueue(256, sliceBytes + AMPIO_RX_MAX_FRAME_BYTES);
  }

  /** Bytes held back waiting for the rest of a frame (always < 16 between pushes). */
  get buffered(): number {
    return this.queue.length;
  }

  /**
   * Decodes all of `chunk`. If a listener throws, decoding still runs to the end of the chunk
   * (every later frame is delivered, nothing waits for the next chunk) and the first error is
   * rethrown here afterwards; later errors of the same push() are dropped.
   */
  push(chunk: Uint8Array): void {
    for (let off = 0; off < chunk.length; off += this.sliceBytes) {
      this.queue.push(off === 0 && chunk.length <= this.sliceBytes ? chunk : chunk.subarray(off, off + this.sliceBytes));
      this.drain();
    }
    const failure = this.listenerFailure;
    if (failure !== null) {
      this.listenerFailure = null;
      throw failure.error;
    }
  }

  /** Forgets any partial frame (e.g. after the device was reopened). */
  reset(): void {
    this.queue.clear();
  }

  private drain(): void {
    const q = this.queue;
    for (;;) {
      // Hunt for the preamble's first byte; everything before it is noise.
      const p = q.indexOf(AMPIO_PREAMBLE_0);
      if (p < 0) {
        this.skipped(q.length);
        q.clear();
        return;
      }
      if (p > 0) {
        this.skipped(p);
        q.consume(p);
      }
      if (q.length < 2) return; // a lone 0x2D: wait for the next byte
      if (q.at(1) !== AMPIO_PREAMBLE_1) {
        // 0x2D not followed by 0xD4: noise; the next 0x2D may start the real preamble.
        this.skipped(1);
        q.consume(1);
        continue;
      }
      if (q.length < 3) return;
      const len = q.at(2);
      if (len < AMPIO_RX_MIN_LEN || len > AMPIO_RX_MAX_LEN) {
        this.rejected("bad_length");
        // Resume right after the 2D D4 we rejected: a valid frame may start at the L byte.
        q.consume(2);
        continue;
      }
      const total = 3 + len;
      if (q.length < total) return; // partial frame: wait for more bytes
      if (checksumOf(q, len) !== q.at(total - 1)) {
        this.rejected("bad_checksum");
        // The "frame" may be a truncated one whose L swallowed the start of a valid frame:
        // resume scanning inside it, just past the rejected preamble, never after it.
        q.consume(2);
        continue;
      }
      const id = ((q.at(3) << 24) | (q.at(4) << 16) | (q.at(5) << 8) | q.at(6)) >>> 0;
      const dlc = len - 5;
      const data = q.copy(dlc, 7);
      q.consume(total);
      // §4: the id is a 29-bit extended id. Bits above it would turn into RTR/ERR flags, which
      // the adapter cannot report, so they are masked rather than trusted.
      // The frame is consumed before it is delivered, so a throwing listener cannot see it twice.
      try {
        this.events.frame({ canId: ((id & CAN_EFF_MASK) | CAN_EFF_FLAG) >>> 0, len: dlc, data, fd: false, fdFlags: 0 });
      } catch (e) {
        this.listenerThrew(e);
      }
    }
  }

  private rejected(reason: AmpioRejectReason): void {
    try {
      this.events.reject(reason);
    } catch (e) {
      this.listenerThrew(e);
    }
  }

  private skipped(n: number): void {
    if (n <= 0) return;
    try {
      this.events.skip?.(n);
    } catch (e) {
      this.listenerThrew(e);
    }
  }

  private listenerThrew(error: unknown): void {
    this.listenerFailure ??= { error };
  }
}

/** Why the adapter cannot transmit this frame, or null if it can. */
export function ampioTxRefusal(frame: CanFrame): string | null {
  if (frame.fd) return "the Ampio adapter cannot send CAN FD frames";
  if (isRemote(frame)) return "the Ampio adapter cannot send remote (RTR) frames";
  if (isError(frame)) return "error frames cannot be transmitted";
  return frameProblem(frame);
}

/** Bytes on the wire for one host→adapter frame with `dlc` data bytes. */
export function ampioTxFrameBytes(dlc: number): number {
  return 3 + 6 + dlc + 1;
}

/**
 * Encodes one host→adapter frame (§4): `2D D4 | L | 02 | 80|dlc | id u32 BE | payload | checksum`,
 * `L = 6 + dlc + 1`, id masked to 29 bits. Returns null for a frame the adapter cannot carry
 * (see ampioTxRefusal for the reason).
 */
export function encodeAmpioTx(frame: CanFrame): Uint8Array | null {
  if (ampioTxRefusal(frame) !== null) return null;
  const dlc = frame.len;
  const len = 6 + dlc + 1;
  const out = new Uint8Array(3 + len);
  const id = (frame.canId & CAN_EFF_MASK) >>> 0;
  out[0] = AMPIO_PREAMBLE_0;
  out[1] = AMPIO_PREAMBLE_1;
  out[2] = len;
  out[3] = AMPIO_TX_COMMAND;
  out[4] = AMPIO_TX_DLC_FLAG | dlc;
  out[5] = id >>> 24;
  out[6] = (id >>> 16) & 0xff;
  out[7] = (id >>> 8) & 0xff;
  out[8] = id & 0xff;
  out.set(frame.data.subarray(0, dlc), 9);
  let sum = AMPIO_PREAMBLE_0 + len;
  for (let i = 3; i < out.length - 1; i++) sum += out[i]!;
  out[out.length - 1] = sum & 0xff;
  return out;
}

/**
 * Encodes one adapter→host frame (§4), the direction the decoder reads. The gateway never sends
 * these; tests, fixtures and benchmarks use it to play the adapter.
 */
export function encodeAmpioRx(id: number, data: Uint8Array | readonly number[]): Uint8Array {
  const bytes = data instanceof Uint8Array ? data : Uint8Array.from(data);
  if (bytes.length > 8) throw new RangeError(`Ampio frames carry 0..8 data bytes, got ${bytes.length}`);
  const len = 4 + bytes.length + 1;
  const out = new Uint8Array(3 + len);
  out[0] = AMPIO_PREAMBLE_0;
  out[1] = AMPIO_PREAMBLE_1;
  out[2] = len;
  out[3] = id >>> 24;
  out[4] = (id >>> 16) & 0xff;
  out[5] = (id >>> 8) & 0xff;
  out[6] = id & 0xff;
  out.set(bytes, 7);
  let sum = AMPIO_PREAMBLE_0 + len;
  for (let i = 3; i < out.length - 1; i++) sum += out[i]!;
  out[out.length - 1] = sum & 0xff;
  return out;
}
