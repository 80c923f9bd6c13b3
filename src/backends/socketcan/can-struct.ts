/**
 * CanFrame ⇄ kernel frame structs, pure (bytes in, frames out). `struct can_frame` is 16 bytes,
 * `struct canfd_frame` 72, in host byte order — little-endian on every platform Bun runs on
 * (amd64, arm64). The struct size tells a classic frame from an FD frame, exactly as the kernel
 * does (a read returns one whole struct). Layouts: docs/protocols.md §1.
 */
import { CANFD_BRS, CANFD_ESI, CANFD_FDF, CAN_RTR_FLAG, type CanFrame } from "../../can/frame.ts";

export const CAN_FRAME_SIZE = 16;
export const CANFD_FRAME_SIZE = 72;
const DATA_OFFSET = 8;
const EMPTY = new Uint8Array(0);

/**
 * Decodes the struct of `size` bytes (16 or 72) at `offset`. Data is copied, so the source
 * buffer may be reused. Returns null for any other size.
 */
export function decodeCanStruct(buf: Uint8Array, offset: number, size: number): CanFrame | null {
  const canId = (buf[offset]! | (buf[offset + 1]! << 8) | (buf[offset + 2]! << 16) | (buf[offset + 3]! << 24)) >>> 0;
  const len = buf[offset + 4]!;
  if (size === CAN_FRAME_SIZE) {
    if (len > 8) return null;
    // A remote request has a DLC but no data bytes.
    if ((canId & CAN_RTR_FLAG) !== 0) return { canId, len, data: EMPTY, fd: false, fdFlags: 0 };
    const start = offset + DATA_OFFSET;
    return { canId, len, data: buf.slice(start, start + len), fd: false, fdFlags: 0 };
  }
  if (size === CANFD_FRAME_SIZE) {
    if (len > 64) return null;
    const fdFlags = buf[offset + 5]! & (CANFD_BRS | CANFD_ESI);
    const start = offset + DATA_OFFSET;
    return { canId, len, data: buf.slice(start, start + len), fd: true, fdFlags };
  }
  return null;
}

/**
 * Writes `frame` as a kernel struct into `out` (at least 72 bytes) and returns its size (16 or
 * 72). Unused bytes are zeroed: the kernel and candump see exactly the frame's data.
 */
export function encodeCanStruct(frame: CanFrame, out: Uint8Array): number {
  const size = frame.fd ? CANFD_FRAME_SIZE : CAN_FRAME_SIZE;
  out.fill(0, 0, size);
  const id = frame.canId >>> 0;
  out[0] = id & 0xff;
  out[1] = (id >>> 8) & 0xff;
  out[2] = (id >>> 16) & 0xff;
  out[3] = id >>> 24;
  out[4] = frame.len;
  // canfd_frame.flags: FDF marks the struct as FD for the kernel's dual use of canfd_frame.
  if (frame.fd) out[5] = (frame.fdFlags & (CANFD_BRS | CANFD_ESI)) | CANFD_FDF;
  if ((id & CAN_RTR_FLAG) === 0 || frame.fd) out.set(frame.data.subarray(0, frame.len), DATA_OFFSET);
  return size;
}
