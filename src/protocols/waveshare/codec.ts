/**
 * Waveshare CAN-to-Ethernet 13-byte codec (docs/protocols.md §5): every frame is
 * `info u8 | id u32 BE (no flag bits) | data[8] zero-padded`, info = 0x80 extended, 0x40 RTR,
 * low nibble DLC. Resumable decoder (complete frames are parsed straight out of each chunk, only
 * the tail of one partial frame is kept in a ByteQueue) and a batch encoder writing one pre-sized
 * buffer. No I/O.
 *
 * The format is fixed-size, so a bad frame (reserved info bits, DLC above 8, an id out of range)
 * cannot desynchronise the stream: the decoder reports it, skips its 13 bytes and carries on with
 * the next frame. A client glitch costs one frame, not the connection (Home Assistant's Ampio
 * client notices a closed socket only through a 10 s watchdog).
 */
import {
  CAN_EFF_FLAG,
  CAN_EFF_MASK,
  CAN_ERR_FLAG,
  CAN_MAX_DLEN,
  CAN_RTR_FLAG,
  CAN_SFF_MASK,
  type CanFrame,
} from "../../can/frame.ts";
import { ByteQueue } from "../byte-queue.ts";

export const WAVESHARE_FRAME_BYTES = 13;
export const WAVESHARE_INFO_EXTENDED = 0x80;
export const WAVESHARE_INFO_RTR = 0x40;
/** Info bits with no meaning; a client setting them is not speaking this protocol. */
export const WAVESHARE_INFO_RESERVED = 0x30;
const DLC_MASK = 0x0f;
const EMPTY = new Uint8Array(0);

export type FrameSink = (frame: CanFrame) => void;
/** Told why one 13-byte frame was skipped. */
export type RejectSink = (reason: string) => void;

/**
 * Streaming decoder. `push()` delivers every complete valid frame to the sink in order and
 * reports every invalid one to `onReject` (then skips it); it never stops. Holds at most 12 bytes.
 */
export class WaveshareDecoder {
  private readonly pending = new ByteQueue(WAVESHARE_FRAME_BYTES, WAVESHARE_FRAME_BYTES);
  private rejectedCount = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly onReject: RejectSink = () => {},
  ) {}

  /** Frames skipped as invalid so far. */
  get rejected(): number {
    return this.rejectedCount;
  }

  /** Bytes held for an incomplete frame (always < 13). */
  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Uint8Array): void {
    const end = chunk.length;
    let pos = 0;
    const q = this.pending;
    if (q.length > 0) {
      const take = Math.min(WAVESHARE_FRAME_BYTES - q.length, end);
      q.push(chunk.subarray(0, take));
      pos = take;
      if (q.length < WAVESHARE_FRAME_BYTES) return;
      this.parseAt(q.view(WAVESHARE_FRAME_BYTES), 0);
      q.consume(WAVESHARE_FRAME_BYTES);
    }
    while (end - pos >= WAVESHARE_FRAME_BYTES) {
      this.parseAt(chunk, pos);
      pos += WAVESHARE_FRAME_BYTES;
    }
    if (pos < end) q.push(chunk.subarray(pos, end));
  }

  /** Parses the 13 bytes at b[off]: one frame to the sink, or one reason to onReject. */
  private parseAt(b: Uint8Array, off: number): void {
    const info = b[off]!;
    const dlc = info & DLC_MASK;
    if ((info & WAVESHARE_INFO_RESERVED) !== 0) return this.reject(`reserved info bits set (0x${info.toString(16)})`);
    if (dlc > CAN_MAX_DLEN) return this.reject(`DLC ${dlc} above 8`);
    const id = ((b[off + 1]! << 24) | (b[off + 2]! << 16) | (b[off + 3]! << 8) | b[off + 4]!) >>> 0;
    const ext = (info & WAVESHARE_INFO_EXTENDED) !== 0;
    if (ext ? id > CAN_EFF_MASK : id > CAN_SFF_MASK) {
      return this.reject(`${ext ? "extended" : "standard"} id 0x${id.toString(16)} out of range`);
    }
    const rtr = (info & WAVESHARE_INFO_RTR) !== 0;
    const canId = ((ext ? id | CAN_EFF_FLAG : id) | (rtr ? CAN_RTR_FLAG : 0)) >>> 0;
    // An RTR frame has a DLC but no data; its padding bytes are ignored.
    const data = rtr || dlc === 0 ? EMPTY : b.slice(off + 5, off + 5 + dlc);
    this.sink({ canId, len: dlc, data, fd: false, fdFlags: 0 });
  }

  private reject(reason: string): void {
    this.rejectedCount++;
    this.onReject(reason);
  }
}

/** Whether a frame can be written in this format: classic data or RTR, not FD, not error frames. */
export function waveshareCanCarry(f: CanFrame): boolean {
  return !f.fd && (f.canId & CAN_ERR_FLAG) === 0 && f.len <= CAN_MAX_DLEN;
}

/**
 * Encodes frames[0..count) into one buffer of 13 bytes per frame; frames the format cannot carry
 * (see waveshareCanCarry) are skipped. RTR frames keep their DLC and send zero data bytes.
 */
export function encodeWaveshare(frames: readonly CanFrame[], count: number): Uint8Array {
  let n = 0;
  for (let i = 0; i < count; i++) if (waveshareCanCarry(frames[i]!)) n++;
  // Zero-filled, so the padding needs no writes.
  const out = new Uint8Array(n * WAVESHARE_FRAME_BYTES);
  let p = 0;
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    if (!waveshareCanCarry(f)) continue;
    const ext = (f.canId & CAN_EFF_FLAG) !== 0;
    const rtr = (f.canId & CAN_RTR_FLAG) !== 0;
    const id = ext ? f.canId & CAN_EFF_MASK : f.canId & CAN_SFF_MASK;
    out[p] = (ext ? WAVESHARE_INFO_EXTENDED : 0) | (rtr ? WAVESHARE_INFO_RTR : 0) | f.len;
    out[p + 1] = id >>> 24;
    out[p + 2] = id >>> 16;
    out[p + 3] = id >>> 8;
    out[p + 4] = id;
    if (!rtr) out.set(f.data.subarray(0, CAN_MAX_DLEN), p + 5);
    p += WAVESHARE_FRAME_BYTES;
  }
  return out;
}
