/**
 * Ampio command frames, pure: what goes on the bus to make a module do something. Every command is
 * an extended frame to AMPIO_COMMAND_ID (0x0F000000) whose first four data bytes are the target
 * module's CAN id, big-endian, followed by the command — the way kstaniek/aioampio's controllers
 * build them (`_send_command`, `_send_multiframe_command`, `generate_multican_payload`; docs/ampio.md
 * "Commands" has the table and the sources). Commands longer than four bytes go as a multi-frame
 * command (function 0x16): chunk 0 = [(len + 1) >> 1, sum & 0xFF], then the payload two bytes at a
 * time, each frame `target | 16 | chunk index | chunk`.
 */
import { type CanFrame, dataFrame } from "../can/frame.ts";
import { AMPIO_COMMAND_ID } from "./decoder.ts";

/** Function code of a multi-frame command. */
export const MULTIFRAME_FUNCTION = 0x16;
/** Longest command payload accepted (a SATEL arm command is 15 bytes; the raw topic is bounded by this). */
export const COMMAND_MAX_BYTES = 64;

function targetBytes(target: number): number[] {
  return [(target >>> 24) & 0xff, (target >>> 16) & 0xff, (target >>> 8) & 0xff, target & 0xff];
}

/** One frame: target id big-endian, then the command (at most 4 bytes). */
export function singleCommand(target: number, command: readonly number[]): CanFrame {
  if (command.length > 4) throw new RangeError(`a single-frame command has at most 4 bytes, got ${command.length}`);
  return dataFrame(AMPIO_COMMAND_ID, [...targetBytes(target), ...command], true);
}

/** A multi-frame command (function 0x16), as aioampio's generate_multican_payload builds it. */
export function multiFrameCommand(target: number, payload: readonly number[]): CanFrame[] {
  if (payload.length === 0 || payload.length > COMMAND_MAX_BYTES) throw new RangeError(`a multi-frame command has 1..${COMMAND_MAX_BYTES} bytes, got ${payload.length}`);
  let sum = 0;
  for (const b of payload) sum += b;
  const chunks: number[][] = [[((payload.length + 1) >> 1) & 0xff, sum & 0xff]];
  for (let i = 0; i < payload.length; i += 2) chunks.push(payload.slice(i, i + 2) as number[]);
  const t = targetBytes(target);
  return chunks.map((c, idx) => dataFrame(AMPIO_COMMAND_ID, [...t, MULTIFRAME_FUNCTION, idx & 0xff, ...c], true));
}

/** A binary output (relay) on or off: `15 FF|00 <channel−1>` (aioampio SwitchesController). */
export function switchOutput(target: number, channel: number, on: boolean): CanFrame {
  return singleCommand(target, [0x15, on ? 0xff : 0x00, (channel - 1) & 0xff]);
}

/** A dimmer output level 0–255: `15 <level> <channel−1> 00` (aioampio LightsController, M-DIM/M-LED). */
export function dimOutput(target: number, channel: number, level: number): CanFrame {
  return singleCommand(target, [0x15, level & 0xff, (channel - 1) & 0xff, 0x00]);
}

/** A cover: 0 stop, 1 close, 2 open: multi-frame `31 F9 <cmd> <channel−1>` (aioampio CoversController). */
export function coverCommand(target: number, channel: number, cmd: 0 | 1 | 2): CanFrame[] {
  return multiFrameCommand(target, [0x31, 0xf9, cmd, (channel - 1) & 0xff]);
}

/** A flag set or cleared: multi-frame `2F F9 01|00 <flag−1>` (aioampio SwitchesController, "flag" entities). */
export function flagCommand(target: number, flag: number, on: boolean): CanFrame[] {
  return multiFrameCommand(target, [0x2f, 0xf9, on ? 0x01 : 0x00, (flag - 1) & 0xff]);
}

/** RGBW: one `15 <value> <i>` frame per colour channel i = 0..3 (aioampio LightsController, M-RGBW). */
export function rgbwCommand(target: number, values: readonly number[]): CanFrame[] {
  return values.map((v, i) => singleCommand(target, [0x15, v & 0xff, i]));
}
