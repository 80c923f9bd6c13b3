/**
 * Ampio command frames against what aioampio sends for the same action. The multi-frame vectors
 * were produced by running aioampio's own generate_multican_payload (aioampio/controllers/utils.py
 * at a045c81) on the payloads its controllers build; the single-frame ones follow its controllers'
 * byte strings (switches.py, lights.py, covers.py) — docs/ampio.md "Commands".
 */
import { describe, expect, test } from "bun:test";
import { coverCommand, dimOutput, flagCommand, multiFrameCommand, rgbwCommand, singleCommand, switchOutput } from "../../src/ampio/commands.ts";
import { type CanFrame, formatFrame } from "../../src/can/frame.ts";

const M = 0x1d4c;
const text = (fs: CanFrame | CanFrame[]): string[] => (Array.isArray(fs) ? fs : [fs]).map(formatFrame);

describe("single-frame commands: 0F000000, target id big-endian, then the command", () => {
  test("relay on / off: 15 FF|00 <channel−1> (SwitchesController)", () => {
    expect(text(switchOutput(M, 3, true))).toEqual(["0F000000#00001D4C15FF02"]);
    expect(text(switchOutput(M, 1, false))).toEqual(["0F000000#00001D4C150000"]);
  });
  test("dimmer level: 15 <level> <channel−1> 00 (LightsController, M-DIM)", () => {
    expect(text(dimOutput(M, 2, 128))).toEqual(["0F000000#00001D4C15800100"]);
  });
  test("RGBW: one 15 <value> <i> per colour (LightsController, M-RGBW)", () => {
    expect(text(rgbwCommand(0x3c02, [255, 16, 0, 7]))).toEqual([
      "0F000000#00003C0215FF00",
      "0F000000#00003C02151001",
      "0F000000#00003C02150002",
      "0F000000#00003C02150703",
    ]);
  });
  test("a target id uses all four bytes", () => {
    expect(text(singleCommand(0x1abcdef0, [0x15, 0xff, 0x00]))).toEqual(["0F000000#1ABCDEF015FF00"]);
    expect(() => singleCommand(M, [1, 2, 3, 4, 5])).toThrow(RangeError);
  });
});

describe("multi-frame commands (function 16): aioampio's generate_multican_payload output", () => {
  test("flag 3 on: 2F F9 01 02", () => {
    expect(text(flagCommand(M, 3, true))).toEqual(["0F000000#00001D4C1600022B", "0F000000#00001D4C16012FF9", "0F000000#00001D4C16020102"]);
  });
  test("cover 2 open: 31 F9 02 01", () => {
    expect(text(coverCommand(M, 2, 2))).toEqual(["0F000000#00001D4C1600022D", "0F000000#00001D4C160131F9", "0F000000#00001D4C16020201"]);
  });
  test("raw 7AF9C801 (the Node-RED nodes' 8-bit flag payload)", () => {
    expect(text(multiFrameCommand(M, [0x7a, 0xf9, 0xc8, 0x01]))).toEqual(["0F000000#00001D4C1600023C", "0F000000#00001D4C16017AF9", "0F000000#00001D4C1602C801"]);
  });
  test("odd length: the last chunk has one byte", () => {
    expect(text(multiFrameCommand(M, [1, 2, 3, 4, 5]))).toEqual([
      "0F000000#00001D4C1600030F",
      "0F000000#00001D4C16010102",
      "0F000000#00001D4C16020304",
      "0F000000#00001D4C160305",
    ]);
  });
  test("empty and oversized payloads are refused", () => {
    expect(() => multiFrameCommand(M, [])).toThrow(RangeError);
    expect(() => multiFrameCommand(M, new Array<number>(65).fill(0))).toThrow(RangeError);
  });
});
