/**
 * Ampio state-broadcast decoder: one CAN frame in, one typed result out. Table-driven (one row
 * per subtype of the `FE <subtype> …` broadcasts, plus the three-byte SATEL status frame), pure
 * and total: any frame, however malformed, yields a result and never throws.
 * Subtypes nobody has documented come back as `unknown` (the caller counts them); nothing is
 * guessed. Byte layouts, scaling and the public sources they were checked against: docs/ampio.md.
 */
import { type CanFrame, CAN_EFF_MASK, isError, isExtended, isRemote } from "../can/frame.ts";

/** data[0] of a state broadcast; data[1] is the subtype. */
export const AMPIO_STATE_MARKER = 0xfe;
/** A SATEL status frame is exactly `10 EF <code>`. */
export const SATEL_STATUS_MARKER = 0x10;
export const SATEL_STATUS_SUBMARKER = 0xef;
/** Extended id that carries commands to modules (first four data bytes: target id, big-endian). */
export const AMPIO_COMMAND_ID = 0x0f000000;
/** Declared by aioampio as the SATEL command id (it sends alarm commands to 0x0F000000); a command either way. */
export const SATEL_COMMAND_ID = 0x0f002000;
/**
 * State key of the SATEL status, beside the subtypes 0x00..0xFF of FE broadcasts: the inventory
 * and the state cache key a module's states by (module id, key).
 */
export const SATEL_STATUS_KEY = 0x100;

export type SeriesFamily = "aout" | "s16b10000" | "s16b";
export type BitFamily = "binout" | "bin" | "bout" | "flag" | "zone" | "armed" | "alarm" | "breached" | "arming" | "arming_10s";

/** The typed content of one decoded frame. */
export type AmpioPayload =
  | { readonly type: "temperature"; readonly celsius: number }
  | { readonly type: "series"; readonly family: SeriesFamily; readonly first: number; readonly values: readonly number[] }
  | { readonly type: "bits"; readonly family: BitFamily; readonly first: number; readonly states: readonly boolean[] }
  | {
      readonly type: "datetime";
      readonly year: number;
      readonly month: number;
      readonly day: number;
      readonly weekday: number;
      readonly daytime: boolean;
      readonly hour: number;
      readonly minute: number;
    }
  | { readonly type: "rgbw"; readonly red: number; readonly green: number; readonly blue: number; readonly white: number }
  | { readonly type: "diagnostics"; readonly supplyVoltage: number; readonly moduleTemperature: number }
  | {
      readonly type: "heating-zone";
      readonly zone: number;
      readonly currentTemperature: number;
      readonly targetTemperature: number;
      readonly temperatureDifference: number;
      readonly active: boolean;
      readonly heating: boolean;
      readonly dayMode: boolean;
      /** Bits 4..6 of data[7], shifted down: 0..7. */
      readonly mode: number;
    }
  | { readonly type: "satel-status"; readonly code: number; readonly response: string };

export type AmpioUnit = "°C" | "V";

/**
 * One named value, flattened from a payload: `temperature.1`, `aout.7`, `bin.49`,
 * `heating.3.target_temperature`, `diagnostics.voltage`, … (names follow aioampio's topics).
 */
export interface AmpioReading {
  readonly name: string;
  readonly value: number | boolean | string;
  readonly unit?: AmpioUnit;
}

export type NotAmpioReason = "standard-id" | "remote" | "error-frame" | "fd" | "bad-length";

/**
 * What a frame turned out to be.
 * - `decoded`: a state broadcast (or SATEL status) with at least one value.
 * - `short`: a listed subtype whose frame is too short for its first value (aioampio drops these too).
 * - `undecoded`: a subtype known to exist that no public decoder interprets (0x01, 0x05, 0x18, 0x2B).
 * - `unknown`: an FE broadcast with an unlisted subtype, or `10 xx yy` with xx ≠ EF. Count it.
 * - `other`: an extended data frame from a module that is not a state broadcast.
 * - `command`: a frame to the command ids; `target` is the addressed module (null if under 4 bytes).
 * - `not-ampio`: a frame an Ampio bus does not carry (standard id, RTR, error, CAN FD, len ≠ data).
 */
export type DecodeResult =
  | {
      readonly kind: "decoded";
      readonly moduleId: number;
      /** Subtype 0x00..0xFF, or SATEL_STATUS_KEY. */
      readonly key: number;
      readonly name: string;
      readonly payload: AmpioPayload;
      readonly values: readonly AmpioReading[];
    }
  | { readonly kind: "short" | "undecoded"; readonly moduleId: number; readonly key: number; readonly name: string }
  | { readonly kind: "unknown"; readonly moduleId: number; readonly key: number }
  | { readonly kind: "other"; readonly moduleId: number }
  | { readonly kind: "command"; readonly commandId: number; readonly target: number | null }
  | { readonly kind: "not-ampio"; readonly reason: NotAmpioReason };

/** A subtype's row: its name and, if interpreted, its decoder (null = known but undecoded). */
interface SubtypeRow {
  readonly name: string;
  readonly decode: ((d: Uint8Array) => AmpioPayload | null) | null;
}

// --- Row factories ------------------------------------------------------------------------------

/** One bit per channel from data[2], bit 0 first; stops at the first byte the frame lacks. */
function bits(family: BitFamily, first: number, count: number): SubtypeRow {
  return {
    name: family,
    decode(d) {
      const n = Math.min(count, (d.length - 2) * 8);
      if (n <= 0) return null;
      const states = new Array<boolean>(n);
      for (let i = 0; i < n; i++) states[i] = ((d[2 + (i >> 3)]! >> (i & 7)) & 1) === 1;
      return { type: "bits", family, first, states };
    },
  };
}

/** One u8 per channel from data[2]. */
function u8Series(family: SeriesFamily, first: number, count: number): SubtypeRow {
  return {
    name: family,
    decode(d) {
      const n = Math.min(count, d.length - 2);
      if (n <= 0) return null;
      const values = new Array<number>(n);
      for (let i = 0; i < n; i++) values[i] = d[2 + i]!;
      return { type: "series", family, first, values };
    },
  };
}

/** One u16le per channel from data[2], stride 2; `offset` is subtracted, then divided by `divisor`. */
function u16Series(family: SeriesFamily, first: number, count: number, offset: number, divisor: number): SubtypeRow {
  return {
    name: family,
    decode(d) {
      const n = Math.min(count, (d.length - 2) >> 1);
      if (n <= 0) return null;
      const values = new Array<number>(n);
      for (let i = 0; i < n; i++) values[i] = (u16le(d, 2 + 2 * i) - offset) / divisor;
      return { type: "series", family, first, values };
    },
  };
}

function heatingZone(zone: number): SubtypeRow {
  return {
    name: "heating",
    decode(d) {
      if (d.length < 8) return null;
      const status = d[7]!;
      const diffRaw = (d[6]! << 24) >> 24; // int8
      return {
        type: "heating-zone",
        zone,
        currentTemperature: d[2]! / 10,
        targetTemperature: d[4]! / 10,
        temperatureDifference: (diffRaw - 100) / 10,
        active: (status & 0x01) !== 0,
        heating: (status & 0x02) !== 0,
        dayMode: (status & 0x04) !== 0,
        mode: (status >> 4) & 0x07,
      };
    },
  };
}

function u16le(d: Uint8Array, i: number): number {
  return d[i]! | (d[i + 1]! << 8);
}

const undecoded = (name: string): SubtypeRow => ({ name, decode: null });

// --- The table ----------------------------------------------------------------------------------

const ROWS: ReadonlyArray<readonly [number, SubtypeRow]> = [
  [0x01, undecoded("unknown_1")],
  [0x05, undecoded("temperature_int")],
  [
    0x06,
    {
      name: "temperature",
      decode: (d) => (d.length < 4 ? null : { type: "temperature", celsius: (u16le(d, 2) - 1000) / 10 }),
    },
  ],
  [0x0c, u8Series("aout", 1, 6)],
  [0x0d, u8Series("aout", 7, 6)],
  [0x0e, u8Series("aout", 13, 6)],
  [0x0f, bits("binout", 1, 48)],
  [
    0x10,
    {
      name: "datetime",
      decode: (d) =>
        d.length < 8
          ? null
          : {
              type: "datetime",
              year: 2000 + d[2]!,
              month: d[3]! & 0x0f,
              day: d[4]! & 0x1f,
              weekday: d[5]! & 0x07,
              daytime: (d[6]! & 0x80) !== 0,
              hour: d[6]! & 0x1f,
              minute: d[7]! & 0x7f,
            },
    },
  ],
  [0x18, undecoded("u32b")],
  [0x19, bits("armed", 1, 8)],
  [0x1a, bits("alarm", 1, 8)],
  [0x1b, bits("bin", 1, 48)],
  [0x1c, bits("bin", 49, 48)],
  [0x1d, bits("bin", 97, 48)],
  [0x1e, bits("bout", 1, 48)],
  [0x1f, bits("bout", 49, 48)],
  [0x20, bits("bout", 97, 48)],
  [0x21, u16Series("s16b10000", 1, 3, 10000, 10)],
  [0x22, u16Series("s16b10000", 4, 3, 10000, 10)],
  [0x23, u16Series("s16b10000", 7, 3, 10000, 10)],
  [0x24, u16Series("s16b10000", 10, 3, 10000, 10)],
  [0x25, u16Series("s16b10000", 13, 3, 10000, 10)],
  [0x2b, undecoded("event")],
  [0x38, bits("breached", 1, 8)],
  [0x39, bits("arming", 1, 8)],
  [0x3a, bits("arming_10s", 1, 8)],
  [0x44, u16Series("s16b", 1, 3, 0, 1)],
  [0x45, u16Series("s16b", 4, 3, 0, 1)],
  [0x46, u16Series("s16b", 7, 3, 0, 1)],
  [
    0x49,
    {
      name: "rgb",
      decode: (d) => (d.length < 6 ? null : { type: "rgbw", red: d[2]!, green: d[3]!, blue: d[4]!, white: d[5]! }),
    },
  ],
  [
    0x4f,
    {
      name: "diagnostics",
      decode: (d) => (d.length < 4 ? null : { type: "diagnostics", supplyVoltage: (d[2]! * 2) / 10, moduleTemperature: d[3]! - 100 }),
    },
  ],
  [0x80, bits("flag", 1, 32)],
  [0xc8, bits("zone", 1, 16)],
  ...Array.from({ length: 16 }, (_, i) => [0xc9 + i, heatingZone(i + 1)] as const),
];

const TABLE: ReadonlyArray<SubtypeRow | undefined> = (() => {
  const t = new Array<SubtypeRow | undefined>(256).fill(undefined);
  for (const [code, row] of ROWS) t[code] = row;
  return t;
})();

/** Every listed subtype: code, name, and whether this decoder interprets it. */
export const SUBTYPES: ReadonlyArray<{ readonly code: number; readonly name: string; readonly decoded: boolean }> = ROWS.map(
  ([code, row]) => ({ code, name: row.name, decoded: row.decode !== null }),
);

/** Name of a state key (subtype or SATEL_STATUS_KEY), or undefined if unlisted. */
export function stateKeyName(key: number): string | undefined {
  if (key === SATEL_STATUS_KEY) return "satel_status";
  return TABLE[key]?.name;
}

// --- SATEL status -------------------------------------------------------------------------------

const SATEL_RESPONSES: ReadonlyMap<number, string> = new Map([
  [0x00, "OK"],
  [0x01, "requesting user code not found"],
  [0x02, "no access"],
  [0x03, "selected user does not exist"],
  [0x04, "selected user already exists"],
  [0x05, "wrong code or code already exists"],
  [0x06, "telephone code already exists"],
  [0x07, "changed code is the same"],
  [0x08, "other error"],
  [0x11, "cannot arm, force arm possible"],
  [0x12, "cannot arm"],
  [0xff, "command accepted"],
]);

export function satelResponse(code: number): string {
  const known = SATEL_RESPONSES.get(code);
  if (known !== undefined) return known;
  return code >= 0x80 && code <= 0x8f ? "other error" : "unknown";
}

// --- Flattening ---------------------------------------------------------------------------------

/** Flattens a payload into named values (the names the inventory and future topics use). */
export function readingsOf(p: AmpioPayload): AmpioReading[] {
  switch (p.type) {
    case "temperature":
      return [{ name: "temperature.1", value: p.celsius, unit: "°C" }];
    case "series":
      return p.values.map((value, i) => ({ name: `${p.family}.${p.first + i}`, value }));
    case "bits":
      return p.states.map((value, i) => ({ name: `${p.family}.${p.first + i}`, value }));
    case "datetime":
      return [
        { name: "datetime.year", value: p.year },
        { name: "datetime.month", value: p.month },
        { name: "datetime.day", value: p.day },
        { name: "datetime.weekday", value: p.weekday },
        { name: "datetime.daytime", value: p.daytime },
        { name: "datetime.hour", value: p.hour },
        { name: "datetime.minute", value: p.minute },
      ];
    case "rgbw":
      return [
        { name: "rgb.red", value: p.red },
        { name: "rgb.green", value: p.green },
        { name: "rgb.blue", value: p.blue },
        { name: "rgb.white", value: p.white },
      ];
    case "diagnostics":
      return [
        { name: "diagnostics.voltage", value: p.supplyVoltage, unit: "V" },
        { name: "diagnostics.temperature", value: p.moduleTemperature, unit: "°C" },
      ];
    case "heating-zone": {
      const z = `heating.${p.zone}`;
      return [
        { name: `${z}.current_temperature`, value: p.currentTemperature, unit: "°C" },
        { name: `${z}.target_temperature`, value: p.targetTemperature, unit: "°C" },
        { name: `${z}.temperature_diff`, value: p.temperatureDifference, unit: "°C" },
        { name: `${z}.active`, value: p.active },
        { name: `${z}.heating`, value: p.heating },
        { name: `${z}.day_mode`, value: p.dayMode },
        { name: `${z}.mode`, value: p.mode },
      ];
    }
    case "satel-status":
      return [
        { name: "response.status", value: p.code },
        { name: "response.text", value: p.response },
      ];
  }
}

// --- Entry point --------------------------------------------------------------------------------

export function isCommandId(id: number): boolean {
  return id === AMPIO_COMMAND_ID || id === SATEL_COMMAND_ID;
}

/** Decodes one frame. Total: never throws, whatever the frame holds. */
export function decodeAmpio(f: CanFrame): DecodeResult {
  if (isError(f)) return { kind: "not-ampio", reason: "error-frame" };
  if (isRemote(f)) return { kind: "not-ampio", reason: "remote" };
  if (!isExtended(f)) return { kind: "not-ampio", reason: "standard-id" };
  if (f.fd) return { kind: "not-ampio", reason: "fd" };
  const d = f.data;
  if (f.len !== d.length || d.length > 8) return { kind: "not-ampio", reason: "bad-length" };
  const id = f.canId & CAN_EFF_MASK;

  if (isCommandId(id)) {
    const target = d.length >= 4 ? ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0 : null;
    return { kind: "command", commandId: id, target };
  }

  if (d.length === 3 && d[0] === SATEL_STATUS_MARKER) {
    if (d[1] !== SATEL_STATUS_SUBMARKER) return { kind: "unknown", moduleId: id, key: SATEL_STATUS_KEY };
    const code = d[2]!;
    const payload: AmpioPayload = { type: "satel-status", code, response: satelResponse(code) };
    return { kind: "decoded", moduleId: id, key: SATEL_STATUS_KEY, name: "satel_status", payload, values: readingsOf(payload) };
  }

  if (d.length < 2 || d[0] !== AMPIO_STATE_MARKER) return { kind: "other", moduleId: id };
  const key = d[1]!;
  const row = TABLE[key];
  if (row === undefined) return { kind: "unknown", moduleId: id, key };
  if (row.decode === null) return { kind: "undecoded", moduleId: id, key, name: row.name };
  const payload = row.decode(d);
  if (payload === null) return { kind: "short", moduleId: id, key, name: row.name };
  return { kind: "decoded", moduleId: id, key, name: row.name, payload, values: readingsOf(payload) };
}
