/**
 * The MQTT topic tree and payloads of the bridge, pure (no I/O): where each thing is published,
 * how a frame becomes a payload, how a command payload becomes a frame, and the Home Assistant
 * discovery documents. The tree (README "MQTT bridge" shows examples):
 *
 *   <prefix>/availability                      online | offline   retained; offline is the last will
 *   <prefix>/raw/<ID>                          one bus frame, JSON (below); ID = 8 hex digits
 *                                              (extended) or 3 (standard), as candump writes it
 *   <prefix>/<bus>/raw/<ID>                    the same with several buses: <bus> = the [[bus]]
 *                                              name, as the DBC signals' <prefix>/<bus>/signals/…
 *   <prefix>/tx                                command topic (-mqtt-tx): JSON as below or candump text
 *   <prefix>/<bus>/tx                          the same for one bus, with several buses (<prefix>/tx: the first)
 *   <prefix>/ampio/<MODULE>/availability       online | offline   retained (offline = stale)
 *   <prefix>/ampio/<MODULE>/<family>/<n>[/<field>]   one decoded value, retained:
 *                                              a number, true | false, or text (the SATEL response)
 *
 * Raw frame payload: `{"ts":1764070000123,"id":487071279,"ext":true,"len":4,"data":"FE06D704"}`
 * (+ `"rtr":true` / `"fd":true,"brs":…` when set). JSON because every consumer parses it without
 * a custom decoder (Node-RED's json node, Home Assistant's value_json, jq, Telegraf); `data` is
 * hex because it is what candump, cansend and the Ampio documentation show; `id` is a number so
 * a flow can compare it, the topic carries the hex form for wildcards.
 */
import { type CanFrame, dataFrame, fdFrame, FrameSyntaxError, frameProblem, isExtended, isRemote, parseFrame, remoteFrame, arbitrationId, CANFD_BRS, CANFD_ESI } from "../../can/frame.ts";
import type { AmpioReading } from "../../ampio/index.ts";

export const HA_DISCOVERY_PREFIX = "homeassistant";

export interface Topics {
  readonly prefix: string;
  readonly availability: string;
  readonly tx: string;
  /** A bus's command topic (several buses). */
  busTx(bus: string): string;
  /** A frame's raw topic; `bus` (several buses): its bus's name, a level before `raw`. */
  raw(f: CanFrame, bus?: string): string;
  moduleAvailability(moduleId: number): string;
  /** Subscription matching every module's availability topic. */
  readonly moduleAvailabilityFilter: string;
  /** The module id of a module availability topic, or null. */
  moduleOfAvailability(topic: string): number | null;
  value(moduleId: number, name: string): string;
}

/** `-mqtt-prefix` without leading/trailing slashes; MQTT wildcards are refused. */
export function normalizePrefix(prefix: string): string {
  const p = prefix.trim().replace(/^\/+|\/+$/g, "");
  if (p === "" || /[+#\u0000]/.test(p)) throw new RangeError(`-mqtt-prefix ${JSON.stringify(prefix)}: must be non-empty and contain no + # or NUL`);
  return p;
}

const HEX = "0123456789ABCDEF";

function hex(data: Uint8Array): string {
  let s = "";
  for (let i = 0; i < data.length; i++) s += HEX[data[i]! >> 4]! + HEX[data[i]! & 15]!;
  return s;
}

export function moduleHex(id: number): string {
  return id.toString(16).toUpperCase().padStart(8, "0");
}

export function frameIdHex(f: CanFrame): string {
  return arbitrationId(f).toString(16).toUpperCase().padStart(isExtended(f) ? 8 : 3, "0");
}

export function topicsFor(prefixFlag: string): Topics {
  const prefix = normalizePrefix(prefixFlag);
  return {
    prefix,
    availability: `${prefix}/availability`,
    tx: `${prefix}/tx`,
    busTx: (bus) => `${prefix}/${bus}/tx`,
    raw: (f, bus) => (bus === undefined ? `${prefix}/raw/${frameIdHex(f)}` : `${prefix}/${bus}/raw/${frameIdHex(f)}`),
    moduleAvailability: (id) => `${prefix}/ampio/${moduleHex(id)}/availability`,
    moduleAvailabilityFilter: `${prefix}/ampio/+/availability`,
    moduleOfAvailability(topic) {
      const head = `${prefix}/ampio/`;
      if (!topic.startsWith(head) || !topic.endsWith("/availability")) return null;
      const mod = topic.slice(head.length, -"/availability".length);
      if (!/^[0-9A-F]{8}$/.test(mod)) return null;
      const id = parseInt(mod, 16);
      return id <= 0x1fffffff ? id : null;
    },
    value: (id, name) => `${prefix}/ampio/${moduleHex(id)}/${name.replaceAll(".", "/")}`,
  };
}

/** The raw-frame JSON (see the module comment). */
export function framePayload(f: CanFrame, ts: number): string {
  let s = `{"ts":${ts},"id":${arbitrationId(f)},"ext":${isExtended(f)},"len":${f.len},"data":"${hex(f.data)}"`;
  if (isRemote(f)) s += `,"rtr":true`;
  if (f.fd) s += `,"fd":true,"brs":${(f.fdFlags & CANFD_BRS) !== 0},"esi":${(f.fdFlags & CANFD_ESI) !== 0}`;
  return s + "}";
}

/** A decoded value as its payload: the bare number, true/false, or the text. */
export function valuePayload(v: AmpioReading["value"]): string {
  return typeof v === "string" ? v : String(v);
}

export type CommandRefusal = "malformed" | "invalid";

/**
 * A command payload → a frame, or why not. Accepts the raw-frame JSON (`id` number or hex
 * string, `ext` optional: ids above 0x7FF are extended, `data` hex, `rtr`, `fd`, `brs`; `ts` is
 * ignored) or candump/cansend text (`0F000000#1D0A1E2F0101`).
 */
export function parseCommand(payload: string): { frame: CanFrame } | { refusal: CommandRefusal; reason: string } {
  const text = payload.trim();
  let frame: CanFrame;
  if (text.startsWith("{")) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return { refusal: "malformed", reason: "not JSON" };
    }
    const r = frameFromJson(v);
    if (typeof r === "string") return { refusal: "malformed", reason: r };
    frame = r;
  } else {
    try {
      frame = parseFrame(text);
    } catch (e) {
      return { refusal: "malformed", reason: e instanceof FrameSyntaxError ? e.message : String(e) };
    }
  }
  const problem = frameProblem(frame);
  if (problem !== null) return { refusal: "invalid", reason: problem };
  return { frame };
}

function frameFromJson(v: unknown): CanFrame | string {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "not a JSON object";
  const o = v as Record<string, unknown>;
  let id: number;
  if (typeof o.id === "number") id = o.id;
  else if (typeof o.id === "string" && /^(0x)?[0-9a-fA-F]{1,8}$/.test(o.id)) id = parseInt(o.id.replace(/^0x/, ""), 16);
  else return "id must be a number or a hex string";
  if (!Number.isInteger(id) || id < 0 || id > 0x1fffffff) return "id out of range";
  if (o.ext !== undefined && typeof o.ext !== "boolean") return "ext must be true or false";
  const ext = o.ext === undefined ? id > 0x7ff : o.ext;
  if (!ext && id > 0x7ff) return "standard id above 0x7FF";
  const dataText = o.data ?? "";
  if (typeof dataText !== "string" || !/^([0-9a-fA-F]{2})*$/.test(dataText)) return "data must be hex bytes";
  const data = Uint8Array.from(dataText.match(/../g) ?? [], (b) => parseInt(b, 16));
  if (o.rtr === true) {
    const len = o.len === undefined ? 0 : o.len;
    if (typeof len !== "number" || !Number.isInteger(len) || len < 0 || len > 8) return "rtr len must be 0..8";
    return remoteFrame(id, len, ext);
  }
  if (o.fd === true) return fdFrame(id, data, o.brs === true ? CANFD_BRS : 0, ext);
  if (data.length > 8) return "classic frame longer than 8 bytes";
  return dataFrame(id, data, ext);
}

// --- Home Assistant MQTT discovery ---------------------------------------------------------------

/** Values that get a discovered sensor: the ones with a unit (temperatures, supply voltage). */
export function discoverable(v: AmpioReading): boolean {
  return v.unit !== undefined && typeof v.value === "number";
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
}

/** The gateway's own Home Assistant device: every module device names it in `via_device`. */
export function gatewayNode(topics: Topics): string {
  return `can_server_${slug(topics.prefix)}`;
}

/**
 * Discovery of the gateway device itself (a connectivity binary sensor on <prefix>/availability),
 * so the `via_device` of every module device names a device Home Assistant knows.
 */
export function gatewayDiscoveryMessage(topics: Topics): { topic: string; payload: string } {
  const node = gatewayNode(topics);
  const config = {
    name: "Connectivity",
    unique_id: `${node}_connectivity`,
    state_topic: topics.availability,
    payload_on: "online",
    payload_off: "offline",
    device_class: "connectivity",
    entity_category: "diagnostic",
    device: { identifiers: [node], name: `can-server ${topics.prefix}`, manufacturer: "can-server", model: "CAN gateway" },
  };
  return { topic: `${HA_DISCOVERY_PREFIX}/binary_sensor/${node}/connectivity/config`, payload: JSON.stringify(config) };
}

/**
 * Home Assistant device class of a value: a heating zone's temperature difference is a
 * difference (`temperature_delta`: converted without the offset in °F), not an absolute temperature.
 */
function deviceClass(v: AmpioReading): string {
  if (v.unit === "V") return "voltage";
  return v.name.endsWith(".temperature_diff") ? "temperature_delta" : "temperature";
}

/** Names a names file gives a module and its values (absent: ids). */
export interface DiscoveryNames {
  readonly module?: string;
  readonly room?: string;
  readonly value?: string;
}

/** Discovery topic and retained config document for one value of one module. */
export function discoveryMessage(topics: Topics, moduleId: number, v: AmpioReading, names: DiscoveryNames = {}): { topic: string; payload: string } {
  const mod = moduleHex(moduleId);
  const node = `${gatewayNode(topics)}_${mod.toLowerCase()}`;
  const object = slug(v.name);
  const device: Record<string, unknown> = {
    identifiers: [node],
    name: names.module ?? `Ampio ${mod}`,
    manufacturer: "Ampio",
    model: `CAN module ${mod}`,
    via_device: gatewayNode(topics),
  };
  if (names.room !== undefined) device.suggested_area = names.room;
  // No object_id (deprecated since Home Assistant 2025.10): the entity id follows from the names.
  const config = {
    name: names.value ?? v.name.replaceAll(".", " ").replaceAll("_", " "),
    unique_id: `${node}_${object}`,
    state_topic: topics.value(moduleId, v.name),
    unit_of_measurement: v.unit,
    device_class: deviceClass(v),
    state_class: "measurement",
    availability: [{ topic: topics.availability }, { topic: topics.moduleAvailability(moduleId) }],
    availability_mode: "all",
    device,
  };
  return { topic: `${HA_DISCOVERY_PREFIX}/sensor/${node}/${object}/config`, payload: JSON.stringify(config) };
}
