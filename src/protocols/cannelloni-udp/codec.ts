/**
 * cannelloni UDP datagrams, format v2 (docs/protocols.md §3): a 5-byte header
 * `version u8 (2) | op_code u8 (0 DATA) | seq_no u8 | count u16 BE`, then `count` frames in the
 * cannelloni frame layout `can_id u32 BE | len u8 | [flags u8 if len & 0x80] | data`. Unlike the
 * TCP codec, an RTR frame keeps its DLC in `len` and carries no data bytes, exactly as real
 * cannelloni writes and reads it (its only peers are cannelloni and its ports).
 * Pure: a batch encoder that fills datagrams up to the link MTU, a decoder that never throws and
 * reports every problem, and a sequence-number tracker counting lost datagrams. No sockets.
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
  CANFD_MAX_DLEN,
  type CanFrame,
  isValidFdLength,
} from "../../can/frame.ts";

export const CANNELLONI_UDP_NAME = "cannelloni-udp";
/** cannelloni's default local and remote port. */
export const CANNELLONI_UDP_DEFAULT_PORT = 20000;
export const CANNELLONI_UDP_VERSION = 2;
export const CANNELLONI_OP_DATA = 0;
export const CANNELLONI_UDP_HEADER_BYTES = 5;
/** cannelloni's default link MTU. */
export const CANNELLONI_DEFAULT_MTU = 1500;
/** IP + UDP header bytes cannelloni subtracts from the link MTU. */
export const IPV4_UDP_OVERHEAD = 28;
export const IPV6_UDP_OVERHEAD = 48;
const FD_BIT = 0x80;
const FRAME_HEAD = 5;
/** The largest frame: id + len + flags + 64 data bytes. */
export const CANNELLONI_UDP_MAX_FRAME_BYTES = FRAME_HEAD + 1 + CANFD_MAX_DLEN;
const SFF_FORBIDDEN = CAN_EFF_MASK & ~CAN_SFF_MASK;
const EMPTY = new Uint8Array(0);

export type IpFamily = "ipv4" | "ipv6";

/** UDP payload bytes available per datagram for a link MTU (cannelloni: MTU − 28 / − 48). */
export function cannelloniPayloadLimit(mtu: number, family: IpFamily = "ipv4"): number {
  return mtu - (family === "ipv6" ? IPV6_UDP_OVERHEAD : IPV4_UDP_OVERHEAD);
}

/** Bytes one frame takes on the wire. */
export function cannelloniUdpFrameBytes(f: CanFrame): number {
  if (f.fd) return FRAME_HEAD + 1 + f.data.length;
  return (f.canId & CAN_RTR_FLAG) !== 0 ? FRAME_HEAD : FRAME_HEAD + f.data.length;
}

export interface EncodeDatagramOptions {
  readonly family?: IpFamily;
}

/**
 * Encodes frames into as few datagrams as fit `mtu` (the link MTU, as cannelloni's `-m`), in
 * order, numbered seq, seq+1, … (mod 256). No frames, no datagrams. The caller filters what the
 * peer may receive (FD only when enabled); frames are written as given. Throws RangeError only for
 * an MTU too small to hold the largest frame (a configuration error, checked at start-up).
 */
export function encodeDatagrams(frames: readonly CanFrame[], seq: number, mtu: number, options: EncodeDatagramOptions = {}): Uint8Array[] {
  const limit = cannelloniPayloadLimit(mtu, options.family);
  if (limit < CANNELLONI_UDP_HEADER_BYTES + CANNELLONI_UDP_MAX_FRAME_BYTES) {
    throw new RangeError(`MTU ${mtu} leaves ${limit} payload bytes, a datagram needs at least ${CANNELLONI_UDP_HEADER_BYTES + CANNELLONI_UDP_MAX_FRAME_BYTES}`);
  }
  const out: Uint8Array[] = [];
  let i = 0;
  let s = seq & 0xff;
  while (i < frames.length) {
    // Size this datagram first, then write it into one exact buffer.
    let size = CANNELLONI_UDP_HEADER_BYTES;
    let end = i;
    while (end < frames.length && end - i < 0xffff) {
      const n = cannelloniUdpFrameBytes(frames[end]!);
      if (size + n > limit) break;
      size += n;
      end++;
    }
    const d = new Uint8Array(size);
    d[0] = CANNELLONI_UDP_VERSION;
    d[1] = CANNELLONI_OP_DATA;
    d[2] = s;
    d[3] = (end - i) >>> 8;
    d[4] = (end - i) & 0xff;
    let p = CANNELLONI_UDP_HEADER_BYTES;
    for (let k = i; k < end; k++) p = writeFrame(d, p, frames[k]!);
    out.push(d);
    s = (s + 1) & 0xff;
    i = end;
  }
  return out;
}

function writeFrame(d: Uint8Array, p: number, f: CanFrame): number {
  const id = f.canId;
  d[p] = id >>> 24;
  d[p + 1] = id >>> 16;
  d[p + 2] = id >>> 8;
  d[p + 3] = id;
  if (f.fd) {
    d[p + 4] = FD_BIT | f.data.length;
    d[p + 5] = f.fdFlags & (CANFD_BRS | CANFD_ESI);
    d.set(f.data, p + 6);
    return p + 6 + f.data.length;
  }
  d[p + 4] = f.len;
  if ((id & CAN_RTR_FLAG) !== 0) return p + FRAME_HEAD;
  d.set(f.data, p + FRAME_HEAD);
  return p + FRAME_HEAD + f.data.length;
}

export interface DecodedDatagram {
  /** The header's sequence number, or null when the header itself is unusable. */
  readonly seq: number | null;
  /** Every valid frame, in order, up to the first problem that loses the frame boundaries. */
  readonly frames: CanFrame[];
  /** What was wrong (empty for a clean datagram); each problem is one counted malformed item. */
  readonly problems: string[];
}

/**
 * Decodes one datagram; never throws. A bad header yields no frames. A frame length above 64 or a
 * frame running past the end stops decoding (the rest of the datagram is skipped, as cannelloni
 * ≥ 2.1.2 does); a frame that is complete but invalid (classic length 9..64, FD length not in the
 * valid set, standard id above 0x7FF, FD with RTR) is reported and skipped, and decoding goes on.
 */
export function decodeDatagram(bytes: Uint8Array): DecodedDatagram {
  const frames: CanFrame[] = [];
  const problems: string[] = [];
  if (bytes.length < CANNELLONI_UDP_HEADER_BYTES) {
    problems.push(`datagram of ${bytes.length} bytes is shorter than the 5-byte header`);
    return { seq: null, frames, problems };
  }
  if (bytes[0] !== CANNELLONI_UDP_VERSION) {
    problems.push(`version ${bytes[0]} (expected 2)`);
    return { seq: null, frames, problems };
  }
  const seq = bytes[2]!;
  if (bytes[1] !== CANNELLONI_OP_DATA) {
    problems.push(`op_code ${bytes[1]} is not DATA`);
    return { seq, frames, problems };
  }
  const count = (bytes[3]! << 8) | bytes[4]!;
  const end = bytes.length;
  let p = CANNELLONI_UDP_HEADER_BYTES;
  for (let k = 0; k < count; k++) {
    if (p + FRAME_HEAD > end) {
      problems.push(`count ${count} overruns the datagram: only ${k} frames present`);
      return { seq, frames, problems };
    }
    const canId = ((bytes[p]! << 24) | (bytes[p + 1]! << 16) | (bytes[p + 2]! << 8) | bytes[p + 3]!) >>> 0;
    const lenByte = bytes[p + 4]!;
    const fd = (lenByte & FD_BIT) !== 0;
    const len = lenByte & 0x7f;
    if (len > CANFD_MAX_DLEN) {
      problems.push(`frame ${k}: length ${len} above 64; rest of the datagram skipped`);
      return { seq, frames, problems };
    }
    const head = fd ? FRAME_HEAD + 1 : FRAME_HEAD;
    const rtr = (canId & CAN_RTR_FLAG) !== 0;
    // cannelloni's framing: an RTR flag means no data bytes, FD or not.
    const dataLen = rtr ? 0 : len;
    if (p + head + dataLen > end) {
      problems.push(`frame ${k}: ${head + dataLen} bytes needed, ${end - p} left; rest of the datagram skipped`);
      return { seq, frames, problems };
    }
    const frameStart = p;
    p += head + dataLen;
    const bad = frameIssue(canId, len, fd, rtr);
    if (bad !== null) {
      problems.push(`frame ${k}: ${bad}`);
      continue;
    }
    const fdFlags = fd ? bytes[frameStart + 5]! & (CANFD_BRS | CANFD_ESI) : 0;
    const data = dataLen === 0 ? EMPTY : bytes.slice(frameStart + head, frameStart + head + dataLen);
    frames.push({ canId, len, data, fd, fdFlags });
  }
  if (p < end) problems.push(`${end - p} bytes after the last of ${count} frames`);
  return { seq, frames, problems };
}

function frameIssue(canId: number, len: number, fd: boolean, rtr: boolean): string | null {
  if ((canId & (CAN_EFF_FLAG | CAN_ERR_FLAG)) === 0 && (canId & SFF_FORBIDDEN) !== 0) {
    return `standard id 0x${(canId & CAN_EFF_MASK).toString(16)} above 0x7FF`;
  }
  if (fd) {
    if (rtr) return "CAN FD frame with the RTR flag";
    if (!isValidFdLength(len)) return `invalid CAN FD length ${len}`;
    return null;
  }
  if (len > CAN_MAX_DLEN) return `classic frame length ${len} above 8`;
  return null;
}

/** What one observed sequence number meant. */
export type SeqVerdict = "first" | "in-order" | "gap" | "duplicate" | "late";

/**
 * Counts lost datagrams from 8-bit sequence numbers. The distance d = (seq − last) mod 256:
 * 1 is in order; 2..128 means d − 1 datagrams were lost; 0 is a duplicate; 129..255 is a late
 * (reordered) datagram, which does not move the reference. A peer that restarts at 0 therefore
 * shows as one gap at most (documented in docs/protocols.md §3).
 */
export class SeqTracker {
  private last: number | null = null;
  lost = 0;
  received = 0;
  duplicates = 0;
  late = 0;

  /** Records one datagram's seq; returns how many datagrams were lost just before it. */
  observe(seq: number): number {
    return this.classify(seq).lostBefore;
  }

  classify(seq: number): { verdict: SeqVerdict; lostBefore: number } {
    const s = seq & 0xff;
    this.received++;
    if (this.last === null) {
      this.last = s;
      return { verdict: "first", lostBefore: 0 };
    }
    const d = (s - this.last) & 0xff;
    if (d === 0) {
      this.duplicates++;
      return { verdict: "duplicate", lostBefore: 0 };
    }
    if (d > 128) {
      this.late++;
      return { verdict: "late", lostBefore: 0 };
    }
    this.last = s;
    if (d === 1) return { verdict: "in-order", lostBefore: 0 };
    this.lost += d - 1;
    return { verdict: "gap", lostBefore: d - 1 };
  }

  /** Forget the reference (e.g. the peer was reconfigured). Counters are kept. */
  reset(): void {
    this.last = null;
  }
}
