/**
 * The Ampio M-SERV's MQTT topic tree, served from the bus (-mqtt-ampio): what Ampio's Node-RED
 * nodes and mateuszchrobok/ampio-hacc read from an M-SERV, for installations that have only a CAN
 * adapter. docs/ampio.md "The Ampio MQTT tree" lists every topic, its payload, which source it was
 * checked against and what could not be confirmed (not served rather than guessed).
 *
 *   ampio/from/<MAC>/state/<type>/<idx>   retained, plain text: i o f t au au16 rgbw rs rm armed alarm
 *   ampio/from/<MAC>/availability         retained online | offline (can-server's addition)
 *   ampio/from/<MAC>/b/4F                 diagnostics {"d":[254,79,V,T],"m":<id>}
 *   ampio/from/<MAC>/event                an event broadcast (FE 2B …) as hex
 *   ampio/from/can/dev/list               the answer to ampio/to/can/dev/list
 *   ampio/from/<MAC>/description          the answer to ampio/to/<MAC>/description
 *   ampio/to/<MAC>/{o,f,rgbw,rs,rm}/<idx>/cmd, ampio/to/<MAC>/raw   commands (-mqtt-tx)
 *
 * <MAC> is the module's CAN id in upper-case hex without leading zeros (1D4C for 0x00001D4C).
 * The pure parts (topic and payload formats, command → frames) are functions here; AmpioTree
 * ties them to the bridge through a small sink, so the bridge keeps its structure.
 */
import { type AmpioReading, coverCommand, type DecodeResult, dimOutput, flagCommand, type HouseNames, multiFrameCommand, COMMAND_MAX_BYTES, rgbwCommand, switchOutput } from "../../ampio/index.ts";
import type { CanFrame } from "../../can/frame.ts";
import type { AmpioDecoder } from "../ampio-decoder.ts";

export const AMPIO_ROOT = "ampio";
/** What the bridge subscribes to (requests and commands). */
export const AMPIO_REQUESTS = `${AMPIO_ROOT}/to/#`;
export const AMPIO_AVAILABILITY_FILTER = `${AMPIO_ROOT}/from/+/availability`;
export const DEV_LIST_REQUEST = `${AMPIO_ROOT}/to/can/dev/list`;
export const DEV_LIST_ANSWER = `${AMPIO_ROOT}/from/can/dev/list`;

/** The M-SERV spelling of a module id: upper-case hex, no leading zeros. */
export function macOf(id: number): string {
  return id.toString(16).toUpperCase();
}

/** A MAC from a topic (any case, leading zeros allowed, as the Node-RED nodes strip them) → id. */
export function idOfMac(mac: string): number | null {
  if (!/^[0-9A-Fa-f]{1,8}$/.test(mac)) return null;
  const id = parseInt(mac, 16);
  return id <= 0x1fffffff ? id : null;
}

export function stateTopic(id: number, type: string, idx: number): string {
  return `${AMPIO_ROOT}/from/${macOf(id)}/state/${type}/${idx}`;
}

export function availabilityTopic(id: number): string {
  return `${AMPIO_ROOT}/from/${macOf(id)}/availability`;
}

/** The module id of an ampio/from/<MAC>/availability topic, or null. */
export function moduleOfTreeAvailability(topic: string): number | null {
  const m = /^ampio\/from\/([0-9A-F]{1,8})\/availability$/.exec(topic);
  return m === null ? null : idOfMac(m[1]!);
}

/** Decoder value family → M-SERV state type (families not listed are not served: docs/ampio.md). */
const FAMILY_TYPE: Readonly<Record<string, string>> = {
  bin: "i",
  bout: "o",
  flag: "f",
  temperature: "t",
  aout: "au",
  s16b: "au16",
  armed: "armed",
  alarm: "alarm",
};

function num(v: AmpioReading["value"]): string {
  return typeof v === "boolean" ? (v ? "1" : "0") : String(v);
}

/** Retained state messages for a module's values (live or from the inventory). Pure. */
export function stateMessages(id: number, values: readonly { readonly name: string; readonly value: AmpioReading["value"] }[]): { topic: string; payload: string }[] {
  const out: { topic: string; payload: string }[] = [];
  const rgb: Record<string, number> = {};
  for (const v of values) {
    const parts = v.name.split(".");
    const family = parts[0]!;
    if (family === "rgb") {
      if (typeof v.value === "number") rgb[parts[1]!] = v.value;
      continue;
    }
    if (family === "heating" && parts.length === 3) {
      if (parts[2] === "target_temperature") out.push({ topic: stateTopic(id, "rs", Number(parts[1])), payload: String(v.value) });
      else if (parts[2] === "mode") out.push({ topic: stateTopic(id, "rm", Number(parts[1])), payload: String(v.value) });
      continue;
    }
    const type = FAMILY_TYPE[family];
    const idx = Number(parts[1]);
    if (type === undefined || parts.length !== 2 || !Number.isInteger(idx)) continue;
    out.push({ topic: stateTopic(id, type, idx), payload: num(v.value) });
  }
  if (rgb.red !== undefined && rgb.green !== undefined && rgb.blue !== undefined && rgb.white !== undefined) {
    out.push({ topic: stateTopic(id, "rgbw", 1), payload: `${rgb.red},${rgb.green},${rgb.blue},${rgb.white}` });
  }
  return out;
}

/** The diagnostics message of a decoded 0x4F frame (not retained), or null for other frames. */
export function diagnosticsMessage(r: Extract<DecodeResult, { kind: "decoded" }>): { topic: string; payload: string } | null {
  const p = r.payload;
  if (p.type !== "diagnostics") return null;
  const d = [0xfe, 0x4f, Math.round(p.supplyVoltage * 5), p.moduleTemperature + 100];
  return { topic: `${AMPIO_ROOT}/from/${macOf(r.moduleId)}/b/4F`, payload: JSON.stringify({ d, m: r.moduleId }) };
}

/** An event broadcast's message: the frame's data as upper-case hex (not retained). */
export function eventMessage(id: number, data: Uint8Array): { topic: string; payload: string } {
  return { topic: `${AMPIO_ROOT}/from/${macOf(id)}/event`, payload: Buffer.from(data).toString("hex").toUpperCase() };
}

// --- Commands -----------------------------------------------------------------------------------

export type TreeRefusal = "malformed" | "unknown_module" | "undocumented";

export type ParsedRequest =
  | { readonly kind: "dev-list" }
  | { readonly kind: "description"; readonly id: number }
  | { readonly kind: "command"; readonly id: number; readonly frames: CanFrame[]; readonly what: string }
  | { readonly kind: "ignored" }
  | { readonly kind: "refused"; readonly refusal: TreeRefusal; readonly reason: string };

/** What the command path needs to know about a module (from the inventory and the names file). */
export interface ModuleFacts {
  /** Heard on the bus or named in the names file. */
  known(id: number): boolean;
  /** How a channel's commands are meant: "cover", "dimmer", "switch", … or undefined. */
  kind(id: number, valueName: string): string | undefined;
  /** Whether the module has reported this value (e.g. aout.2). */
  hasValue(id: number, valueName: string): boolean;
}

const refused = (refusal: TreeRefusal, reason: string): ParsedRequest => ({ kind: "refused", refusal, reason });

function intIn(text: string, min: number, max: number): number | null {
  if (!/^\d{1,3}$/.test(text)) return null;
  const v = Number(text);
  return v >= min && v <= max ? v : null;
}

/** A message on ampio/to/… → what to do. Pure (facts are passed in). */
export function parseRequest(topic: string, payloadText: string, facts: ModuleFacts): ParsedRequest {
  if (topic === DEV_LIST_REQUEST) return { kind: "dev-list" };
  const parts = topic.split("/");
  if (parts[0] !== AMPIO_ROOT || parts[1] !== "to" || parts.length < 4) return { kind: "ignored" };
  const mac = parts[2]!;
  // ampio/to/info/version, ampio/to/event, …: M-SERV services with no CAN meaning (docs/ampio.md).
  const id = idOfMac(mac);
  if (id === null) return mac === "can" || mac === "info" || mac === "event" ? { kind: "ignored" } : refused("malformed", `"${mac}" is not a module address (hex CAN id)`);
  if (!facts.known(id)) return refused("unknown_module", `module ${macOf(id)} has not been heard on the bus and is not in the names file`);
  const rest = parts.slice(3);
  if (rest.length === 1 && rest[0] === "description") return { kind: "description", id };
  const payload = payloadText.trim();
  if (rest.length === 1 && rest[0] === "raw") {
    if (!/^([0-9A-Fa-f]{2})+$/.test(payload) || payload.length > COMMAND_MAX_BYTES * 2) return refused("malformed", `raw payload must be 1..${COMMAND_MAX_BYTES} bytes of hex`);
    const bytes = payload.match(/../g)!.map((b) => parseInt(b, 16));
    return { kind: "command", id, frames: multiFrameCommand(id, bytes), what: `raw ${payload.toUpperCase()}` };
  }
  if (rest.length !== 3 || rest[2] !== "cmd") return refused("malformed", `unknown command topic ${topic}`);
  const [type, idxText] = rest as [string, string];
  const idx = intIn(idxText, 1, 255);
  if (idx === null) return refused("malformed", `channel "${idxText}" must be 1..255`);
  switch (type) {
    case "o": {
      const v = intIn(payload, 0, 255);
      if (v === null) return refused("malformed", `output value must be 0..255, got ${JSON.stringify(payload.slice(0, 16))}`);
      const kind = facts.kind(id, `bout.${idx}`) ?? facts.kind(id, `aout.${idx}`);
      if (kind === "cover" || kind === "valve") {
        if (v > 2) return refused("malformed", "a cover takes 0 (stop), 1 (close) or 2 (open)");
        return { kind: "command", id, frames: coverCommand(id, idx, v as 0 | 1 | 2), what: `cover ${idx} ${["stop", "close", "open"][v]}` };
      }
      const dimmer = kind === "dimmer" || (kind === undefined && facts.hasValue(id, `aout.${idx}`) && !facts.hasValue(id, `bout.${idx}`));
      if (dimmer || v > 1) return { kind: "command", id, frames: [dimOutput(id, idx, v)], what: `output ${idx} level ${v}` };
      return { kind: "command", id, frames: [switchOutput(id, idx, v === 1)], what: `output ${idx} ${v === 1 ? "on" : "off"}` };
    }
    case "f": {
      if (payload !== "0" && payload !== "1") return refused("malformed", "a flag takes 0 or 1");
      return { kind: "command", id, frames: flagCommand(id, idx, payload === "1"), what: `flag ${idx} ${payload}` };
    }
    case "rgbw": {
      if (idx !== 1) return refused("malformed", "an RGBW module has one colour channel (rgbw/1)");
      if (payload.toLowerCase() === "off") return { kind: "command", id, frames: rgbwCommand(id, [0, 0, 0, 0]), what: "rgbw off" };
      const vals = payload.split(",").map((s) => intIn(s.trim(), 0, 255));
      if ((vals.length !== 3 && vals.length !== 4) || vals.some((v) => v === null)) return refused("malformed", 'rgbw takes "R,G,B", "R,G,B,W" (0..255) or "off"');
      return { kind: "command", id, frames: rgbwCommand(id, vals as number[]), what: `rgbw ${payload}` };
    }
    case "rs":
    case "rm":
      // No public source shows the CAN bytes of a setpoint or mode change (aioampio's climates
      // controller sends none): refused and counted rather than guessed (docs/ampio.md).
      return refused("undocumented", `${type} commands: the CAN frame for a heating ${type === "rs" ? "setpoint" : "mode"} is not publicly documented`);
    default:
      return refused("malformed", `unknown command type "${type}"`);
  }
}

// --- Inventory and descriptions -----------------------------------------------------------------

/** Description type codes (the Node-RED nodes' lookup: 1 inputs, 12 outputs, 6 flags, 3 temperatures). */
const DESCRIPTION_CODE: Readonly<Record<string, number>> = { bin: 1, bout: 12, flag: 6, temperature: 3 };

function b64(s: string): string {
  return Buffer.from(s, "utf8").toString("base64");
}

/** One module's inventory row, only the keys real clients accept (docs/ampio.md). */
export function inventoryRow(id: number, values: readonly { name: string }[], names: HouseNames): Record<string, string | number> {
  const maxOf = (family: string): number => {
    let n = 0;
    for (const v of values) {
      if (!v.name.startsWith(family + ".")) continue;
      const i = Number(v.name.slice(family.length + 1).split(".")[0]);
      if (Number.isInteger(i) && i > n) n = i;
    }
    return n;
  };
  const m = names.module(id);
  return {
    user_mac: macOf(id),
    mac: macOf(id),
    typ: m?.type ?? 0,
    pcb: m?.pcb ?? 0,
    soft_ver: m?.softVersion ?? 0,
    protocol: 0,
    date_prod: 0,
    i: maxOf("bin"),
    o: Math.max(maxOf("bout"), maxOf("aout")),
    a: 0,
    au: maxOf("aout"),
    t: maxOf("temperature"),
    f: maxOf("flag"),
    name: b64(m?.name ?? ""),
  };
}

/** The answer to ampio/to/<MAC>/description: the named channels of the module. */
export function descriptionAnswer(id: number, names: HouseNames): string {
  const d: { t: number; n: number; d: string }[] = [];
  const m = names.module(id);
  if (m !== undefined) {
    for (const [valueName, c] of m.channels) {
      const [family, idxText] = valueName.split(".");
      const t = DESCRIPTION_CODE[family!];
      const idx = Number(idxText);
      if (t === undefined || !Number.isInteger(idx)) continue;
      d.push({ t, n: idx - 1, d: b64(`${FAMILY_TYPE[family!]}:${c.name}`) });
    }
  }
  return JSON.stringify({ s: 1, d });
}

// --- Tying it to the bridge ---------------------------------------------------------------------

/** What the command path knows of modules: the decoder's inventory and the names file. */
export function moduleFacts(decoder: AmpioDecoder, names: HouseNames): ModuleFacts {
  return {
    known: (id) => decoder.inventory.has(id) || names.module(id) !== undefined,
    kind: (id, valueName) => names.channel(id, valueName)?.kind,
    hasValue: (id, valueName) => decoder.inventory.hasValue(id, valueName),
  };
}

/** What the tree needs from the bridge. */
export interface TreeSink {
  /** A retained message; published only if it changed, unless `always` (after a connect). */
  retained(topic: string, payload: string, always?: boolean): void;
  once(topic: string, payload: string): void;
}

export class AmpioTree {
  readonly facts: ModuleFacts;

  constructor(
    private readonly decoder: AmpioDecoder,
    readonly names: HouseNames,
    private readonly sink: TreeSink,
  ) {
    this.facts = moduleFacts(decoder, names);
  }

  /** A decoded frame: its state topics (the sink publishes changes only) and diagnostics. */
  decoded(r: Extract<DecodeResult, { kind: "decoded" }>): void {
    const diag = diagnosticsMessage(r);
    if (diag !== null) this.sink.once(diag.topic, diag.payload);
    for (const m of stateMessages(r.moduleId, r.values)) this.sink.retained(m.topic, m.payload);
  }

  event(id: number, data: Uint8Array): void {
    const e = eventMessage(id, data);
    this.sink.once(e.topic, e.payload);
  }

  moduleState(id: number, online: boolean): void {
    this.sink.retained(availabilityTopic(id), online ? "online" : "offline", true);
  }

  /** After a connect: every module's availability and state again. */
  requeueAll(now: number): void {
    const snap = this.decoder.inventory.snapshot(now);
    for (const m of snap.modules) {
      this.sink.retained(availabilityTopic(m.id), this.decoder.isOnline(m.id) ? "online" : "offline", true);
      for (const t of stateMessages(m.id, m.values)) this.sink.retained(t.topic, t.payload, true);
    }
  }

  devList(now: number): string {
    const snap = this.decoder.inventory.snapshot(now);
    return JSON.stringify({ devices: snap.modules.map((m) => inventoryRow(m.id, m.values, this.names)) });
  }
}
