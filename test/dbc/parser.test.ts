/** DBC parser: what it reads from the fixture, and a clear "file:line: expected …" for bad files. */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DbcParseError, dbcText, parseDbc } from "../../src/dbc/index.ts";

const COVERAGE = join(import.meta.dir, "..", "fixtures", "dbc", "coverage.dbc");
const text = readFileSync(COVERAGE, "utf8");

function parseError(src: string): DbcParseError {
  try {
    parseDbc(src, "bad.dbc");
  } catch (e) {
    if (e instanceof DbcParseError) return e;
    throw e;
  }
  throw new Error("parsed without error");
}

describe("DBC parser", () => {
  const db = parseDbc(text, "coverage.dbc");
  const msg = (name: string) => db.messages.find((m) => m.name === name)!;
  const sig = (m: string, s: string) => msg(m).signals.find((x) => x.name === s)!;

  test("messages, ids, lengths, extended and FD", () => {
    expect(db.version).toContain("can-server test fixture");
    expect(db.nodes).toEqual(["ECU", "GW"]);
    expect(msg("ExtendedMux")).toMatchObject({ id: 0x201, extended: true, fd: false, length: 8, transmitter: "ECU" });
    expect(msg("FdBig")).toMatchObject({ id: 0x18feca15, extended: true, fd: true, length: 64 });
    expect(msg("Motorola")).toMatchObject({ id: 0x100, extended: false, comment: "Motorola signals crossing byte boundaries" });
  });

  test("signals: layout, scale, unit, receivers, float types, comments, value tables", () => {
    expect(sig("Motorola", "Cross12")).toMatchObject({ startBit: 3, length: 12, byteOrder: "big_endian", valueType: "unsigned", factor: 0.5, offset: -10, min: -10, max: 2037.5, unit: "km/h", receivers: ["GW"] });
    expect(sig("Motorola", "Cross20s").valueType).toBe("signed");
    expect(sig("Floats", "Temp").valueType).toBe("float32");
    expect(sig("DoubleMotorola", "Distance").valueType).toBe("float64");
    expect(sig("Gearbox", "Gear").comment).toBe("Selected gear, named by the GearTable value table.\nComments may span lines.");
    expect([...sig("Gearbox", "DoorState").valueNames]).toEqual([[0, "closed"], [1, "open"], [2, "ajar"], [3, "error"]]);
  });

  test("simple and extended multiplexing", () => {
    expect(sig("SimpleMux", "Page")).toMatchObject({ isMultiplexor: true, mux: null });
    expect(sig("SimpleMux", "P5Motor").mux).toEqual({ multiplexor: "Page", ranges: [[5, 5]] });
    expect(sig("SimpleMux", "Always").mux).toBeNull();
    expect(sig("ExtendedMux", "Sub")).toMatchObject({ isMultiplexor: true, mux: { multiplexor: "Service", ranges: [[1, 1]] } });
    expect(sig("ExtendedMux", "S1Value").mux).toEqual({ multiplexor: "Sub", ranges: [[0, 3], [7, 9]] });
    expect(sig("ExtendedMux", "Sub2Value").mux).toEqual({ multiplexor: "Service", ranges: [[2, 4]] });
  });

  test("windows-1252 files are read (UTF-8 first)", () => {
    const bytes = new Uint8Array([...new TextEncoder().encode('BO_ 1 M: 1 X\n SG_ T : 0|8@1+ (1,0) [0|1] "'), 0xb0, 0x43, 0x22, 0x20, 0x58, 0x0a]);
    expect(parseDbc(dbcText(bytes)).messages[0]!.signals[0]!.unit).toBe("°C");
    expect(dbcText(new TextEncoder().encode("°C"))).toBe("°C");
  });

  test("a truncated file: the line and what was expected", () => {
    const cut = text.slice(0, text.indexOf("(0.5,-10)") + 5);
    const e = parseError(cut);
    expect(e.message).toBe("bad.dbc:21: expected the offset of signal Cross12 (a number), got end of file");
    const open = parseError('BO_ 1 M: 8 X\nCM_ SG_ 1 Y "never closed;\n\n');
    expect(open.message).toBe("bad.dbc:2: unterminated string (the quoted comment after CM_ SG_ <id> <signal>) starting here: expected a closing '\"' before the end of the file");
    expect(parseError("BO_ 1 M: 8 X\nBA_DEF_ BO_ \"A\" INT 0 1").message).toBe("bad.dbc:2: expected a limit (number) or ';' in BA_DEF_ A, got end of file");
  });

  test("an unknown keyword", () => {
    const e = parseError("VERSION \"\"\n\nBO_ 1 M: 8 X\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" X\nFOO_ 1 2 3;\n");
    expect(e.line).toBe(5);
    expect(e.message).toBe("bad.dbc:5: unknown keyword 'FOO_': expected a DBC keyword (BO_, SG_, CM_, VAL_, BA_, …)");
  });

  test("bad numbers", () => {
    expect(parseError("BO_ 12x M: 8 X\n").message).toBe("bad.dbc:1: expected a message id (integer) after BO_, got '12x'");
    expect(parseError("BO_ 1 M: 8 X\n SG_ A : 0|8@1+ (1.2.3,0) [0|0] \"\" X\n").message).toBe("bad.dbc:2: expected the factor of signal A (a number), got '1.2.3'");
    expect(parseError("BO_ 1 M: 8 X\n SG_ A : 0|8@1+ (1,0) [0|abc] \"\" X\n").message).toBe("bad.dbc:2: expected the maximum of signal A (a number), got 'abc'");
    expect(parseError("BO_ 1 M: 8 X\n SG_ A : 0|8@2+ (1,0) [0|1] \"\" X\n").message).toBe("bad.dbc:2: expected the byte order of signal A (@0 Motorola or @1 Intel), got '2'");
    expect(parseError("BO_ 1 M: 99 X\n").message).toBe("bad.dbc:1: message M: length 99 out of range (0..64 bytes)");
    expect(parseError("BO_ 1 M: 8 X\n SG_ A : 0|8@1+ (1,0) [0|1] \"\" X\nVAL_ 1 A 0 \"x\" one \"y\";\n").message).toBe("bad.dbc:3: expected a value (number) or ';' in VAL_ 1 A, got 'one'");
  });

  test("semantic errors name the line", () => {
    expect(parseError("BO_ 1 M: 8 X\n SG_ A m1 : 0|8@1+ (1,0) [0|1] \"\" X\n").message).toBe("bad.dbc:2: signal M.A is multiplexed (m1) but the message has no multiplexor signal (M)");
    expect(parseError("BO_ 1 M: 8 X\n SG_ A : 0|8@1+ (1,0) [0|1] \"\" X\nSIG_VALTYPE_ 1 A : 1;\n").message).toBe("bad.dbc:3: SIG_VALTYPE_ M.A: an IEEE float needs 32 bits, the signal has 8");
    expect(parseError(" SG_ A : 0|8@1+ (1,0) [0|1] \"\" X\n").message).toBe("bad.dbc:1: SG_ outside a message: expected a BO_ before the first SG_");
    expect(parseError("BO_ 1 M: 8 X\n SG_ A x1 : 0|8@1+ (1,0) [0|1] \"\" X\n").message).toBe("bad.dbc:2: signal A: expected a multiplexer indicator (M, m<n> or m<n>M), got 'x1'");
  });

  test("doubtful but readable things are warnings, not errors", () => {
    const w = parseDbc("BO_ 1 M: 1 X\n SG_ A : 4|8@1+ (1,0) [0|1] \"\" X\n SG_ A : 0|1@1+ (1,0) [0|1] \"\" X\nBO_ 2 N: 8 X\n SG_ T : 0|100@1+ (1,0) [0|1] \"\" X\nVAL_ 9 Z 1 \"a\";\n", "w.dbc").warnings;
    expect(w).toEqual([
      "w.dbc:2: signal M.A reaches bit 11, past the message's 1 bytes (decoded only from frames long enough)",
      "w.dbc:5: signal N.T: 100 bits cannot be decoded as a number (1..64); skipped",
      "w.dbc:6: VAL_ for unknown signal Z of message id 9; ignored",
      "w.dbc:3: signal M.A defined twice (first at line 2); the second is skipped",
    ]);
  });
});
