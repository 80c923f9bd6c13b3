/**
 * Waveshare CAN-to-Ethernet 13-byte codec (docs/protocols.md §5): every frame is
 * `info u8 | id u32 BE (no flag bits) | data[8] zero-padded`, info = 0x80 extended, 0x40 RTR,
 * low nibble DLC. Resumable decoder (complete frames are parsed straight out of each chunk, only
 * the tail of one partial frame is kept in a ByteQueue) and a batch encoder writing one pre-sized
 * buffer. No I/O.
 *
 * A bad unit (reserved info bits, DLC above 8, an id out of range) is reported and skipped, and the
 * decoder then re-synchronises (see WaveshareDecoder): a stray or lost byte costs the frames it
 * overlaps, not the connection (Home Assistant's Ampio client notices a closed socket only through
 * a 10 s watchdog), and a unit read at a doubtful alignment never reaches the bus.
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
/** Unit plausibility while the alignment is in doubt (see classify). */
const INVALID = 0;
const VALID = 1;
const CLEAN = 2;
/** validRecent's bit for the unit that ended 13 bytes ago: the previous one at the newest's alignment. */
const SAME_PREVIOUS = 1 << (WAVESHARE_FRAME_BYTES - 1);
/** x mod 13 for any integer x. */
function mod13(x: number): number {
  return ((x % WAVESHARE_FRAME_BYTES) + WAVESHARE_FRAME_BYTES) % WAVESHARE_FRAME_BYTES;
}
/** One bit per alignment other than the newest unit's: the units that ended 1..12 bytes ago. */
const OTHERS = 0xfff;

export type FrameSink = (frame: CanFrame) => void;
/** Told why one 13-byte frame was skipped. */
export type RejectSink = (reason: string) => void;

/**
 * Streaming decoder. `push()` delivers every complete valid frame to the sink in order and
 * reports every 13-byte unit it cannot deliver to `onReject`; it never stops. Holds at most 12
 * bytes.
 *
 * Alignment. The format has no delimiter and no checksum, so alignment is an assumption. It holds
 * from the first byte; while it holds, each valid unit is delivered at once, unless its padding
 * is not zero while a unit at another alignment overlapping it reads as a zero-padded frame (see
 * checkAligned). An invalid unit (reserved info bits 0x30, DLC above 8, an id out of range) puts
 * the alignment in doubt: it may be one bad frame, or a stray or lost byte has shifted the stream,
 * and a shifted unit can still look valid (the bug this replaces put `0x88000001 23 23 01 …` on the
 * bus). While in doubt the decoder looks at the unit ending at every byte, i.e. at all 13
 * alignments at once. A unit is the only reading of the stream when no other alignment's latest
 * unit (the 12 ending at the 12 bytes before) is as plausible: it is the only zero-padded one, or
 * the only valid one. Such a unit at the old alignment, zero-padded, is delivered at once (one bad
 * frame between good ones costs nothing more); at another alignment it is held until the next
 * unit there is the only reading too, and both are delivered if that happens within the same read
 * (a frame is never delivered late). Everything else read in doubt is dropped and counted, never
 * guessed (e.g. a run of zero bytes reads as frames at every alignment).
 *
 * When two alignments keep reading equally well, a read that started at one of them after the
 * doubt began decides, once that alignment has two valid units in a row (clients write whole
 * frames, so a stray byte in its own write shows where frames start).
 *
 * Limit of the format: a byte inserted *inside* a frame's data before any invalid unit shows up
 * cannot be seen (the info byte and id are intact); that one frame carries shifted data, and the
 * next unit is the one that shows the shift.
 */
export class WaveshareDecoder {
  private readonly pending = new ByteQueue(WAVESHARE_FRAME_BYTES, WAVESHARE_FRAME_BYTES);
  private rejectedCount = 0;
  private resyncCount = 0;
  private skippedCount = 0;
  /** Alignment in doubt: bytes go through hunt() one at a time. */
  private hunting = false;
  /** While hunting: the last 12 bytes (a unit ends at the next byte). */
  private readonly window = new Uint8Array(WAVESHARE_FRAME_BYTES);
  private windowLength = 0;
  /** While aligned: the last 12 bytes of the units already read (see checkAligned). */
  private readonly history = new Uint8Array(WAVESHARE_FRAME_BYTES - 1);
  private historyLength = 0;
  /** While hunting: bit i set = the unit that ended i+1 bytes ago was valid (i < 13). */
  private validRecent = 0;
  /** While hunting: the same for clean units (see classify). */
  private cleanRecent = 0;
  /**
   * While hunting: a candidate unit (held) waits for the next unit at its alignment, which ends
   * `confirmIn` bytes later; both are delivered if that one is valid too. 0 = no candidate.
   */
  private confirmIn = 0;
  private readonly held = new Uint8Array(WAVESHARE_FRAME_BYTES);
  private heldValid = false;
  /** While hunting: the alignment (0..12, 0 = the old one) of the next byte's position. */
  private phase = 0;
  /** While hunting: alignments at which a read started since the doubt began (one bit each). */
  private readStarts = 0;
  /** While hunting: bytes since the last unit at the old alignment (counts units lost there). */
  private sinceOldUnit = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly onReject: RejectSink = () => {},
  ) {}

  /** Units not delivered so far (invalid, or read while the alignment was in doubt). */
  get rejected(): number {
    return this.rejectedCount;
  }

  /** Times the alignment was lost and then found again. */
  get resyncs(): number {
    return this.resyncCount;
  }

  /** Bytes dropped while the alignment was in doubt (the invalid unit's included). */
  get skippedBytes(): number {
    return this.skippedCount;
  }

  /** Whether the alignment is in doubt (nothing is delivered until it is found again). */
  get inDoubt(): boolean {
    return this.hunting;
  }

  /** Bytes held for an incomplete frame (always < 13). */
  get buffered(): number {
    return this.hunting ? this.windowLength : this.pending.length;
  }

  push(chunk: Uint8Array): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.hunting) {
        pos = this.hunt(chunk, pos);
        continue;
      }
      pos = this.aligned(chunk, pos);
    }
  }

  /** Aligned reading from chunk[pos]; returns where it stopped (the end, or where doubt began). */
  private aligned(chunk: Uint8Array, pos: number): number {
    const end = chunk.length;
    const q = this.pending;
    if (q.length > 0) {
      const take = Math.min(WAVESHARE_FRAME_BYTES - q.length, end - pos);
      q.push(chunk.subarray(pos, pos + take));
      pos += take;
      if (q.length < WAVESHARE_FRAME_BYTES) return pos;
      const unit = q.view(WAVESHARE_FRAME_BYTES);
      const bad = this.checkAligned(unit, 0, this.history.subarray(0, this.historyLength), chunk.subarray(pos));
      // The read began after the bytes that were pending.
      if (bad !== null) this.loseAlignment(unit, 0, bad, WAVESHARE_FRAME_BYTES - take);
      else this.parseAt(unit, 0, true);
      this.history.set(unit.subarray(1));
      this.historyLength = WAVESHARE_FRAME_BYTES - 1;
      q.consume(WAVESHARE_FRAME_BYTES);
      if (this.hunting) return pos;
    }
    const first = pos;
    while (end - pos >= WAVESHARE_FRAME_BYTES) {
      const before = pos - first >= WAVESHARE_FRAME_BYTES - 1 ? chunk.subarray(pos - 12, pos) : this.history.subarray(0, this.historyLength);
      const bad = this.checkAligned(chunk, pos, before, EMPTY);
      if (bad === null) this.parseAt(chunk, pos, true);
      pos += WAVESHARE_FRAME_BYTES;
      if (bad !== null) {
        this.loseAlignment(chunk, pos - WAVESHARE_FRAME_BYTES, bad, -(pos - WAVESHARE_FRAME_BYTES));
        return pos;
      }
    }
    if (pos > first) {
      this.history.set(chunk.subarray(pos - 12, pos));
      this.historyLength = WAVESHARE_FRAME_BYTES - 1;
    }
    if (pos < end) q.push(chunk.subarray(pos, end));
    return end;
  }

  /**
   * Whether the unit at b[off] may be delivered at the trusted alignment: null if so, else why
   * not. A valid unit whose padding is not zero (the format pads with zeros) is also refused when
   * a unit at another alignment overlapping it reads as a clean frame: bytes were lost or added
   * and the stream now reads as a frame at two alignments (an Ampio frame shifted by 9 bytes is a
   * valid standard frame with junk padding). Junk padding alone is accepted. `before` holds the
   * bytes before the unit, `ahead` any beyond b, as far as they are at hand (a unit is never held
   * back waiting for more).
   */
  private checkAligned(b: Uint8Array, off: number, before: Uint8Array, ahead: Uint8Array): string | null {
    const bad = this.parseAt(b, off, false);
    if (bad !== null || this.classify(b, off) === CLEAN) return bad;
    const n = WAVESHARE_FRAME_BYTES;
    const tailEnd = Math.min(b.length, off + 3 * n - 2);
    const after = b.subarray(off + n, tailEnd);
    const more = ahead.subarray(0, Math.max(0, 2 * n - 2 - after.length));
    const s = new Uint8Array(before.length + n + after.length + more.length);
    s.set(before, 0);
    s.set(b.subarray(off, off + n), before.length);
    s.set(after, before.length + n);
    s.set(more, before.length + n + after.length);
    const at = before.length;
    for (let i = 1; i < n; i++) {
      const earlier = at - i >= 0 && this.classify(s, at - i) === CLEAN;
      const later = at + i + n <= s.length && this.classify(s, at + i) === CLEAN;
      if (earlier || later) return "padding not zero and another alignment reads a frame";
    }
    return null;
  }

  /** The unit at b[off] was invalid: reject it and start looking at every alignment. */
  private loseAlignment(b: Uint8Array, off: number, reason: string, readStart: number): void {
    this.reject(reason);
    this.hunting = true;
    // Alignments are counted from the invalid unit's first byte (phase 0 = the old alignment).
    this.phase = 0;
    // Only a read that started inside the invalid unit tells something about what follows it (a
    // read that started with it may start with the garbage itself).
    this.readStarts = readStart > 0 && readStart < WAVESHARE_FRAME_BYTES ? 1 << readStart : 0;
    // Its last 12 bytes may begin the next unit at another alignment.
    this.window.set(b.subarray(off + 1, off + WAVESHARE_FRAME_BYTES), 0);
    this.windowLength = WAVESHARE_FRAME_BYTES - 1;
    this.skippedCount++;
    // The units at the 12 other alignments that end inside the invalid one: read them when the
    // bytes before it are at hand (the previous frame, same chunk); unknown ones count as valid,
    // so they keep the alignment in doubt until they have passed.
    let valid = 0;
    let clean = 0;
    for (let i = 1; i < WAVESHARE_FRAME_BYTES; i++) {
      // Unknown (bytes before this chunk): as plausible as can be for the 11 others, so they keep
      // the doubt; no evidence for the 12th (the unit before the next one at its alignment).
      const unknown = off - i < 0;
      const kind = unknown ? (i < WAVESHARE_FRAME_BYTES - 1 ? CLEAN : INVALID) : this.classify(b, off - i);
      if (kind !== INVALID) valid |= 1 << i;
      if (kind === CLEAN) clean |= 1 << i;
    }
    this.validRecent = valid;
    this.cleanRecent = clean & OTHERS;
    this.confirmIn = 0;
    this.heldValid = false;
    this.sinceOldUnit = 0;
  }

  /** In doubt: one byte at a time from chunk[pos]; returns where it stopped. */
  private hunt(chunk: Uint8Array, pos: number): number {
    const end = chunk.length;
    const w = this.window;
    // A read that starts here: a client writes whole frames, so the alignment a read starts at
    // is the likelier one when two alignments read equally well.
    if (pos === 0) this.readStarts |= 1 << this.phase;
    while (pos < end) {
      w[this.windowLength++] = chunk[pos++]!;
      const bytePhase = this.phase;
      this.phase = bytePhase === WAVESHARE_FRAME_BYTES - 1 ? 0 : bytePhase + 1;
      if (this.windowLength < WAVESHARE_FRAME_BYTES) continue;
      // The unit ending at this byte occupies the whole window; it starts at alignment this.phase.
      const kind = this.classify(w, 0);
      const atOld = ++this.sinceOldUnit === WAVESHARE_FRAME_BYTES;
      if (atOld) this.sinceOldUnit = 0;
      // No other alignment's latest unit is as plausible: the only clean one, the only valid one,
      // or the only valid one at which a read started.
      const only =
        (kind === CLEAN && (this.cleanRecent & OTHERS) === 0) ||
        (kind !== INVALID && (this.validRecent & OTHERS) === 0) ||
        (kind !== INVALID && (this.validRecent & SAME_PREVIOUS) !== 0 && this.onlyAtReadStart(this.phase, bytePhase));
      const confirming = this.confirmIn > 0 && --this.confirmIn === 0;
      // A candidate's confirmation must be the only reading at its turn too.
      this.validRecent = ((this.validRecent << 1) | (kind !== INVALID ? 1 : 0)) & (OTHERS | SAME_PREVIOUS);
      this.cleanRecent = ((this.cleanRecent << 1) | (kind === CLEAN ? 1 : 0)) & OTHERS;
      if (only && (confirming || (atOld && kind === CLEAN))) {
        // The old alignment read one way only (one bad frame, the stream was never shifted), or
        // a candidate confirmed by the next unit at its alignment: aligned again.
        if (confirming && this.heldValid) this.parseAt(this.held, 0, true);
        this.heldValid = false;
        this.confirmIn = 0;
        this.parseAt(w, 0, true);
        this.hunting = false;
        this.resyncCount++;
        this.history.set(w.subarray(1));
        this.historyLength = WAVESHARE_FRAME_BYTES - 1;
        this.windowLength = 0;
        return pos;
      }
      if (confirming) this.heldValid = false;
      if (this.confirmIn === 0 && only) {
        // A candidate at another alignment: held until the next unit there confirms it.
        this.held.set(w);
        this.heldValid = true;
        this.confirmIn = WAVESHARE_FRAME_BYTES;
      }
      // A unit's worth of bytes at the old alignment went undelivered.
      if (atOld) this.reject(kind !== INVALID ? "frame read while the framing was in doubt (resynchronising)" : "no frame at any alignment (resynchronising)");
      w.copyWithin(0, 1, WAVESHARE_FRAME_BYTES);
      this.skippedCount++;
      this.windowLength = WAVESHARE_FRAME_BYTES - 1;
    }
    // A held candidate is never delivered after the read that carried it (it would arrive late);
    // its confirmation can still realign the stream.
    this.heldValid = false;
    return pos;
  }

  /**
   * Whether the unit starting at alignment `unitPhase` is the only valid reading at which a read
   * started: a read started there, and at none of the alignments whose latest unit (ending 1..12
   * bytes before the byte at `bytePhase`) is valid.
   */
  private onlyAtReadStart(unitPhase: number, bytePhase: number): boolean {
    if ((this.readStarts & (1 << unitPhase)) === 0) return false;
    for (let i = 0; i < WAVESHARE_FRAME_BYTES - 1; i++) {
      if ((this.validRecent & (1 << i)) === 0) continue;
      // Ended i+1 bytes before this byte, so it starts i bytes before this unit's phase... mod 13.
      if ((this.readStarts & (1 << mod13(bytePhase - i))) !== 0) return false;
    }
    return true;
  }

  /**
   * How plausible the 13 bytes at b[off] are as a frame: INVALID, VALID, or CLEAN (valid and
   * zero-padded as the format asks: bytes after the DLC, all data bytes of an RTR frame). Padding
   * is never required of an aligned frame; it only ranks alignments while in doubt.
   */
  private classify(b: Uint8Array, off: number): number {
    if (this.parseAt(b, off, false) !== null) return INVALID;
    const info = b[off]!;
    const first = (info & WAVESHARE_INFO_RTR) !== 0 ? 0 : info & DLC_MASK;
    for (let i = off + 5 + first; i < off + WAVESHARE_FRAME_BYTES; i++) if (b[i] !== 0) return VALID;
    return CLEAN;
  }

  /**
   * Checks the 13 bytes at b[off]; with `deliver` a valid frame goes to the sink. Returns null
   * when valid, else why not.
   */
  private parseAt(b: Uint8Array, off: number, deliver: boolean): string | null {
    const info = b[off]!;
    const dlc = info & DLC_MASK;
    if ((info & WAVESHARE_INFO_RESERVED) !== 0) return `reserved info bits set (0x${info.toString(16)})`;
    if (dlc > CAN_MAX_DLEN) return `DLC ${dlc} above 8`;
    const id = ((b[off + 1]! << 24) | (b[off + 2]! << 16) | (b[off + 3]! << 8) | b[off + 4]!) >>> 0;
    const ext = (info & WAVESHARE_INFO_EXTENDED) !== 0;
    if (ext ? id > CAN_EFF_MASK : id > CAN_SFF_MASK) {
      return `${ext ? "extended" : "standard"} id 0x${id.toString(16)} out of range`;
    }
    if (!deliver) return null;
    const rtr = (info & WAVESHARE_INFO_RTR) !== 0;
    const canId = ((ext ? id | CAN_EFF_FLAG : id) | (rtr ? CAN_RTR_FLAG : 0)) >>> 0;
    // An RTR frame has a DLC but no data; its padding bytes are ignored.
    const data = rtr || dlc === 0 ? EMPTY : b.slice(off + 5, off + 5 + dlc);
    this.sink({ canId, len: dlc, data, fd: false, fdFlags: 0 });
    return null;
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
