/**
 * cannelloni TCP frame codec (docs/protocols.md §2): `can_id u32 BE | len u8 |
 * [flags u8 if len & 0x80] | data`. The decoder is a resumable state machine that takes chunks
 * split anywhere; it parses complete frames straight out of each chunk and keeps only the tail of
 * one partial frame (at most 69 bytes) in a ByteQueue, so a large read is never copied whole. On
 * the first violation it records a reason and ignores all further input. The encoder writes a
 * batch into one pre-sized buffer. No I/O.
 */
import {
  CAN_EFF_FLAG,
  CAN_EFF_MASK,
  CAN_ERR_FLAG,
  CAN_MAX_DLEN,
  CAN_RTR_FLAG,
  CAN_SFF_MASK,
  CANFD_BRS,
  CANFD_ESI,
  type CanFrame,
  isValidFdLength,
} from "../../can/frame.ts";
import { ByteQueue } from "../byte-queue.ts";

/** `len & 0x80` marks a CAN FD frame; a flags byte follows the length byte. */
export const CANNELLONI_FD_BIT = 0x80;
/** can_id + len: the shortest frame on the wire. */
export const CANNELLONI_HEADER_BYTES = 5;
/** can_id + len + flags + 64 data bytes. */
export const CANNELLONI_MAX_FRAME_BYTES = 4 + 1 + 1 + 64;

const EMPTY = new Uint8Array(0);
const FD_FLAG_MASK = CANFD_BRS | CANFD_ESI;
/** Id bits that a standard (non-EFF) id must not use. */
const SFF_FORBIDDEN = CAN_EFF_MASK & ~CAN_SFF_MASK;

export type FrameSink = (frame: CanFrame) => void;

/**
 * Streaming decoder. `push()` delivers every complete frame to the sink in order and returns the
 * violation reason once the stream is broken (then and on every later call), otherwise null.
 */
export class CannelloniDecoder {
  // Holds the start of at most one incomplete frame between pushes.
  private readonly pending = new ByteQueue(CANNELLONI_MAX_FRAME_BYTES, CANNELLONI_MAX_FRAME_BYTES);
  private broken: string | null = null;
  /** Bytes the frame at the parse position needs as far as known (set by parseAt when it returns 0). */
  private want = CANNELLONI_HEADER_BYTES;

  constructor(private readonly sink: FrameSink) {}

  /** The violation that stopped this decoder, or null. */
  get violation(): string | null {
    return this.broken;
  }

  /** Bytes held for an incomplete frame (bounded by CANNELLONI_MAX_FRAME_BYTES). */
  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Uint8Array): string | null {
    if (this.broken !== null) return this.broken;
    const end = chunk.length;
    let pos = 0;
    // Complete the partial frame left by earlier chunks, topping it up only as far as it needs.
    const q = this.pending;
    while (q.length > 0 && pos < end) {
      const take = Math.min(this.want - q.length, end - pos);
      q.push(chunk.subarray(pos, pos + take));
      pos += take;
      const n = this.parseAt(q.view(q.length), 0, q.length);
      if (n < 0) return this.broken;
      if (n > 0) q.consume(n);
    }
    while (pos < end) {
      const n = this.parseAt(chunk, pos, end);
      if (n < 0) return this.broken;
      if (n === 0) break;
      pos += n;
    }
    if (pos < end) q.push(chunk.subarray(pos, end));
    return null;
  }

  /**
   * Parses one frame at b[off..end). Returns the bytes consumed (frame delivered), 0 if more bytes
   * are needed (`want` says how many in total), or -1 on a violation (`broken` set). The header is
   * validated as soon as its 5 bytes are there, so a bad length fails without waiting for data.
   */
  private parseAt(b: Uint8Array, off: number, end: number): number {
    const avail = end - off;
    if (avail < CANNELLONI_HEADER_BYTES) {
      this.want = CANNELLONI_HEADER_BYTES;
      return 0;
    }
    const canId = ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
    const lenByte = b[off + 4]!;
    const fd = (lenByte & CANNELLONI_FD_BIT) !== 0;
    const len = lenByte & 0x7f;
    const rtr = (canId & CAN_RTR_FLAG) !== 0;
    if ((canId & CAN_EFF_FLAG) === 0 && (canId & CAN_ERR_FLAG) === 0 && (canId & SFF_FORBIDDEN) !== 0) {
      return this.fail(`standard id 0x${(canId & CAN_EFF_MASK).toString(16)} above 0x7FF`);
    }
    let head = CANNELLONI_HEADER_BYTES;
    if (fd) {
      if (rtr) return this.fail("CAN FD frame with the RTR flag");
      if (!isValidFdLength(len)) return this.fail(`invalid CAN FD length ${len}`);
      head = CANNELLONI_HEADER_BYTES + 1;
    } else if (len > CAN_MAX_DLEN) {
      return this.fail(`classic frame length ${len} above 8`);
    }
    // §2: an RTR frame carries no data bytes; its len is the requested DLC.
    const dataLen = rtr ? 0 : len;
    const total = head + dataLen;
    if (avail < total) {
      this.want = total;
      return 0;
    }
    const fdFlags = fd ? b[off + 5]! & FD_FLAG_MASK : 0;
    const data = dataLen === 0 ? EMPTY : b.slice(off + head, off + total);
    this.sink({ canId, len, data, fd, fdFlags });
    return total;
  }

  private fail(reason: string): number {
    this.broken = reason;
    this.pending.clear();
    return -1;
  }
}

export interface CannelloniEncodeOptions {
  /** Whether FD frames may be written; when false they are skipped (the session filters them first). */
  readonly fd: boolean;
}

/** Wire size of one frame, or 0 if it is not written under `fd`. */
function wireSize(f: CanFrame, fd: boolean): number {
  if (f.fd) return fd ? CANNELLONI_HEADER_BYTES + 1 + f.data.length : 0;
  return (f.canId & CAN_RTR_FLAG) !== 0 ? CANNELLONI_HEADER_BYTES : CANNELLONI_HEADER_BYTES + f.data.length;
}

/**
 * Encodes frames[0..count) into one buffer (one allocation). RTR frames go out with len 0 and no
 * data (§2: in sync with every known parser, python-can-cannelloni reads `len` data bytes even
 * for RTR; the DLC is lost). FD frames carry their BRS/ESI bits in the flags byte.
 */
export function encodeCannelloni(frames: readonly CanFrame[], count: number, opts: CannelloniEncodeOptions): Uint8Array {
  const fdOk = opts.fd;
  let size = 0;
  for (let i = 0; i < count; i++) size += wireSize(frames[i]!, fdOk);
  const out = new Uint8Array(size);
  let p = 0;
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    if (f.fd && !fdOk) continue;
    const id = f.canId;
    out[p] = id >>> 24;
    out[p + 1] = id >>> 16;
    out[p + 2] = id >>> 8;
    out[p + 3] = id;
    if (f.fd) {
      out[p + 4] = CANNELLONI_FD_BIT | f.data.length;
      out[p + 5] = f.fdFlags & FD_FLAG_MASK;
      out.set(f.data, p + 6);
      p += 6 + f.data.length;
    } else if ((id & CAN_RTR_FLAG) !== 0) {
      out[p + 4] = 0;
      p += CANNELLONI_HEADER_BYTES;
    } else {
      out[p + 4] = f.data.length;
      out.set(f.data, p + 5);
      p += CANNELLONI_HEADER_BYTES + f.data.length;
    }
  }
  return out;
}
