/**
 * Table-driven DBC decoding and encoding. `DbcCodec` is built once per database: every message
 * gets an entry keyed by its SocketCAN id word (extended flag included), and every signal a
 * prebuilt extractor (first/last byte, shift, sign, scale) so that decoding a frame is a map
 * lookup plus a few byte reads per signal. Multiplexed signals are decoded only when their
 * multiplexor's raw value selects them (simple `mN` and extended SG_MUL_VAL_ alike). Encoding is
 * the inverse: signal values (physical numbers or value-table names) to frame bytes. Pure.
 */
import { CAN_EFF_FLAG, type CanFrame, dataFrame, fdFrame, isValidFdLength } from "../can/frame.ts";
import type { DbcDatabase, DbcMessage, DbcSignal } from "./model.ts";
import { signalBits } from "./parser.ts";

export type RawValue = number | bigint;

export interface DecodedSignal {
  readonly name: string;
  /** Physical value: raw × factor + offset (IEEE value for float signals). */
  readonly value: number;
  /** Raw integer as on the bus (bigint only for integers wider than 53 bits). */
  readonly raw: RawValue;
  readonly unit: string;
  /** The value-table name of the raw value, when the DBC has one. */
  readonly valueName: string | undefined;
}

export interface DecodedMessage {
  readonly message: DbcMessage;
  readonly signals: DecodedSignal[];
}

export class DbcEncodeError extends Error {
  override name = "DbcEncodeError";
}

const scratch = new DataView(new ArrayBuffer(8));
/** Widest span (bytes) read with doubles: 6 bytes = 48 bits stays exact below 2^53. */
const NUMBER_SPAN_BYTES = 6;

/** One signal's prebuilt extractor and converter. */
export class SignalCodec {
  readonly name: string;
  readonly key: string;
  /** Index of the byte past the last one the signal needs (frames shorter than this lack it). */
  readonly needBytes: number;
  private readonly lo: number;
  private readonly hi: number;
  private readonly shiftDiv: number;
  private readonly shift: number;
  private readonly modulus: number;
  private readonly half: number;
  private readonly little: boolean;
  private readonly wide: boolean;
  private readonly signed: boolean;
  private readonly kind: 0 | 1 | 2; // integer, float32, float64
  readonly factor: number;
  readonly offset: number;
  /** Index (in the message's signal list) of the multiplexor that gates this signal, or -1. */
  muxIndex = -1;
  /** This signal's index in its message's signal list. */
  index = 0;
  private readonly muxRanges: readonly (readonly [number, number])[];

  constructor(
    readonly signal: DbcSignal,
    messageName: string,
  ) {
    this.name = signal.name;
    this.key = `${messageName}.${signal.name}`;
    const { first, last } = signalBits(signal.startBit, signal.length, signal.byteOrder);
    this.little = signal.byteOrder === "little_endian";
    this.lo = first >> 3;
    this.hi = last >> 3;
    this.needBytes = this.hi + 1;
    // Intel: bytes hi..lo assembled MSB first, shifted right by the start bit within its byte.
    // Motorola: bytes lo..hi assembled MSB first, shifted right by the bits after the LSB.
    this.shift = this.little ? first & 7 : 7 - (last & 7);
    this.shiftDiv = 2 ** this.shift;
    this.modulus = 2 ** signal.length;
    this.half = 2 ** (signal.length - 1);
    this.wide = this.hi - this.lo + 1 > NUMBER_SPAN_BYTES;
    this.signed = signal.valueType === "signed";
    this.kind = signal.valueType === "float32" ? 1 : signal.valueType === "float64" ? 2 : 0;
    this.factor = signal.factor;
    this.offset = signal.offset;
    this.muxRanges = signal.mux?.ranges ?? [];
  }

  /** The raw value from frame bytes (the caller checked data.length ≥ needBytes). */
  extract(data: Uint8Array): RawValue {
    if (this.wide) return this.extractWide(data);
    let v = 0;
    if (this.little) for (let i = this.hi; i >= this.lo; i--) v = v * 256 + (data[i] as number);
    else for (let i = this.lo; i <= this.hi; i++) v = v * 256 + (data[i] as number);
    v = Math.floor(v / this.shiftDiv) % this.modulus;
    if (this.signed && v >= this.half) v -= this.modulus;
    return v;
  }

  private extractWide(data: Uint8Array): RawValue {
    let v = 0n;
    if (this.little) for (let i = this.hi; i >= this.lo; i--) v = (v << 8n) | BigInt(data[i] as number);
    else for (let i = this.lo; i <= this.hi; i++) v = (v << 8n) | BigInt(data[i] as number);
    v = BigInt.asUintN(this.signal.length, v >> BigInt(this.shift));
    if (this.kind === 2) return v;
    if (this.signed) v = BigInt.asIntN(this.signal.length, v);
    // Integers that fit a double exactly stay numbers (most 54..64-bit spans are narrower signals).
    return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  }

  /** Physical value of a raw value. */
  physical(raw: RawValue): number {
    let x: number;
    if (this.kind === 1) {
      scratch.setUint32(0, Number(raw));
      x = scratch.getFloat32(0);
    } else if (this.kind === 2) {
      scratch.setBigUint64(0, BigInt(raw));
      x = scratch.getFloat64(0);
    } else {
      x = typeof raw === "number" ? raw : Number(raw);
    }
    return x * this.factor + this.offset;
  }

  valueName(raw: RawValue): string | undefined {
    if (this.signal.valueNames.size === 0 || this.kind !== 0) return undefined;
    return this.signal.valueNames.get(Number(raw));
  }

  /** Whether a multiplexor raw value switches this signal on. */
  selectedBy(muxRaw: number): boolean {
    for (const [a, b] of this.muxRanges) if (muxRaw >= a && muxRaw <= b) return true;
    return false;
  }

  decode(data: Uint8Array): DecodedSignal {
    const raw = this.extract(data);
    return { name: this.name, value: this.physical(raw), raw, unit: this.signal.unit, valueName: this.valueName(raw) };
  }

  /** Raw value for a physical value or a value-table name; throws DbcEncodeError when it does not fit. */
  toRaw(value: number | string): bigint {
    const sig = this.signal;
    let phys: number;
    if (typeof value === "string") {
      for (const [raw, name] of sig.valueNames) if (name === value) return this.checkRaw(BigInt(raw), value);
      // Integers wider than a double (64-bit counters) given as a decimal string stay exact.
      if (this.kind === 0 && this.factor === 1 && this.offset === 0 && /^-?\d+$/.test(value.trim())) {
        const raw = BigInt(value.trim());
        this.checkRange(Number(raw));
        return this.checkRaw(raw, value);
      }
      const n = Number(value);
      if (value.trim() === "" || !Number.isFinite(n)) {
        const names = [...sig.valueNames.values()];
        throw new DbcEncodeError(`${this.key}: '${value}' is not a number${names.length > 0 ? ` nor one of ${names.map((x) => `'${x}'`).join(", ")}` : ""}`);
      }
      phys = n;
    } else {
      phys = value;
    }
    if (!Number.isFinite(phys)) throw new DbcEncodeError(`${this.key}: ${phys} is not a finite number`);
    this.checkRange(phys);
    const x = (phys - this.offset) / this.factor;
    // A finite value can still scale past what the signal holds (no min/max in the DBC, tiny
    // factor): refused here instead of sending Infinity bits or failing BigInt() with a RangeError.
    if (this.kind === 1 && !Number.isFinite(Math.fround(x))) throw new DbcEncodeError(`${this.key}: ${phys} needs raw ${x}, beyond an IEEE float`);
    if (this.kind === 2 && !Number.isFinite(x)) throw new DbcEncodeError(`${this.key}: ${phys} needs raw ${x}, beyond an IEEE double`);
    if (this.kind === 0 && !Number.isFinite(x)) throw new DbcEncodeError(`${this.key}: ${phys} needs raw ${x}, outside the ${this.signal.length}-bit ${this.signed ? "signed" : "unsigned"} range`);
    if (this.kind === 1) {
      scratch.setFloat32(0, x);
      return BigInt(scratch.getUint32(0));
    }
    if (this.kind === 2) {
      scratch.setFloat64(0, x);
      return scratch.getBigUint64(0);
    }
    return this.checkRaw(BigInt(Math.round(x)), phys);
  }

  /** The DBC's [min|max] (when it gives one, min < max) holds for every way a value is given. */
  private checkRange(phys: number): void {
    const sig = this.signal;
    if (sig.min < sig.max && (phys < sig.min - 1e-9 * Math.abs(sig.min) || phys > sig.max + 1e-9 * Math.abs(sig.max))) {
      throw new DbcEncodeError(`${this.key}: ${phys} is outside the signal's range [${sig.min}, ${sig.max}]`);
    }
  }

  private checkRaw(raw: bigint, shown: number | string): bigint {
    const len = BigInt(this.signal.length);
    const lo = this.signed ? -(1n << (len - 1n)) : 0n;
    const hi = this.signed ? (1n << (len - 1n)) - 1n : (1n << len) - 1n;
    if (raw < lo || raw > hi) throw new DbcEncodeError(`${this.key}: ${shown} needs raw ${raw}, outside the ${this.signal.length}-bit ${this.signed ? "signed" : "unsigned"} range ${lo}..${hi}`);
    return raw;
  }

  /** Writes a raw value's bits into frame bytes (bit by bit: encoding is rare, clarity wins). */
  insert(data: Uint8Array, raw: bigint): void {
    const sig = this.signal;
    const u = BigInt.asUintN(sig.length, raw);
    const { first, last } = signalBits(sig.startBit, sig.length, sig.byteOrder);
    for (let k = 0; k < sig.length; k++) {
      const bit = Number((u >> BigInt(k)) & 1n);
      // Intel: value bit k at linear bit first+k (LSB first). Motorola: at last-k (LSB at the end).
      const p = this.little ? first + k : last - k;
      const byte = p >> 3;
      const mask = this.little ? 1 << (p & 7) : 1 << (7 - (p & 7));
      data[byte] = bit !== 0 ? (data[byte] as number) | mask : (data[byte] as number) & ~mask;
    }
  }
}

export class MessageCodec {
  readonly signals: SignalCodec[];
  /** Signals in an order where every multiplexor comes before what it gates. */
  readonly order: SignalCodec[];
  readonly multiplexed: boolean;
  readonly canId: number;

  constructor(readonly message: DbcMessage) {
    this.canId = messageCanId(message);
    this.signals = message.signals.map((s) => new SignalCodec(s, message.name));
    this.signals.forEach((s, i) => (s.index = i));
    const index = new Map(this.signals.map((s, i) => [s.name, i]));
    for (const s of this.signals) if (s.signal.mux !== null) s.muxIndex = index.get(s.signal.mux.multiplexor) ?? -1;
    this.multiplexed = this.signals.some((s) => s.muxIndex >= 0);
    const depth = (s: SignalCodec): number => (s.muxIndex < 0 ? 0 : 1 + depth(this.signals[s.muxIndex] as SignalCodec));
    this.order = this.multiplexed ? [...this.signals].sort((a, b) => depth(a) - depth(b)) : this.signals;
  }

  /**
   * Which signals a frame carries: for each signal (by index) whether it is present, given the
   * multiplexor raw values in `data` and the frame's length. `rawOut` receives the raw values of
   * the present signals.
   */
  presence(data: Uint8Array, present: Uint8Array, rawOut: RawValue[]): void {
    for (const s of this.order) {
      const i = s.index;
      let on = data.length >= s.needBytes;
      if (on && s.muxIndex >= 0) on = present[s.muxIndex] === 1 && s.selectedBy(Number(rawOut[s.muxIndex]));
      present[i] = on ? 1 : 0;
      if (on) rawOut[i] = s.extract(data);
    }
  }

  decode(data: Uint8Array): DecodedSignal[] {
    const out: DecodedSignal[] = [];
    if (!this.multiplexed) {
      for (const s of this.signals) if (data.length >= s.needBytes) out.push(s.decode(data));
      return out;
    }
    const present = new Uint8Array(this.signals.length);
    const raws: RawValue[] = new Array(this.signals.length);
    this.presence(data, present, raws);
    this.signals.forEach((s, i) => {
      if (present[i] !== 1) return;
      const raw = raws[i] as RawValue;
      out.push({ name: s.name, value: s.physical(raw), raw, unit: s.signal.unit, valueName: s.valueName(raw) });
    });
    return out;
  }

  /**
   * Frame bytes from signal values. Multiplexed messages encode the branch the given multiplexor
   * values select; a value for a signal outside that branch, or for an unknown signal, is an
   * error. Signals not given are 0 raw (multiplexors must be given when their branch has values).
   */
  encode(values: Readonly<Record<string, number | string>>): Uint8Array {
    const m = this.message;
    const data = new Uint8Array(m.length);
    const byName = new Map(this.signals.map((s, i) => [s.name, i]));
    for (const name of Object.keys(values)) if (!byName.has(name)) throw new DbcEncodeError(`${m.name}: no signal '${name}' (signals: ${this.signals.map((s) => s.name).join(", ")})`);
    const raws: (bigint | undefined)[] = new Array(this.signals.length);
    const present = new Uint8Array(this.signals.length);
    for (const s of this.order) {
      const i = s.index;
      const given = values[s.name];
      let on = true;
      if (s.muxIndex >= 0) {
        const muxRaw = raws[s.muxIndex];
        on = present[s.muxIndex] === 1 && muxRaw !== undefined && s.selectedBy(Number(muxRaw));
      }
      if (!on) {
        if (given !== undefined) {
          const mux = this.signals[s.muxIndex] as SignalCodec;
          throw new DbcEncodeError(`${m.name}: signal ${s.name} is not in the branch selected by ${mux.name}=${raws[s.muxIndex] ?? "(not given)"}`);
        }
        continue;
      }
      present[i] = 1;
      const raw = given === undefined ? 0n : s.toRaw(given);
      raws[i] = raw;
      if (given !== undefined && s.needBytes > m.length) throw new DbcEncodeError(`${s.key}: lies past the message's ${m.length} bytes`);
      if (s.needBytes <= m.length) s.insert(data, raw);
    }
    return data;
  }

  /** A frame of this message carrying `data`. */
  frame(data: Uint8Array): CanFrame {
    const m = this.message;
    if (m.fd || data.length > 8) {
      let len = data.length;
      while (!isValidFdLength(len)) len++;
      const padded = len === data.length ? data : Uint8Array.from({ length: len }, (_, i) => data[i] ?? 0);
      return fdFrame(m.id, padded, 0, m.extended);
    }
    return dataFrame(m.id, data, m.extended);
  }
}

/** The SocketCAN id word a message's frames carry (extended flag included, no RTR/ERR). */
export function messageCanId(m: DbcMessage): number {
  return m.extended ? ((m.id & 0x1fffffff) | CAN_EFF_FLAG) >>> 0 : m.id & 0x7ff;
}

export class DbcCodec {
  private readonly byCanId = new Map<number, MessageCodec>();
  private readonly byName = new Map<string, MessageCodec>();
  readonly messages: MessageCodec[];

  constructor(readonly db: DbcDatabase) {
    this.messages = db.messages.map((m) => new MessageCodec(m));
    for (const mc of this.messages) {
      if (!this.byCanId.has(mc.canId)) this.byCanId.set(mc.canId, mc);
      if (!this.byName.has(mc.message.name)) this.byName.set(mc.message.name, mc);
    }
  }

  /** The message for a frame's id word (RTR/ERR bits ignored by the caller), or undefined. */
  lookup(canId: number): MessageCodec | undefined {
    return this.byCanId.get((canId & (CAN_EFF_FLAG | 0x1fffffff)) >>> 0);
  }

  message(nameOrId: string | number): MessageCodec | undefined {
    if (typeof nameOrId === "number") return this.byCanId.get(nameOrId >>> 0) ?? this.byCanId.get(((nameOrId & 0x1fffffff) | CAN_EFF_FLAG) >>> 0);
    return this.byName.get(nameOrId);
  }

  /** Decodes a data frame of a known message; null for unknown ids, remote and error frames. */
  decode(f: CanFrame): DecodedMessage | null {
    if ((f.canId & 0x60000000) !== 0) return null;
    const mc = this.lookup(f.canId);
    if (mc === undefined) return null;
    return { message: mc.message, signals: mc.decode(f.data) };
  }

  /** A frame of message `name` from signal values (see MessageCodec.encode). */
  encode(name: string, values: Readonly<Record<string, number | string>>): CanFrame {
    const mc = this.byName.get(name);
    if (mc === undefined) throw new DbcEncodeError(`no message '${name}' in ${this.db.file}`);
    return mc.frame(mc.encode(values));
  }
}
