/**
 * Names for a house: an optional file (`-ampio-names`) that maps module ids and their channels to
 * names and rooms, so the MQTT inventory, Home Assistant discovery, the API and the dashboard can
 * say "Kitchen ceiling" instead of `00001D4C bout.3`. Two spellings of the same content:
 *
 * - YAML, the `devices:` list of the Home Assistant Ampio integration's configuration (aioampio's
 *   config.yaml): per device `can_id`, `name`, `area`, optionally `model` (the Ampio type code),
 *   `pcb`, `sw_version`, and per platform (`lights:`, `switches:`, `binary_sensors:`, `covers:`,
 *   `sensors:`, `climates:`, …) entities with `name`, optional `area` and `states:` — the value
 *   names this gateway uses too (`binout.25`, `aout.1`, `bin.3`, `temperature.1`, `heating.2`…).
 *   Other top-level keys (outputs, codecs, floors) are ignored.
 * - TOML, for people who write it by hand:
 *
 *       [[module]]
 *       id = "1D4C"            # the CAN id, hex (as candump and the Ampio tools show it) or a number
 *       name = "Living room lights"
 *       room = "Living room"
 *       type = 5               # optional Ampio type code (the inventory's `typ`)
 *       [module.channels]
 *       "bout.1" = "Ceiling"
 *       "aout.2" = { name = "Wall lamp", room = "Hall", kind = "dimmer" }
 *
 * A channel's `kind` (switch, dimmer, cover, light, sensor, …) says how an output command is meant
 * (a cover's 0/1/2 are stop/close/open; a dimmer's 1 is a level). parseNames() is pure; a
 * bad file is a NamesFileError with one line saying where and what.
 */
import { readFileSync } from "node:fs";

export interface ChannelName {
  readonly name: string;
  readonly room?: string;
  readonly kind?: string;
}

export interface ModuleNames {
  readonly id: number;
  readonly name?: string;
  readonly room?: string;
  /** Ampio type code (aioampio's `model`, the M-SERV inventory's `typ`). */
  readonly type?: number;
  readonly pcb?: number;
  readonly softVersion?: number;
  /** Value name (`bout.3`, `heating.2`, …) → its name. */
  readonly channels: ReadonlyMap<string, ChannelName>;
}

export class NamesFileError extends Error {}

/** Most modules and channels a names file may hold (a real house has tens of modules). */
export const NAMES_MAX_MODULES = 1024;
export const NAMES_MAX_CHANNELS = 512;
const NAME_MAX = 128;

export class HouseNames {
  constructor(
    readonly modules: ReadonlyMap<number, ModuleNames>,
    /** The file they came from ("" when empty). */
    readonly file = "",
  ) {}

  static readonly EMPTY = new HouseNames(new Map());

  module(id: number): ModuleNames | undefined {
    return this.modules.get(id);
  }

  /** A value's channel name: exact (`heating.2.target_temperature`), else its channel (`heating.2`). */
  channel(id: number, valueName: string): ChannelName | undefined {
    const m = this.modules.get(id);
    if (m === undefined) return undefined;
    const exact = m.channels.get(valueName);
    if (exact !== undefined) return exact;
    const parts = valueName.split(".");
    if (parts.length > 2) return m.channels.get(`${parts[0]}.${parts[1]}`);
    // aioampio names an RGBW module's colour `rgb.1`; its values here are rgb.red … rgb.white.
    return parts[0] === "rgb" ? m.channels.get("rgb.1") : undefined;
  }

  get size(): number {
    return this.modules.size;
  }
}

/** Parses a names file's text; `file` decides the syntax (.toml, or .yaml/.yml) and names errors. */
export function parseNames(text: string, file: string): HouseNames {
  const lower = file.toLowerCase();
  let doc: unknown;
  try {
    if (lower.endsWith(".toml")) doc = Bun.TOML.parse(text);
    else if (lower.endsWith(".yaml") || lower.endsWith(".yml")) doc = Bun.YAML.parse(text);
    else throw new NamesFileError(`${file}: unknown format (the name must end in .toml, .yaml or .yml)`);
  } catch (e) {
    if (e instanceof NamesFileError) throw e;
    throw new NamesFileError(`${file}: not valid ${lower.endsWith(".toml") ? "TOML" : "YAML"}: ${oneLine(e)}`);
  }
  if (!isObject(doc)) throw new NamesFileError(`${file}: expected a table of modules ([[module]] in TOML, devices: in YAML)`);
  const modules = new Map<number, ModuleNames>();
  const list = Array.isArray(doc.module) ? doc.module : Array.isArray(doc.devices) ? doc.devices : null;
  if (list === null) throw new NamesFileError(`${file}: no modules (expected [[module]] entries in TOML or a devices: list in YAML)`);
  if (list.length > NAMES_MAX_MODULES) throw new NamesFileError(`${file}: ${list.length} modules, at most ${NAMES_MAX_MODULES}`);
  list.forEach((entry: unknown, i: number) => {
    const where = `${file}: module ${i + 1}`;
    if (!isObject(entry)) throw new NamesFileError(`${where}: expected a table`);
    const id = moduleId(entry.id ?? entry.can_id, where);
    if (modules.has(id)) throw new NamesFileError(`${where}: module ${hexId(id)} is listed twice`);
    const channels = new Map<string, ChannelName>();
    if (entry.channels !== undefined) {
      if (!isObject(entry.channels)) throw new NamesFileError(`${where}: channels must be a table of "value.name" = "Name"`);
      for (const [key, v] of Object.entries(entry.channels)) addChannel(channels, key, v, `${where} (${hexId(id)}) channel ${key}`);
    }
    // aioampio's YAML: entities per platform, each with the value names it reads in `states:`.
    for (const [platform, v] of Object.entries(entry)) {
      if (!Array.isArray(v)) continue;
      for (const [j, ent] of v.entries()) {
        const w = `${where} (${hexId(id)}) ${platform}[${j}]`;
        if (!isObject(ent)) throw new NamesFileError(`${w}: expected a table`);
        const name = text_(ent.name, `${w} name`);
        const states = ent.states ?? [];
        if (!Array.isArray(states)) throw new NamesFileError(`${w}: states must be a list of value names`);
        for (const s of states) {
          if (typeof s !== "string") throw new NamesFileError(`${w}: states must be a list of value names`);
          addChannel(channels, s, { name, room: ent.area, kind: singular(platform) }, w);
        }
      }
    }
    const m: ModuleNames = {
      id,
      channels,
      ...(entry.name !== undefined ? { name: text_(entry.name, `${where} name`) } : {}),
      ...(entry.room ?? entry.area) !== undefined ? { room: text_(entry.room ?? entry.area, `${where} room`) } : {},
      ...optionalInt(entry.type ?? entry.model, `${where} type`, "type", 0, 255),
      ...optionalInt(entry.pcb, `${where} pcb`, "pcb", 0, 255),
      ...optionalInt(entry.sw_version ?? entry.soft_version, `${where} sw_version`, "softVersion", 0, 0xffffffff),
    };
    modules.set(id, m);
  });
  return new HouseNames(modules, file);
}

/** Reads and parses a names file (at start-up); every failure is a NamesFileError with one line. */
export function loadNamesFile(file: string): HouseNames {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new NamesFileError(`${file}: cannot read: ${oneLine(e)}`);
  }
  return parseNames(text, file);
}

function addChannel(channels: Map<string, ChannelName>, key: string, v: unknown, where: string): void {
  if (!/^[a-z0-9_]+\.([0-9]+|[a-z_]+)(\.[a-z_]+)?$/.test(key)) throw new NamesFileError(`${where}: "${key}" is not a value name (e.g. bout.3, aout.1, heating.2, diagnostics.voltage)`);
  if (channels.size >= NAMES_MAX_CHANNELS) throw new NamesFileError(`${where}: more than ${NAMES_MAX_CHANNELS} channels in one module`);
  if (typeof v === "string") {
    channels.set(key, { name: text_(v, where) });
    return;
  }
  if (!isObject(v)) throw new NamesFileError(`${where}: expected a name or { name = …, room = …, kind = … }`);
  const c: ChannelName = {
    name: text_(v.name, `${where} name`),
    ...(v.room !== undefined && v.room !== null ? { room: text_(v.room, `${where} room`) } : {}),
    ...(v.kind !== undefined ? { kind: text_(v.kind, `${where} kind`) } : {}),
  };
  if (!channels.has(key)) channels.set(key, c);
}

function moduleId(v: unknown, where: string): number {
  let id: number | null = null;
  if (typeof v === "number" && Number.isInteger(v)) id = v;
  else if (typeof v === "string" && /^(0x)?[0-9a-fA-F]{1,8}$/.test(v.trim())) id = parseInt(v.trim().replace(/^0x/i, ""), 16);
  if (id === null || id < 0 || id > 0x1fffffff) throw new NamesFileError(`${where}: id must be the module's 29-bit CAN id, hex ("1D4C") or a number, got ${JSON.stringify(v)}`);
  return id;
}

function text_(v: unknown, where: string): string {
  if (typeof v !== "string" || v.trim() === "") throw new NamesFileError(`${where}: must be a non-empty string`);
  if (v.length > NAME_MAX) throw new NamesFileError(`${where}: longer than ${NAME_MAX} characters`);
  return v.trim();
}

function optionalInt<K extends string>(v: unknown, where: string, key: K, min: number, max: number): { [P in K]?: number } {
  if (v === undefined || v === null) return {};
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new NamesFileError(`${where}: must be an integer ${min}..${max}`);
  return { [key]: v } as { [P in K]?: number };
}

function singular(platform: string): string {
  return platform.endsWith("es") && platform.startsWith("switch") ? "switch" : platform.replace(/s$/, "");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function hexId(id: number): string {
  return id.toString(16).toUpperCase();
}

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0]!.trim();
}
