/**
 * What a DBC file describes, as the parser hands it to the codec: messages with their signals,
 * value tables, comments and the few attributes that change decoding (frame format). Plain data,
 * no behaviour; docs/dbc.md describes the subset of the DBC format we read.
 */

export type ByteOrder = "little_endian" | "big_endian";
/** How the raw bits are interpreted: two's complement / unsigned integer, or IEEE 754 (SIG_VALTYPE_ 1 / 2). */
export type ValueType = "unsigned" | "signed" | "float32" | "float64";

/** Raw values (integers) → names, from VAL_ or a VAL_TABLE_. */
export type ValueNames = ReadonlyMap<number, string>;

/** Which raw values of which multiplexor switch a signal on (simple `mN` or extended SG_MUL_VAL_). */
export interface MuxCondition {
  readonly multiplexor: string;
  /** Inclusive raw-value ranges. */
  readonly ranges: readonly (readonly [number, number])[];
}

export interface DbcSignal {
  readonly name: string;
  /** DBC start bit: the LSB for Intel (`@1`), the MSB in sawtooth numbering for Motorola (`@0`). */
  readonly startBit: number;
  readonly length: number;
  readonly byteOrder: ByteOrder;
  readonly valueType: ValueType;
  readonly factor: number;
  readonly offset: number;
  readonly min: number;
  readonly max: number;
  readonly unit: string;
  readonly receivers: readonly string[];
  /** This signal selects which multiplexed signals are present (`M`, or the `M` of `mNM`). */
  readonly isMultiplexor: boolean;
  /** Present only when this holds (null: always present). */
  readonly mux: MuxCondition | null;
  readonly comment: string;
  readonly valueNames: ValueNames;
  /** Source line of the SG_ (for messages about it). */
  readonly line: number;
}

export interface DbcMessage {
  /** The bare arbitration id (11 or 29 bits). */
  readonly id: number;
  readonly extended: boolean;
  /** CAN FD, from the VFrameFormat attribute or a length above 8. */
  readonly fd: boolean;
  readonly name: string;
  readonly length: number;
  readonly transmitter: string;
  readonly comment: string;
  readonly signals: readonly DbcSignal[];
  readonly line: number;
}

export interface DbcDatabase {
  readonly file: string;
  readonly version: string;
  readonly nodes: readonly string[];
  readonly messages: readonly DbcMessage[];
  /** Things read but doubtful (a signal past the message's length, a VAL_ for an unknown signal…). */
  readonly warnings: readonly string[];
}
