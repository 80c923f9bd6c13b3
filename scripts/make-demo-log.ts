#!/usr/bin/env bun
/**
 * Generates demo/ampio-demo.log: two minutes of Ampio-style bus traffic in candump log format
 * (what `candump -l` writes, what `-backend replay` plays; `npm start` uses it). Deterministic
 * (seeded PRNG), written by this script, not copied from an installation. What is on it, following
 * docs/ampio.md: eight modules on extended ids, each broadcasting its state (`FE <subtype> …`)
 * periodically and on change — temperatures (0x06) drifting slowly, binary inputs (0x1B) when a
 * switch is pressed, binary outputs (0x1E) and analog outputs/dimmers (0x0C) reacting to commands
 * on 0x0F000000 (addressed to the target module), the date/time broadcast (0x10) once a minute, a
 * few diagnostics frames, and one RGB controller (0x49) fading. About 15 frames/s.
 *
 *     bun scripts/make-demo-log.ts [OUT] [SECONDS]
 */
import { dataFrame, type CanFrame } from "../src/can/frame.ts";
import { formatCandumpLogLine } from "../src/can/candump-log.ts";

const out = process.argv[2] ?? "demo/ampio-demo.log";
const seconds = Number(process.argv[3] ?? 120);

let seed = 0x5eed1234;
function rand(): number {
  // mulberry32
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

interface Module {
  readonly id: number;
  readonly kind: "temp" | "switch" | "relay" | "dimmer" | "rgb" | "clock";
  temp: number;
  bits: number;
  levels: number[];
}

const modules: Module[] = [
  // Temperatures are sent as 1000 + tenths of a degree (docs/ampio.md): 1215 = 21.5 °C.
  { id: 0x00001d4c, kind: "temp", temp: 1215, bits: 0, levels: [] },
  { id: 0x00001d51, kind: "temp", temp: 1198, bits: 0, levels: [] },
  { id: 0x00002a31, kind: "switch", temp: 0, bits: 0, levels: [] },
  { id: 0x00002a35, kind: "switch", temp: 0, bits: 0, levels: [] },
  { id: 0x00000b07, kind: "relay", temp: 0, bits: 0, levels: [] },
  { id: 0x00000b0a, kind: "dimmer", temp: 0, bits: 0, levels: [0, 0, 0, 0, 0, 0] },
  { id: 0x00003c02, kind: "rgb", temp: 0, bits: 0, levels: [255, 120, 0, 0] },
  { id: 0x00000101, kind: "clock", temp: 0, bits: 0, levels: [] },
];
const COMMAND_ID = 0x0f000000;

const lines: string[] = [];
const t0Us = Date.UTC(2025, 0, 17, 18, 30, 0) * 1000;
function emit(atMs: number, f: CanFrame): void {
  lines.push(formatCandumpLogLine({ timestampUs: t0Us + Math.round(atMs * 1000), iface: "can0", frame: f }));
}
const u16 = (v: number): [number, number] => [v & 0xff, (v >> 8) & 0xff];
const addr = (id: number): number[] => [(id >>> 24) & 0xff, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff];

function state(m: Module): CanFrame {
  switch (m.kind) {
    case "temp":
      return dataFrame(m.id, [0xfe, 0x06, ...u16(m.temp)], true);
    case "switch":
      return dataFrame(m.id, [0xfe, 0x1b, m.bits & 0xff, (m.bits >> 8) & 0xff, 0, 0, 0, 0], true);
    case "relay":
      return dataFrame(m.id, [0xfe, 0x1e, m.bits & 0xff, (m.bits >> 8) & 0xff, 0, 0], true);
    case "dimmer":
      return dataFrame(m.id, [0xfe, 0x0c, ...m.levels], true);
    case "rgb":
      return dataFrame(m.id, [0xfe, 0x49, ...m.levels], true);
    case "clock": {
      return dataFrame(m.id, [0xfe, 0x10, 25, 1, 17, 5, 0x80 | 18, 30], true);
    }
  }
}

// Periodic broadcasts, staggered per module; events on a Poisson-ish schedule.
const period: Record<Module["kind"], number> = { temp: 1000, switch: 2000, relay: 1000, dimmer: 500, rgb: 200, clock: 60_000 };
const next = modules.map((_, i) => i * 37);
let nextEvent = 800;
const endMs = seconds * 1000;
for (let t = 0; t < endMs; t++) {
  modules.forEach((m, i) => {
    if (t < next[i]!) return;
    next[i] = t + period[m.kind] + Math.floor(rand() * 20);
    if (m.kind === "temp") m.temp += Math.round((rand() - 0.5) * 4);
    if (m.kind === "rgb") m.levels = m.levels.map((v, k) => (k === 3 ? v : (v + 3 + k) & 0xff));
    emit(t + rand(), state(m));
    // Diagnostics (4 bytes) now and then.
    if (rand() < 0.02) emit(t + 1 + rand(), dataFrame(m.id, [0x10, 0x00, 0x5d + (i & 3), 0x1f], true));
  });
  if (t >= nextEvent) {
    nextEvent = t + 1500 + Math.floor(rand() * 5000);
    // A switch press → a command → the relay or dimmer changes and broadcasts its new state.
    const sw = modules[2 + Math.floor(rand() * 2)]!;
    const ch = Math.floor(rand() * 8);
    sw.bits ^= 1 << ch;
    emit(t, state(sw));
    const target = rand() < 0.6 ? modules[4]! : modules[5]!;
    if (target.kind === "relay") {
      target.bits ^= 1 << ch;
      emit(t + 6 + rand() * 3, dataFrame(COMMAND_ID, [...addr(target.id), 0x01, ch + 1, (target.bits >> ch) & 1], true));
    } else {
      const k = ch % 6;
      target.levels[k] = target.levels[k]! > 0 ? 0 : 100 + Math.floor(rand() * 155);
      emit(t + 6 + rand() * 3, dataFrame(COMMAND_ID, [...addr(target.id), 0x02, k + 1, target.levels[k]!], true));
    }
    emit(t + 14 + rand() * 3, state(target));
  }
}
lines.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
await Bun.write(out, lines.join("\n") + "\n");
process.stderr.write(`${out}: ${lines.length} frames over ${seconds} s\n`);
