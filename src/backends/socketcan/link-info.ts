/**
 * Pure parser of the kernel's RTM_NEWLINK message for a CAN interface (the reply `ip -details
 * -statistics link show can0` reads): the controller state, bit timing, error counters and
 * restart count that a can-dev driver reports, for the bus-health work of issue 21 (bit rate the
 * interface really runs at, error-active/warning/passive/bus-off, restarts). Bytes in, facts
 * out; the netlink socket that fetches them is I/O and lives elsewhere.
 *
 * Layouts (64-bit and 32-bit Linux alike, host byte order = little-endian on amd64/arm64;
 * include/uapi/linux/netlink.h, rtnetlink.h, if_link.h, can/netlink.h):
 *   nlmsghdr   len u32 | type u16 | flags u16 | seq u32 | pid u32                      (16 bytes)
 *   ifinfomsg  family u8 | pad u8 | type u16 | index i32 | flags u32 | change u32      (16 bytes)
 *   rtattr     len u16 | type u16 | payload, each padded to 4 bytes; nested types may carry
 *              NLA_F_NESTED (0x8000) / NLA_F_NET_BYTEORDER (0x4000), masked off here
 *   IFLA_IFNAME 3, IFLA_LINKINFO 18 { IFLA_INFO_KIND 1 ("can", "vcan", …), IFLA_INFO_DATA 2
 *   { IFLA_CAN_* }, IFLA_INFO_XSTATS 3 (struct can_device_stats for "can") }
 *   IFLA_CAN_BITTIMING 1 (8 × u32: bitrate, sample_point ‰, tq ns, prop_seg, phase_seg1,
 *   phase_seg2, sjw, brp), IFLA_CAN_CLOCK 3 (u32 Hz), IFLA_CAN_STATE 4 (u32 enum can_state),
 *   IFLA_CAN_CTRLMODE 5 (mask u32, flags u32), IFLA_CAN_RESTART_MS 6 (u32),
 *   IFLA_CAN_BERR_COUNTER 8 (txerr u16, rxerr u16), IFLA_CAN_DATA_BITTIMING 9 (as BITTIMING),
 *   IFLA_CAN_BITRATE_CONST 13 (u32[] of the rates a fixed-rate device takes)
 *   can_device_stats: bus_error, error_warning, error_passive, bus_off, arbitration_lost,
 *   restarts (6 × u32)
 */

export const RTM_NEWLINK = 16;
const NLMSG_ERROR = 2;
const NLMSGHDR_SIZE = 16;
const IFINFOMSG_SIZE = 16;
const NLA_TYPE_MASK = 0x3fff;

const IFLA_IFNAME = 3;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_XSTATS = 3;

const IFLA_CAN_BITTIMING = 1;
const IFLA_CAN_CLOCK = 3;
const IFLA_CAN_STATE = 4;
const IFLA_CAN_CTRLMODE = 5;
const IFLA_CAN_RESTART_MS = 6;
const IFLA_CAN_BERR_COUNTER = 8;
const IFLA_CAN_DATA_BITTIMING = 9;
const IFLA_CAN_BITRATE_CONST = 13;

/** enum can_state, in order. */
export const CAN_STATES = ["error-active", "error-warning", "error-passive", "bus-off", "stopped", "sleeping"] as const;
export type CanState = (typeof CAN_STATES)[number] | "unknown";

export interface CanBitTiming {
  readonly bitrate: number;
  /** Sample point in tenths of a percent (875 = 87.5 %). */
  readonly samplePoint: number;
  /** Time quantum in nanoseconds. */
  readonly tq: number;
  readonly propSeg: number;
  readonly phaseSeg1: number;
  readonly phaseSeg2: number;
  readonly sjw: number;
  readonly brp: number;
}

/** struct can_device_stats: what the driver counted since the interface was created. */
export interface CanDeviceStats {
  readonly busError: number;
  readonly errorWarning: number;
  readonly errorPassive: number;
  readonly busOff: number;
  readonly arbitrationLost: number;
  readonly restarts: number;
}

export interface CanLinkInfo {
  readonly state: CanState;
  readonly bitTiming: CanBitTiming | null;
  readonly dataBitTiming: CanBitTiming | null;
  /** Controller clock in Hz, or null if not reported. */
  readonly clockHz: number | null;
  /** Automatic restart delay after bus-off (ms; 0 = manual restart), or null. */
  readonly restartMs: number | null;
  /** Transmit / receive error counters, where the driver can read them (many cannot). */
  readonly berr: { readonly tx: number; readonly rx: number } | null;
  readonly ctrlMode: { readonly mask: number; readonly flags: number } | null;
  /** The bit rates a fixed-rate device accepts (slcan: the Sn table); empty if any rate goes. */
  readonly bitrateConst: readonly number[];
  readonly stats: CanDeviceStats | null;
}

export interface LinkInfo {
  readonly ifindex: number;
  readonly name: string;
  /** IFF_* flags (IFF_UP 0x1, IFF_RUNNING 0x40, …). */
  readonly flags: number;
  /** IFLA_INFO_KIND: "can" for can-dev drivers (real controllers, slcan), "vcan", "vxcan", … */
  readonly kind: string;
  /** The CAN facts, for kind "can"; null for vcan and other non-can-dev links. */
  readonly can: CanLinkInfo | null;
}

/** Why a message could not be parsed (truncated, not RTM_NEWLINK, an error reply). */
export class LinkInfoError extends Error {
  override readonly name = "LinkInfoError";
}

interface Attr {
  readonly type: number;
  readonly view: DataView;
}

/** The attributes in bytes [from, to) of `view`; a truncated attribute is an error. */
function attributes(view: DataView, from: number, to: number): Attr[] {
  const out: Attr[] = [];
  let p = from;
  while (p + 4 <= to) {
    const len = view.getUint16(p, true);
    const type = view.getUint16(p + 2, true) & NLA_TYPE_MASK;
    if (len < 4 || p + len > to) throw new LinkInfoError(`attribute type ${type} at byte ${p} claims ${len} bytes, ${to - p} left`);
    out.push({ type, view: new DataView(view.buffer, view.byteOffset + p + 4, len - 4) });
    p += (len + 3) & ~3;
  }
  return out;
}

function nested(a: Attr): Attr[] {
  return attributes(a.view, 0, a.view.byteLength);
}

function u32(a: Attr, at = 0): number {
  if (a.view.byteLength < at + 4) throw new LinkInfoError(`attribute type ${a.type} too short (${a.view.byteLength} bytes)`);
  return a.view.getUint32(at, true);
}

function cString(a: Attr): string {
  const bytes = new Uint8Array(a.view.buffer, a.view.byteOffset, a.view.byteLength);
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

function bitTiming(a: Attr): CanBitTiming {
  if (a.view.byteLength < 32) throw new LinkInfoError(`bit timing attribute too short (${a.view.byteLength} bytes)`);
  const f = (i: number) => a.view.getUint32(i * 4, true);
  return { bitrate: f(0), samplePoint: f(1), tq: f(2), propSeg: f(3), phaseSeg1: f(4), phaseSeg2: f(5), sjw: f(6), brp: f(7) };
}

function deviceStats(a: Attr): CanDeviceStats | null {
  if (a.view.byteLength < 24) return null;
  const f = (i: number) => a.view.getUint32(i * 4, true);
  return { busError: f(0), errorWarning: f(1), errorPassive: f(2), busOff: f(3), arbitrationLost: f(4), restarts: f(5) };
}

function canInfo(data: Attr[], xstats: Attr | null): CanLinkInfo {
  let state: CanState = "unknown";
  let bt: CanBitTiming | null = null;
  let dbt: CanBitTiming | null = null;
  let clockHz: number | null = null;
  let restartMs: number | null = null;
  let berr: CanLinkInfo["berr"] = null;
  let ctrlMode: CanLinkInfo["ctrlMode"] = null;
  let bitrateConst: number[] = [];
  for (const a of data) {
    switch (a.type) {
      case IFLA_CAN_STATE:
        state = CAN_STATES[u32(a)] ?? "unknown";
        break;
      case IFLA_CAN_BITTIMING:
        bt = bitTiming(a);
        break;
      case IFLA_CAN_DATA_BITTIMING:
        dbt = bitTiming(a);
        break;
      case IFLA_CAN_CLOCK:
        clockHz = u32(a);
        break;
      case IFLA_CAN_RESTART_MS:
        restartMs = u32(a);
        break;
      case IFLA_CAN_BERR_COUNTER:
        if (a.view.byteLength < 4) throw new LinkInfoError("error counter attribute too short");
        berr = { tx: a.view.getUint16(0, true), rx: a.view.getUint16(2, true) };
        break;
      case IFLA_CAN_CTRLMODE:
        ctrlMode = { mask: u32(a), flags: u32(a, 4) };
        break;
      case IFLA_CAN_BITRATE_CONST:
        bitrateConst = Array.from({ length: Math.floor(a.view.byteLength / 4) }, (_, i) => a.view.getUint32(i * 4, true));
        break;
    }
  }
  // A bit rate of 0 means "not configured yet" (a fixed-rate device before its first set-up).
  if (bt !== null && bt.bitrate === 0) bt = null;
  return { state, bitTiming: bt, dataBitTiming: dbt, clockHz, restartMs, berr, ctrlMode, bitrateConst, stats: xstats ? deviceStats(xstats) : null };
}

/**
 * Parses one RTM_NEWLINK message (a netlink reply may hold several; `offset` picks one).
 * Throws LinkInfoError for anything else or for a truncated message.
 */
export function parseLinkMessage(bytes: Uint8Array, offset = 0): LinkInfo {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength - offset < NLMSGHDR_SIZE) throw new LinkInfoError(`${bytes.byteLength - offset} bytes: shorter than a netlink header`);
  const len = view.getUint32(offset, true);
  const type = view.getUint16(offset + 4, true);
  if (len < NLMSGHDR_SIZE || offset + len > bytes.byteLength) throw new LinkInfoError(`netlink message of ${len} bytes, ${bytes.byteLength - offset} present`);
  if (type === NLMSG_ERROR) {
    const errno = len >= NLMSGHDR_SIZE + 4 ? -view.getInt32(offset + NLMSGHDR_SIZE, true) : 0;
    throw new LinkInfoError(`the kernel answered with an error (errno ${errno})`);
  }
  if (type !== RTM_NEWLINK) throw new LinkInfoError(`netlink message type ${type}, not RTM_NEWLINK (${RTM_NEWLINK})`);
  if (len < NLMSGHDR_SIZE + IFINFOMSG_SIZE) throw new LinkInfoError("RTM_NEWLINK without its ifinfomsg");
  const ifi = offset + NLMSGHDR_SIZE;
  const ifindex = view.getInt32(ifi + 4, true);
  const flags = view.getUint32(ifi + 8, true);
  let name = "";
  let kind = "";
  let data: Attr[] | null = null;
  let xstats: Attr | null = null;
  for (const a of attributes(view, ifi + IFINFOMSG_SIZE, offset + len)) {
    if (a.type === IFLA_IFNAME) name = cString(a);
    else if (a.type === IFLA_LINKINFO) {
      for (const li of nested(a)) {
        if (li.type === IFLA_INFO_KIND) kind = cString(li);
        else if (li.type === IFLA_INFO_DATA) data = nested(li);
        else if (li.type === IFLA_INFO_XSTATS) xstats = li;
      }
    }
  }
  return { ifindex, name, flags, kind, can: kind === "can" ? canInfo(data ?? [], xstats) : null };
}

/** Reads the `.hex` fixture format (hex digits, any whitespace) into bytes. */
export function bytesFromHex(text: string): Uint8Array {
  const hex = text.replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new LinkInfoError("not an even run of hex digits");
  return Uint8Array.from({ length: hex.length / 2 }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}
