/**
 * socketcand ASCII codec (docs/protocols.md §8): a resumable reader that cuts the client's
 * byte stream into `< … >` commands, a parser for the raw-mode `< send ID DLC b0 … >` command, and
 * the batch encoder for bus frames `< frame ID SEC.USEC DATA >`. No I/O; the session state machine
 * lives in protocol.ts.
 *
 * Framing follows socketcand's `receive_command()` (src/socketcand.c): an element runs from a `<`
 * to the first `>` after it (a `<` inside is part of the body), and bytes before the next `<` are
 * thrown away without a reply. So garbage between elements is skipped, never fatal. socketcand
 * stalls on an element longer than its buffer; this reader instead skips an element longer than
 * SOCKETCAND_MAX_COMMAND up to its `>`, reporting it once, and keeps nothing of it.
 */
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_ERR_FLAG, CAN_MAX_DLEN, CAN_RTR_FLAG, CAN_SFF_MASK, type CanFrame, type StampedFrame } from "../../can/frame.ts";
import { ByteQueue } from "../byte-queue.ts";

/** Longest command body (between `<` and `>`) accepted; a send with 8 bytes needs about 40. */
export const SOCKETCAND_MAX_COMMAND = 512;

const LT = 0x3c; // <
const GT = 0x3e; // >

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/** The bytes of a reply element `< text >`. */
export function socketcandReply(text: string): Uint8Array {
  return new TextEncoder().encode(`< ${text} >`);
}

/**
 * Cuts a byte stream into command bodies (the text between `<` and `>`, untrimmed). The handler
 * returns false to stop reading (e.g. the session failed); the reader then ignores all input.
 * Never fails: bytes outside `< … >` are skipped (counted in `garbage`), an over-long command is
 * reported to `onReject` once and skipped up to its `>`. Holds at most SOCKETCAND_MAX_COMMAND bytes.
 */
export class CommandReader {
  // Holds the body of at most one unfinished command (≤ SOCKETCAND_MAX_COMMAND bytes).
  private readonly pending = new ByteQueue(64, SOCKETCAND_MAX_COMMAND);
  /** outside: between elements; body: inside `< …`; skip: inside an over-long element. */
  private state: "outside" | "body" | "skip" = "outside";
  private stopped = false;
  private garbageBytes = 0;
  private rejectedCount = 0;

  constructor(
    private readonly onCommand: (body: string) => boolean,
    private readonly onReject: (reason: string) => void = () => {},
  ) {}

  /** Bytes held for an unfinished command. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Non-whitespace bytes skipped outside `< … >` so far (whitespace between elements is normal). */
  get garbage(): number {
    return this.garbageBytes;
  }

  /** Over-long commands skipped so far. */
  get rejected(): number {
    return this.rejectedCount;
  }

  push(chunk: Uint8Array): void {
    if (this.stopped) return;
    const q = this.pending;
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.state === "outside") {
        const lt = chunk.indexOf(LT, pos);
        const stop = lt < 0 ? end : lt;
        for (let i = pos; i < stop; i++) if (!isSpace(chunk[i]!)) this.garbageBytes++;
        if (lt < 0) return;
        this.state = "body";
        pos = lt + 1;
        continue;
      }
      const gt = chunk.indexOf(GT, pos);
      if (this.state === "skip") {
        if (gt < 0) return;
        this.state = "outside";
        pos = gt + 1;
        continue;
      }
      const stop = gt < 0 ? end : gt;
      if (q.length + (stop - pos) > SOCKETCAND_MAX_COMMAND) {
        // Reported when the bound is crossed, so an endless element counts too; nothing is kept.
        q.clear();
        this.state = "skip";
        this.rejectedCount++;
        this.onReject(`command longer than ${SOCKETCAND_MAX_COMMAND} bytes skipped`);
        continue;
      }
      if (gt < 0) {
        q.push(chunk.subarray(pos, end));
        return;
      }
      let body: string;
      if (q.length === 0) body = latin1(chunk, pos, gt);
      else {
        q.push(chunk.subarray(pos, gt));
        body = latin1(q.view(q.length), 0, q.length);
        q.clear();
      }
      this.state = "outside";
      pos = gt + 1;
      if (!this.onCommand(body)) {
        this.stopped = true;
        return;
      }
    }
  }
}

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Splits a command body into words (the first is the command name). */
export function commandWords(body: string): string[] {
  return body.split(/[ \t\r\n]+/).filter((w) => w !== "");
}

const HEX_ID = /^[0-9a-fA-F]{1,8}$/;
const HEX_BYTE = /^[0-9a-fA-F]{1,2}$/;
const DLC_DIGIT = /^[0-9a-fA-F]$/;

/**
 * Parses the words of `send ID DLC b0 b1 …` into a classic data frame, or returns why it is not
 * one, with socketcand's rules (state_raw.c, `sscanf("%x %hhu %hhx…")`): ID is hex, extended when
 * written with 8 digits, standard (at most 0x7FF) with up to 3, and with 4 to 7 digits standard
 * up to 0x7FF and extended above (python-can 4.1 writes extended ids unpadded); DLC 0..8 (one digit; python-can writes
 * `{dlc:X}`) and equal to the number of data bytes; a byte is 1–2 hex digits, or a negative or
 * sign-extended value that `%hhx` reads as one byte (`-1` is 0xFF, as SavvyCAN writes it).
 * Where socketcand would silently truncate (a byte `100`, a 12-bit standard id) the send is refused.
 */
export function parseSend(words: readonly string[]): CanFrame | string {
  const idText = words[1];
  const dlcText = words[2];
  if (idText === undefined || dlcText === undefined) return "send needs an id and a dlc";
  let id: number;
  let ext: boolean;
  const signedId = HEX_ID.test(idText) ? parseInt(idText, 16) : signedHex(idText, 32);
  if (signedId === null) return `bad id "${printable(idText)}"`;
  if (signedId > CAN_EFF_MASK) {
    // SavvyCAN marks extended ids with bit 31 (the SocketCAN EFF flag) in the id it writes.
    if ((signedId & (CAN_EFF_FLAG | 0x60000000)) >>> 0 !== CAN_EFF_FLAG) return `id ${printable(idText)} above 0x1FFFFFFF`;
    id = signedId & CAN_EFF_MASK;
    ext = true;
  } else {
    id = signedId;
    // socketcand (state_raw.c) makes an id extended exactly when it is written with 8 characters
    // and sends any other as a standard id, even one above 0x7FF (which the bus cannot carry).
    // Up to 3 digits is a standard id here too, so `800` is refused. python-can 4.1 writes
    // extended ids unpadded (`{id:X}`, e.g. `F001D4C`), so 4 to 7 digits above 0x7FF stay
    // extended: socketcand would have corrupted them, so no client can mean anything else.
    ext = idText.length === 8 || (idText.length > 3 && id > CAN_SFF_MASK);
    if (!ext && id > CAN_SFF_MASK) return `id ${printable(idText)} is not a standard id (0..7FF); write an extended id with 8 hex digits`;
  }
  if (!DLC_DIGIT.test(dlcText)) return `bad dlc "${printable(dlcText)}"`;
  const dlc = parseInt(dlcText, 16);
  if (dlc > CAN_MAX_DLEN) return `dlc ${dlc} above 8`;
  const n = words.length - 3;
  if (n !== dlc) return `dlc ${dlc} but ${n} data bytes`;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const w = words[3 + i]!;
    const b = HEX_BYTE.test(w) ? parseInt(w, 16) : signedHex(w, 8);
    if (b === null) return `bad data byte "${printable(w)}"`;
    data[i] = b;
  }
  return { canId: (ext ? id | CAN_EFF_FLAG : id) >>> 0, len: n, data, fd: false, fdFlags: 0 };
}

/**
 * SavvyCAN formats ids and data bytes as signed C integers in hex, so a byte >= 0x80 arrives as a
 * negative number ("-1") or sign-extended ("ffffffffffffffff"), and an id with bit 31 set may
 * arrive negative too. Returns the two's-complement value in `bits` bits for those negative forms
 * (null for anything else, including plain positive hex, which the caller handles).
 */
function signedHex(word: string, bits: 8 | 32): number | null {
  let v: bigint;
  if (/^-[0-9a-fA-F]{1,16}$/.test(word)) v = -BigInt("0x" + word.slice(1));
  else if (/^[0-9a-fA-F]{8,16}$/.test(word) && (word.length === 8 || word.length === 16)) v = BigInt.asIntN(word.length * 4, BigInt("0x" + word));
  else return null;
  if (v >= 0n || v < -(1n << BigInt(bits - 1))) return null;
  return Number(BigInt.asUintN(bits, v));
}

/** A client-supplied word made safe to echo in a reply: printable ASCII except < >, at most 40 chars. */
export function printable(word: string): string {
  const s = word.length > 40 ? word.slice(0, 40) : word;
  return s.replace(/[^\x21-\x3b\x3d\x3f-\x7e]/g, "?");
}

/**
 * Whether a bus frame has a raw-mode representation: `< frame >` carries an id and data bytes
 * only, so there is no way to mark an RTR, CAN FD or error frame. Sending one would make the
 * client see an ordinary data frame that was never on the bus, so such frames are not sent.
 */
export function socketcandCanCarry(f: CanFrame): boolean {
  return !f.fd && (f.canId & (CAN_RTR_FLAG | CAN_ERR_FLAG)) === 0 && f.data.length <= CAN_MAX_DLEN;
}

const HEX_DIGITS = Uint8Array.from("0123456789ABCDEF", (c) => c.charCodeAt(0));
// " < frame ": the leading space is deliberate, see encodeSocketcandFrames.
const FRAME_PREFIX = Uint8Array.from(" < frame ", (c) => c.charCodeAt(0));

/** `SEC.USEC` (microseconds zero-padded to 6) for a time in microseconds since the epoch. */
export function socketcandTimestamp(us: number): string {
  const t = Math.max(0, Math.floor(us));
  const sec = Math.floor(t / 1e6);
  return `${sec}.${String(t - sec * 1e6).padStart(6, "0")}`;
}

/**
 * Encodes frames[0..count) as ` < frame ID SEC.USEC DATA >` elements in one buffer; frames without
 * a raw-mode form (see socketcandCanCarry) are skipped. ID is `%03X` (standard) or `%08X`
 * (extended), DATA `%02X` per byte without spaces, as socketcand prints them; with no data the
 * element still has both spaces (`< frame 123 1.000000  >`), which python-can needs to parse it.
 * Every element is preceded by one space: python-can 4.1 drops the character after the last
 * complete element of each recv(), which without a separator costs one frame per read boundary;
 * clients locate elements by `<`, so the space is harmless to them. Each frame carries its own
 * time: when it reached the gateway (StampedFrame.ts).
 */
export function encodeSocketcandFrames(frames: readonly StampedFrame[], count: number): Uint8Array {
  // prefix + id + " " + ts + " " + data + " >"
  const fixed = FRAME_PREFIX.length + 1 + 1 + 2;
  let size = 0;
  const stamps: string[] = new Array<string>(count);
  let lastUs = -1;
  let lastText = "";
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    if (!socketcandCanCarry(f)) continue;
    if (f.ts !== lastUs) {
      lastUs = f.ts;
      lastText = socketcandTimestamp(f.ts);
    }
    stamps[i] = lastText;
    size += fixed + lastText.length + ((f.canId & CAN_EFF_FLAG) !== 0 ? 8 : 3) + 2 * f.data.length;
  }
  const out = new Uint8Array(size);
  let p = 0;
  for (let i = 0; i < count; i++) {
    const f = frames[i]!;
    if (!socketcandCanCarry(f)) continue;
    out.set(FRAME_PREFIX, p);
    p += FRAME_PREFIX.length;
    const ext = (f.canId & CAN_EFF_FLAG) !== 0;
    const id = ext ? f.canId & CAN_EFF_MASK : f.canId & CAN_SFF_MASK;
    for (let shift = ext ? 28 : 8; shift >= 0; shift -= 4) out[p++] = HEX_DIGITS[(id >>> shift) & 0xf]!;
    out[p++] = 0x20;
    const ts = stamps[i]!;
    for (let k = 0; k < ts.length; k++) out[p++] = ts.charCodeAt(k);
    out[p++] = 0x20;
    const d = f.data;
    for (let k = 0; k < d.length; k++) {
      const b = d[k]!;
      out[p++] = HEX_DIGITS[b >> 4]!;
      out[p++] = HEX_DIGITS[b & 0xf]!;
    }
    out[p++] = 0x20;
    out[p++] = GT;
  }
  return out;
}
