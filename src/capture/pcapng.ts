/**
 * The pcapng format (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html) for a
 * capture of several buses: one Section Header Block, one Interface Description Block per bus
 * (LINKTYPE_CAN_SOCKETCAN, `if_name` = the bus name, microsecond timestamps), then one Enhanced
 * Packet Block per frame naming its bus's interface, so Wireshark keeps the buses apart
 * (`frame.interface_name`). Packets are the same bytes as in pcap.ts. Little-endian (the
 * byte-order magic says so). Pure: bytes out, no I/O.
 */
import type { CanFrame } from "../can/frame.ts";
import { CAN_MTU, CANFD_MTU, LINKTYPE_CAN_SOCKETCAN, writeSocketcanPacket } from "./pcap.ts";

const SHB_TYPE = 0x0a0d0d0a;
const IDB_TYPE = 0x00000001;
const EPB_TYPE = 0x00000006;
const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const OPT_END = 0;
const IF_NAME = 2;
const IF_TSRESOL = 9;
/** EPB: 28 bytes of header fields + 4 trailing length; the packet is a multiple of 4 (16 or 72). */
const EPB_OVERHEAD = 32;
/** Largest EPB: an FD frame. */
export const PCAPNG_MAX_RECORD = EPB_OVERHEAD + CANFD_MTU;

const pad4 = (n: number): number => (n + 3) & ~3;

/** The Section Header Block and one Interface Description Block per name (interface i = names[i]). */
export function pcapngHeader(interfaceNames: readonly string[]): Uint8Array {
  const enc = new TextEncoder();
  const names = interfaceNames.map((n) => enc.encode(n));
  const shbLen = 28;
  // IDB: 16 header bytes + if_name option (4 + padded) + if_tsresol (4 + 4) + end (4) + trailing 4.
  const idbLen = (name: Uint8Array): number => 16 + 4 + pad4(name.length) + 8 + 4 + 4;
  const total = shbLen + names.reduce((n, name) => n + idbLen(name), 0);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  v.setUint32(0, SHB_TYPE, true);
  v.setUint32(4, shbLen, true);
  v.setUint32(8, BYTE_ORDER_MAGIC, true);
  v.setUint16(12, 1, true); // major
  v.setUint16(14, 0, true); // minor
  v.setBigInt64(16, -1n, true); // section length unknown (a live stream)
  v.setUint32(24, shbLen, true);
  let at = shbLen;
  for (const name of names) {
    const len = idbLen(name);
    v.setUint32(at, IDB_TYPE, true);
    v.setUint32(at + 4, len, true);
    v.setUint16(at + 8, LINKTYPE_CAN_SOCKETCAN, true);
    v.setUint16(at + 10, 0, true);
    v.setUint32(at + 12, CANFD_MTU, true); // snaplen
    let o = at + 16;
    v.setUint16(o, IF_NAME, true);
    v.setUint16(o + 2, name.length, true);
    out.set(name, o + 4);
    o += 4 + pad4(name.length);
    v.setUint16(o, IF_TSRESOL, true);
    v.setUint16(o + 2, 1, true);
    out[o + 4] = 6; // 10^-6 s
    o += 8;
    v.setUint16(o, OPT_END, true);
    v.setUint16(o + 2, 0, true);
    v.setUint32(at + len - 4, len, true);
    at += len;
  }
  return out;
}

/** Bytes the Enhanced Packet Block of this frame takes. */
export function pcapngRecordLength(frame: CanFrame): number {
  return EPB_OVERHEAD + (frame.fd ? CANFD_MTU : CAN_MTU);
}

/**
 * Writes one Enhanced Packet Block for interface `iface` into `out` at `offset`; returns the
 * offset after it. `timestampUs`: microseconds since the Unix epoch (if_tsresol 6).
 */
export function writePcapngRecord(out: Uint8Array, offset: number, frame: CanFrame, timestampUs: number, iface: number): number {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const packetLen = frame.fd ? CANFD_MTU : CAN_MTU;
  const len = EPB_OVERHEAD + packetLen;
  const us = Math.max(0, Math.floor(timestampUs));
  const high = Math.floor(us / 0x1_0000_0000);
  v.setUint32(offset, EPB_TYPE, true);
  v.setUint32(offset + 4, len, true);
  v.setUint32(offset + 8, iface, true);
  v.setUint32(offset + 12, high, true);
  v.setUint32(offset + 16, us - high * 0x1_0000_0000, true);
  v.setUint32(offset + 20, packetLen, true); // captured length
  v.setUint32(offset + 24, packetLen, true); // original length
  const end = writeSocketcanPacket(out, offset + 28, frame);
  v.setUint32(end, len, true);
  return end + 4;
}
