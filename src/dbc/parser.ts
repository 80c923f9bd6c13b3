/**
 * DBC parser: text in, a DbcDatabase out, or a DbcParseError naming the file, the line and what
 * was expected. Pure (the caller reads the file).
 *
 * Why our own parser and not a library: the npm DBC parser `candied` is unmaintained and drops
 * multiplexing (`M`/`mN`, `SG_MUL_VAL_`), which real files use; the other npm parsers are
 * either browser-bound or abandoned too. The subset of the format that matters for decoding is
 * small (BO_, SG_, VAL_, VAL_TABLE_, SIG_VALTYPE_, SG_MUL_VAL_, CM_, BA_DEF_/BA_ for the frame
 * format) and every other statement is skipped by its terminator, so a small recursive-descent
 * parser is shorter than adapting one — and it can say where a file is wrong.
 */
import type { ByteOrder, DbcDatabase, DbcMessage, DbcSignal, MuxCondition, ValueType } from "./model.ts";
import { DbcParseError, Scanner } from "./scanner.ts";

export { DbcParseError };

/** Statements we accept and skip up to their `;` (they do not change decoding). */
const SKIPPED = new Set([
  "BO_TX_BU_",
  "EV_",
  "ENVVAR_DATA_",
  "SGTYPE_",
  "SGTYPE_VAL_",
  "SIG_GROUP_",
  "SIG_TYPE_REF_",
  "SIGTYPE_VALTYPE_",
  "BA_DEF_REL_",
  "BA_REL_",
  "BA_DEF_DEF_REL_",
  "BA_DEF_SGTYPE_",
  "BA_SGTYPE_",
  "BU_SG_REL_",
  "BU_EV_REL_",
  "BU_BO_REL_",
  "CAT_DEF_",
  "CAT_",
  "FILTER",
  "NS_DESC_",
]);

/** Every statement keyword (the end of a BU_ node list). */
const KEYWORDS = new Set([...SKIPPED, "VERSION", "NS_", "BS_", "BU_", "VAL_TABLE_", "BO_", "SG_", "CM_", "BA_DEF_", "BA_DEF_DEF_", "BA_", "VAL_", "SIG_VALTYPE_", "SG_MUL_VAL_"]);

/** The pseudo-message Vector tools use to park signals that belong to no message. */
const INDEPENDENT_SIGNALS = "VECTOR__INDEPENDENT_SIG_MSG";

interface SignalDraft {
  name: string;
  startBit: number;
  length: number;
  byteOrder: ByteOrder;
  signed: boolean;
  valueType: ValueType;
  factor: number;
  offset: number;
  min: number;
  max: number;
  unit: string;
  receivers: string[];
  isMultiplexor: boolean;
  /** From `mN`: the raw multiplexor value (the multiplexor is resolved after the message). */
  muxValue: number | null;
  mux: MuxCondition | null;
  comment: string;
  valueNames: Map<number, string>;
  line: number;
}

interface MessageDraft {
  dbcId: number;
  id: number;
  extended: boolean;
  fd: boolean;
  name: string;
  length: number;
  transmitter: string;
  comment: string;
  signals: SignalDraft[];
  line: number;
}

type AttrValue = number | string;

/**
 * A DBC file's bytes as text: UTF-8 when they are valid UTF-8, else Windows-1252 (what Vector's
 * tools write; °, µ and – in units and comments).
 */
export function dbcText(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    return new TextDecoder("windows-1252").decode(bytes);
  }
}

export function parseDbc(text: string, file = "<dbc>"): DbcDatabase {
  return new DbcParser(text, file).parse();
}

class DbcParser {
  private readonly s: Scanner;
  private version = "";
  private nodes: string[] = [];
  private readonly messages: MessageDraft[] = [];
  private readonly byDbcId = new Map<number, MessageDraft>();
  private current: MessageDraft | null = null;
  private readonly valueTables = new Map<string, Map<number, string>>();
  private readonly warnings: string[] = [];
  /** Deferred references to messages/signals (they may come before or after BO_ in odd files). */
  private readonly deferred: (() => void)[] = [];
  private readonly enumDefs = new Map<string, string[]>();
  private readonly attrDefaults = new Map<string, AttrValue>();
  private readonly messageAttrs = new Map<number, Map<string, AttrValue>>();
  /** SystemSignalLongSymbol: Vector's way to carry signal names longer than 32 characters. */
  private readonly longSignalNames = new Map<string, string>();

  constructor(text: string, file: string) {
    this.s = new Scanner(text, file);
  }

  parse(): DbcDatabase {
    const s: Scanner = this.s;
    for (;;) {
      s.skipWs();
      if (s.eof()) break;
      const line = s.line;
      const kw = s.tryIdent();
      if (kw === null) s.fail("a DBC keyword (BO_, SG_, CM_, VAL_, …)");
      this.statement(kw, line);
    }
    for (const d of this.deferred) d();
    const messages = this.messages.filter((m) => m.name !== INDEPENDENT_SIGNALS).map((m) => this.finishMessage(m));
    return { file: s.file, version: this.version, nodes: this.nodes, messages, warnings: this.warnings };
  }

  private warn(line: number, text: string): void {
    this.warnings.push(`${this.s.file}:${line}: ${text}`);
  }

  private statement(kw: string, line: number): void {
    const s: Scanner = this.s;
    switch (kw) {
      case "VERSION":
        this.version = s.string("a quoted version after VERSION");
        return;
      case "NS_":
        s.punct(":", "after NS_");
        // The NS_ list is the indented lines that follow: skip them.
        s.skipLine();
        while (!s.eof()) {
          const c = s.src[s.pos];
          if (c === " " || c === "\t" || c === "\r" || c === "\n") s.skipLine();
          else break;
        }
        return;
      case "BS_":
        s.punct(":", "after BS_");
        s.skipLine();
        return;
      case "BU_":
        s.punct(":", "after BU_");
        // Node names up to the next statement (some files list them on indented lines).
        this.nodes = [];
        for (;;) {
          s.skipWs();
          const at = s.pos;
          const line0 = s.line;
          const id = s.eof() ? null : s.name("a node name in BU_");
          if (id === null || KEYWORDS.has(id)) {
            s.pos = at;
            s.line = line0;
            return;
          }
          this.nodes.push(id);
        }
      case "VAL_TABLE_": {
        const name = s.ident("a value table name after VAL_TABLE_");
        this.valueTables.set(name, this.valuePairs("VAL_TABLE_"));
        return;
      }
      case "BO_":
        this.message(line);
        return;
      case "SG_":
        this.signal(line);
        return;
      case "CM_":
        this.comment(line);
        return;
      case "BA_DEF_":
        this.attributeDefinition(line);
        return;
      case "BA_DEF_DEF_": {
        const name = s.string("a quoted attribute name after BA_DEF_DEF_");
        this.attrDefaults.set(name, this.attrValue("BA_DEF_DEF_"));
        s.punct(";", "ending BA_DEF_DEF_");
        return;
      }
      case "BA_":
        this.attribute(line);
        return;
      case "VAL_":
        this.values(line);
        return;
      case "SIG_VALTYPE_":
        this.valueType(line);
        return;
      case "SG_MUL_VAL_":
        this.muxValues(line);
        return;
      default:
        if (SKIPPED.has(kw)) {
          s.skipStatement(kw, line);
          return;
        }
        s.error(line, `unknown keyword '${kw}': expected a DBC keyword (BO_, SG_, CM_, VAL_, BA_, …)`);
    }
  }

  private message(line: number): void {
    const s: Scanner = this.s;
    const dbcId = s.integer("a message id (integer) after BO_");
    if (dbcId < 0 || dbcId > 0xffffffff) s.error(line, `message id ${dbcId} out of range (0..4294967295)`);
    const name = s.name("a message name after the BO_ id");
    s.punct(":", `after the message name ${name}`);
    const length = s.integer(`the length in bytes of message ${name}`);
    if (length < 0 || length > 64) s.error(line, `message ${name}: length ${length} out of range (0..64 bytes)`);
    const transmitter = s.atLineEnd() ? "" : s.name(`the transmitter node of message ${name}`);
    const extendedFlag = (dbcId & 0x80000000) !== 0;
    const id = extendedFlag ? dbcId & 0x1fffffff : dbcId;
    const msg: MessageDraft = { dbcId, id, extended: extendedFlag, fd: length > 8, name, length, transmitter, comment: "", signals: [], line };
    this.current = msg;
    if (name === INDEPENDENT_SIGNALS) return;
    if (!extendedFlag && id > 0x7ff) {
      this.warn(line, `message ${name}: id ${id} is above 0x7FF without the extended flag (bit 31); read as an extended id`);
      msg.extended = true;
    }
    const prev = this.byDbcId.get(dbcId);
    if (prev !== undefined) {
      this.warn(line, `message ${name}: id ${dbcId} already used by ${prev.name} (line ${prev.line}); ignored`);
      this.current = { ...msg, name: INDEPENDENT_SIGNALS };
      return;
    }
    this.byDbcId.set(dbcId, msg);
    this.messages.push(msg);
  }

  private signal(line: number): void {
    const s: Scanner = this.s;
    const msg = this.current;
    if (msg === null) s.error(line, "SG_ outside a message: expected a BO_ before the first SG_");
    const name = s.name("a signal name after SG_");
    let isMultiplexor = false;
    let muxValue: number | null = null;
    if (s.peek() !== ":") {
      const ind = s.ident(`a multiplexer indicator (M, m<n> or m<n>M) or ':' after signal ${name}`);
      const m = /^(?:(M)|m(\d+)(M?))$/.exec(ind);
      if (m === null) s.error(line, `signal ${name}: expected a multiplexer indicator (M, m<n> or m<n>M), got '${ind}'`);
      if (m[1] === "M") isMultiplexor = true;
      else {
        muxValue = Number(m[2]);
        isMultiplexor = m[3] === "M";
      }
    }
    s.punct(":", `after signal ${name}`);
    const startBit = s.integer(`the start bit of signal ${name}`);
    s.punct("|", `between start bit and length of signal ${name}`);
    const length = s.integer(`the bit length of signal ${name}`);
    s.punct("@", `before the byte order of signal ${name}`);
    const order = s.charOf("01", `the byte order of signal ${name} (@0 Motorola or @1 Intel)`);
    const sign = s.charOf("+-", `the signedness of signal ${name} ('+' unsigned or '-' signed)`);
    s.punct("(", `before the factor of signal ${name}`);
    const factor = s.number(`the factor of signal ${name} (a number)`);
    s.punct(",", `between factor and offset of signal ${name}`);
    const offset = s.number(`the offset of signal ${name} (a number)`);
    s.punct(")", `after the offset of signal ${name}`);
    s.punct("[", `before the minimum of signal ${name}`);
    const min = s.limit(`the minimum of signal ${name} (a number)`);
    s.punct("|", `between minimum and maximum of signal ${name}`);
    const max = s.limit(`the maximum of signal ${name} (a number)`);
    s.punct("]", `after the maximum of signal ${name}`);
    const unit = s.string(`the quoted unit of signal ${name}`);
    const receivers: string[] = [];
    while (!s.atLineEnd()) {
      if (s.tryPunct(",")) continue;
      receivers.push(s.name(`a receiver node of signal ${name}`));
    }
    const byteOrder: ByteOrder = order === "1" ? "little_endian" : "big_endian";
    // Not decodable into a number (J1939 multi-packet text fields, 0-bit placeholders): kept out, said so.
    if (length < 1 || length > 64) {
      this.warn(line, `signal ${msg.name}.${name}: ${length} bits cannot be decoded as a number (1..64); skipped`);
      return;
    }
    const bits = signalBits(startBit, length, byteOrder);
    if (bits.first < 0 || bits.last > 511) {
      this.warn(line, `signal ${msg.name}.${name}: bits ${startBit}|${length}@${order} fall outside a 64-byte frame; skipped`);
      return;
    }
    if (msg.name !== INDEPENDENT_SIGNALS && bits.last >= msg.length * 8) {
      this.warn(line, `signal ${msg.name}.${name} reaches bit ${bits.last}, past the message's ${msg.length} bytes (decoded only from frames long enough)`);
    }
    msg.signals.push({
      name,
      startBit,
      length,
      byteOrder,
      signed: sign === "-",
      valueType: sign === "-" ? "signed" : "unsigned",
      factor,
      offset,
      min,
      max,
      unit,
      receivers,
      isMultiplexor,
      muxValue,
      mux: null,
      comment: "",
      valueNames: new Map(),
      line,
    });
  }

  private valuePairs(keyword: string): Map<number, string> {
    const s: Scanner = this.s;
    const out = new Map<number, string>();
    while (!s.tryPunct(";")) {
      const v = s.number(`a value (number) or ';' in ${keyword}`);
      out.set(v, s.string(`the quoted name of value ${v} in ${keyword}`));
    }
    return out;
  }

  private signalRef(keyword: string, line: number, dbcId: number, sigName: string, use: (sig: SignalDraft, msg: MessageDraft) => void): void {
    this.deferred.push(() => {
      const msg = this.byDbcId.get(dbcId);
      const sig = msg?.signals.find((x) => x.name === sigName);
      if (msg === undefined || sig === undefined) {
        if (msg?.name !== INDEPENDENT_SIGNALS) this.warn(line, `${keyword} for unknown signal ${sigName} of message id ${dbcId}; ignored`);
        return;
      }
      use(sig, msg);
    });
  }

  private comment(line: number): void {
    const s: Scanner = this.s;
    const next = s.peek();
    if (next === '"') {
      s.string("the comment text");
    } else {
      const kind = s.ident("BU_, BO_, SG_, EV_ or a quoted comment after CM_");
      if (kind === "BO_") {
        const id = s.integer("a message id after CM_ BO_");
        const text = s.string("the quoted comment after CM_ BO_ <id>");
        this.deferred.push(() => {
          const m = this.byDbcId.get(id);
          if (m !== undefined) m.comment = text;
        });
      } else if (kind === "SG_") {
        const id = s.integer("a message id after CM_ SG_");
        const sig = s.name("a signal name after CM_ SG_ <id>");
        const text = s.string("the quoted comment after CM_ SG_ <id> <signal>");
        this.signalRef("CM_", line, id, sig, (x) => (x.comment = text));
      } else if (kind === "BU_" || kind === "EV_") {
        s.ident(`a name after CM_ ${kind}`);
        s.string(`the quoted comment after CM_ ${kind} <name>`);
      } else {
        s.error(line, `CM_: expected BU_, BO_, SG_, EV_ or a quoted comment, got '${kind}'`);
      }
    }
    s.punct(";", "ending CM_");
  }

  private attrValue(keyword: string): AttrValue {
    const s: Scanner = this.s;
    if (s.peek() === '"') return s.string(`the attribute value in ${keyword}`);
    return s.number(`the attribute value (number or quoted string) in ${keyword}`);
  }

  private attributeDefinition(line: number): void {
    const s: Scanner = this.s;
    if (s.peek() !== '"') {
      const kind = s.ident(`BU_, BO_, SG_, EV_ or a quoted attribute name after BA_DEF_`);
      if (!["BU_", "BO_", "SG_", "EV_"].includes(kind)) s.error(line, `BA_DEF_: expected BU_, BO_, SG_, EV_ or a quoted attribute name, got '${kind}'`);
    }
    const name = s.string("a quoted attribute name in BA_DEF_");
    const type = s.ident(`the type of attribute ${name} (INT, HEX, FLOAT, STRING or ENUM)`);
    if (type === "ENUM") {
      const values: string[] = [];
      while (!s.tryPunct(";")) {
        if (s.tryPunct(",")) continue;
        values.push(s.string(`a quoted ENUM value or ';' in BA_DEF_ ${name}`));
      }
      this.enumDefs.set(name, values);
      return;
    }
    if (!["INT", "HEX", "FLOAT", "STRING"].includes(type)) s.error(line, `BA_DEF_ ${name}: expected a type INT, HEX, FLOAT, STRING or ENUM, got '${type}'`);
    while (!s.tryPunct(";")) s.number(`a limit (number) or ';' in BA_DEF_ ${name}`);
  }

  private attribute(line: number): void {
    const s: Scanner = this.s;
    const name = s.string("a quoted attribute name after BA_");
    let messageId: number | null = null;
    if (s.peek() !== '"' && !s.isNumberNext()) {
      const kind = s.ident(`BU_, BO_, SG_, EV_ or a value in BA_ ${name}`);
      if (kind === "BO_") messageId = s.integer(`a message id in BA_ ${name} BO_`);
      else if (kind === "SG_") {
        const id = s.integer(`a message id in BA_ ${name} SG_`);
        const sig = s.name(`a signal name in BA_ ${name} SG_ <id>`);
        const value = this.attrValue(`BA_ ${name}`);
        s.punct(";", `ending BA_ ${name}`);
        if (name === "SystemSignalLongSymbol" && typeof value === "string" && value !== "") this.longSignalNames.set(`${id} ${sig}`, value);
        return;
      } else if (kind === "BU_" || kind === "EV_") s.ident(`a name in BA_ ${name} ${kind}`);
      else s.error(line, `BA_ ${name}: expected BU_, BO_, SG_, EV_ or a value, got '${kind}'`);
    }
    const value = this.attrValue(`BA_ ${name}`);
    s.punct(";", `ending BA_ ${name}`);
    if (messageId !== null) {
      let attrs = this.messageAttrs.get(messageId);
      if (attrs === undefined) this.messageAttrs.set(messageId, (attrs = new Map()));
      attrs.set(name, value);
    }
  }

  private values(line: number): void {
    const s: Scanner = this.s;
    if (!s.isNumberNext()) {
      // VAL_ for an environment variable: not a bus signal.
      s.ident("a message id or environment variable after VAL_");
      s.skipStatement("VAL_", line);
      return;
    }
    const id = s.integer("a message id after VAL_");
    const sig = s.name("a signal name after VAL_ <id>");
    const pairs = this.valuePairs(`VAL_ ${id} ${sig}`);
    this.signalRef("VAL_", line, id, sig, (x) => (x.valueNames = pairs));
  }

  private valueType(line: number): void {
    const s: Scanner = this.s;
    const id = s.integer("a message id after SIG_VALTYPE_");
    const sig = s.name("a signal name after SIG_VALTYPE_ <id>");
    s.tryPunct(":");
    const t = s.integer(`the value type of ${sig} (0 integer, 1 float, 2 double)`);
    s.punct(";", "ending SIG_VALTYPE_");
    if (t !== 0 && t !== 1 && t !== 2) s.error(line, `SIG_VALTYPE_ ${sig}: expected 0 (integer), 1 (IEEE float) or 2 (IEEE double), got ${t}`);
    this.signalRef("SIG_VALTYPE_", line, id, sig, (x, m) => {
      if (t === 0) return;
      const bits = t === 1 ? 32 : 64;
      if (x.length !== bits) s.error(line, `SIG_VALTYPE_ ${m.name}.${sig}: ${t === 1 ? "an IEEE float" : "an IEEE double"} needs ${bits} bits, the signal has ${x.length}`);
      x.valueType = t === 1 ? "float32" : "float64";
    });
  }

  private muxValues(line: number): void {
    const s: Scanner = this.s;
    const id = s.integer("a message id after SG_MUL_VAL_");
    const sig = s.name("a signal name after SG_MUL_VAL_ <id>");
    const mux = s.name(`the multiplexor switch name in SG_MUL_VAL_ ${sig}`);
    const text = s.untilSemicolon("SG_MUL_VAL_", line);
    const ranges: [number, number][] = [];
    for (const part of text.split(",")) {
      const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(part);
      if (m === null) s.error(line, `SG_MUL_VAL_ ${sig}: expected value ranges like '1-1, 3-5', got '${part.trim()}'`);
      const lo = Number(m[1]);
      const hi = Number(m[2]);
      if (hi < lo) s.error(line, `SG_MUL_VAL_ ${sig}: range ${lo}-${hi} is empty`);
      ranges.push([lo, hi]);
    }
    this.signalRef("SG_MUL_VAL_", line, id, sig, (x, m) => {
      const sw = m.signals.find((y) => y.name === mux);
      if (sw === undefined || !sw.isMultiplexor) s.error(line, `SG_MUL_VAL_ ${m.name}.${sig}: '${mux}' is not a multiplexor of the message`);
      x.mux = { multiplexor: mux, ranges };
    });
  }

  private finishMessage(m: MessageDraft): DbcMessage {
    const frameFormat = this.messageAttrs.get(m.dbcId)?.get("VFrameFormat") ?? this.attrDefaults.get("VFrameFormat");
    if (frameFormat !== undefined) {
      const label = typeof frameFormat === "number" ? this.enumDefs.get("VFrameFormat")?.[frameFormat] : frameFormat;
      if (label !== undefined) {
        if (/FD/i.test(label)) m.fd = true;
        if (/^Extended/i.test(label) && !m.extended) m.extended = true;
      }
    }
    // Long names (SystemMessageLongSymbol / SystemSignalLongSymbol) replace the 32-character ones,
    // as Vector's tools and canmatrix show them; references were resolved by the short names above.
    const longName = this.messageAttrs.get(m.dbcId)?.get("SystemMessageLongSymbol");
    if (typeof longName === "string" && longName !== "") m.name = longName;
    const renamed = new Map<string, string>();
    for (const sig of m.signals) {
      // A BA_ names its signal by the short name: with two equal short names it is the first one's.
      const long = renamed.has(sig.name) ? undefined : this.longSignalNames.get(`${m.dbcId} ${sig.name}`);
      if (long !== undefined) {
        renamed.set(sig.name, long);
        sig.name = long;
      }
    }
    for (const sig of m.signals) if (sig.mux !== null && renamed.has(sig.mux.multiplexor)) sig.mux = { ...sig.mux, multiplexor: renamed.get(sig.mux.multiplexor) as string };
    const seen = new Map<string, SignalDraft>();
    m.signals = m.signals.filter((sig) => {
      const twin = seen.get(sig.name);
      if (twin === undefined) {
        seen.set(sig.name, sig);
        return true;
      }
      this.warn(sig.line, `signal ${m.name}.${sig.name} defined twice (first at line ${twin.line}); the second is skipped`);
      return false;
    });
    // Simple multiplexing: an `mN` signal without SG_MUL_VAL_ belongs to the message's top multiplexor.
    const top = m.signals.find((x) => x.isMultiplexor && x.muxValue === null) ?? m.signals.find((x) => x.isMultiplexor);
    for (const sig of m.signals) {
      if (sig.mux !== null || sig.muxValue === null) continue;
      if (top === undefined || top === sig) this.s.error(sig.line, `signal ${m.name}.${sig.name} is multiplexed (m${sig.muxValue}) but the message has no multiplexor signal (M)`);
      sig.mux = { multiplexor: top.name, ranges: [[sig.muxValue, sig.muxValue]] };
    }
    checkMuxCycles(m, this.s);
    const signals: DbcSignal[] = m.signals.map((x) => ({
      name: x.name,
      startBit: x.startBit,
      length: x.length,
      byteOrder: x.byteOrder,
      valueType: x.valueType,
      factor: x.factor,
      offset: x.offset,
      min: x.min,
      max: x.max,
      unit: x.unit,
      receivers: x.receivers,
      isMultiplexor: x.isMultiplexor,
      mux: x.mux,
      comment: x.comment,
      valueNames: x.valueNames,
      line: x.line,
    }));
    return { id: m.id, extended: m.extended, fd: m.fd, name: m.name, length: m.length, transmitter: m.transmitter, comment: m.comment, signals, line: m.line };
  }
}

function checkMuxCycles(m: MessageDraft, s: Scanner): void {
  const byName = new Map(m.signals.map((x) => [x.name, x]));
  for (const sig of m.signals) {
    let cur: SignalDraft | undefined = sig;
    for (let depth = 0; cur?.mux != null; depth++) {
      if (depth > m.signals.length) s.error(sig.line, `signal ${m.name}.${sig.name}: its multiplexors form a cycle`);
      cur = byName.get(cur.mux.multiplexor);
    }
  }
}

/**
 * The first and last bit a signal occupies, in the codec's linear numbering: Intel bit i is byte
 * i>>3, bit i&7 (LSB first); Motorola linear bit k is byte k>>3, bit 7-(k&7) (MSB first), so a
 * big-endian signal is the run [first, last] with its MSB at `first`.
 */
export function signalBits(startBit: number, length: number, order: ByteOrder): { first: number; last: number } {
  if (order === "little_endian") return { first: startBit, last: startBit + length - 1 };
  const first = (startBit >> 3) * 8 + 7 - (startBit & 7);
  return { first, last: first + length - 1 };
}
