/**
 * The pcap file format (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html) with link
 * type LINKTYPE_CAN_SOCKETCAN (227, https://www.tcpdump.org/linktypes/LINKTYPE_CAN_SOCKETCAN.html):
 * a global header, then one record per frame. Pure: bytes out, no I/O.
 *
 * Packet layout (LINKTYPE_CAN_SOCKETCAN): can_id word (id + EFF/RTR/ERR flags) in network byte
 * order (big-endian, unlike the kernel's host-order struct); payload length; FD flags (BRS 0x01,
 * ESI 0x02, FDF 0x04 marks a CAN FD frame); two reserved bytes; the data. Classic frames are
 * written as the kernel's 16-byte can_frame (data zero-padded to 8), FD frames as the 72-byte
 * canfd_frame, so readers that tell FD from classic by the packet length (older Wireshark) and
 * those that read the FDF flag agree. An RTR frame carries its requested DLC in the length byte.
 * The record header's fields are little-endian, announced by the magic number 0xA1B2C3D4.
 */
import { CANFD_FDF, type CanFrame } from "../can/frame.ts";

export const LINKTYPE_CAN_SOCKETCAN = 227;
export const PCAP_GLOBAL_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;
/** struct can_frame / struct canfd_frame sizes. */
export const CAN_MTU = 16;
export const CANFD_MTU = 72;
/** Largest record: header + an FD frame. */
export const PCAP_MAX_RECORD = PCAP_RECORD_HEADER_LEN + CANFD_MTU;

const PCAP_MAGIC_US = 0xa1b2c3d4;

/** The 24-byte file header: version 2.4, microsecond timestamps, snaplen = one FD frame. */
export function pcapGlobalHeader(): Uint8Array {
  const out = new Uint8Array(PCAP_GLOBAL_HEADER_LEN);
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC_US, true);
  v.setUint16(4, 2, true); // version major
  v.setUint16(6, 4, true); // version minor
  v.setInt32(8, 0, true); // thiszone (always 0)
  v.setUint32(12, 0, true); // sigfigs (always 0)
  v.setUint32(16, CANFD_MTU, true); // snaplen
  v.setUint32(20, LINKTYPE_CAN_SOCKETCAN, true);
  return out;
}

/** Bytes the record for this frame takes. */
export function pcapRecordLength(frame: CanFrame): number {
  return PCAP_RECORD_HEADER_LEN + (frame.fd ? CANFD_MTU : CAN_MTU);
}

/**
 * Writes one record (header + packet) into `out` at `offset` and returns the offset after it.
 * `timestampUs` is microseconds since the Unix epoch. `out` must have pcapRecordLength() bytes
 * free there; bytes of the padding are written as zeros.
 */
export function writePcapRecord(out: Uint8Array, offset: number, frame: CanFrame, timestampUs: number): number {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const packetLen = frame.fd ? CANFD_MTU : CAN_MTU;
  const us = Math.max(0, Math.floor(timestampUs));
  const sec = Math.floor(us / 1_000_000);
  v.setUint32(offset, sec >>> 0, true);
  v.setUint32(offset + 4, us - sec * 1_000_000, true);
  v.setUint32(offset + 8, packetLen, true); // captured length
  v.setUint32(offset + 12, packetLen, true); // original length
  return writeSocketcanPacket(out, offset + PCAP_RECORD_HEADER_LEN, frame);
}

/**
 * Writes the LINKTYPE_CAN_SOCKETCAN packet of a frame (CAN_MTU or CANFD_MTU bytes) at `p` and
 * returns the offset after it (shared by pcap records and pcapng Enhanced Packet Blocks).
 */
export function writeSocketcanPacket(out: Uint8Array, p: number, frame: CanFrame): number {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const packetLen = frame.fd ? CANFD_MTU : CAN_MTU;
  v.setUint32(p, frame.canId >>> 0, false); // network byte order
  out[p + 4] = frame.len;
  out[p + 5] = frame.fd ? (frame.fdFlags & 0x03) | CANFD_FDF : 0;
  out[p + 6] = 0;
  out[p + 7] = 0;
  out.fill(0, p + 8, p + packetLen);
  out.set(frame.data.subarray(0, packetLen - 8), p + 8);
  return p + packetLen;
}

/** One record as its own buffer (tests, small writers). */
export function pcapRecord(frame: CanFrame, timestampUs: number): Uint8Array {
  const out = new Uint8Array(pcapRecordLength(frame));
  writePcapRecord(out, 0, frame, timestampUs);
  return out;
}
