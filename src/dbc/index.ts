/** DBC support: parse a file's text, then decode and encode frames with a table built once. Pure. */
export { DbcCodec, DbcEncodeError, type DecodedMessage, type DecodedSignal, MessageCodec, type RawValue, SignalCodec, messageCanId } from "./codec.ts";
export type { ByteOrder, DbcDatabase, DbcMessage, DbcSignal, MuxCondition, ValueNames, ValueType } from "./model.ts";
export { DbcParseError, dbcText, parseDbc, signalBits } from "./parser.ts";
