/**
 * Pure reading of SocketCAN error frames (linux/can/error.h; docs/protocols.md §1): a frame whose
 * can_id has CAN_ERR_FLAG is not a bus frame but a report from the controller's driver. The error
 * classes are bits of the can_id; data[1] details a controller (CRTL) report, data[6]/data[7]
 * carry the transmit/receive error counters (CAN_ERR_CNT marks them valid on kernels ≥ 6.2;
 * older drivers fill them for CRTL reports without the flag). Bytes in, facts out.
 */
import { CAN_ERR_FLAG, type CanFrame } from "../../can/frame.ts";

/** can_id error class bits (linux/can/error.h). */
export const CAN_ERR_TX_TIMEOUT = 0x1;
export const CAN_ERR_LOSTARB = 0x2;
export const CAN_ERR_CRTL = 0x4;
export const CAN_ERR_PROT = 0x8;
export const CAN_ERR_TRX = 0x10;
export const CAN_ERR_ACK = 0x20;
export const CAN_ERR_BUSOFF = 0x40;
export const CAN_ERR_BUSERROR = 0x80;
export const CAN_ERR_RESTARTED = 0x100;
export const CAN_ERR_CNT = 0x200;
/** Every class: the CAN_RAW_ERR_FILTER mask that subscribes to all of them (CAN_ERR_MASK). */
export const CAN_ERR_MASK = 0x1fffffff;

/** data[1] for CAN_ERR_CRTL. */
export const CAN_ERR_CRTL_RX_OVERFLOW = 0x01;
export const CAN_ERR_CRTL_TX_OVERFLOW = 0x02;
export const CAN_ERR_CRTL_RX_WARNING = 0x04;
export const CAN_ERR_CRTL_TX_WARNING = 0x08;
export const CAN_ERR_CRTL_RX_PASSIVE = 0x10;
export const CAN_ERR_CRTL_TX_PASSIVE = 0x20;
export const CAN_ERR_CRTL_ACTIVE = 0x40;

/**
 * The `class` label values of can_bus_errors_total, in order. A controller report is split by
 * what it says (warning, passive, overflow, back to active), the rest are the can_id classes.
 */
export const ERROR_CLASSES = [
  "tx_timeout",
  "lostarb",
  "crtl_warning",
  "crtl_passive",
  "crtl_overflow",
  "crtl_active",
  "crtl_other",
  "prot",
  "trx",
  "ack",
  "busoff",
  "buserror",
  "restarted",
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

/** What the controller's state becomes after this report, if it says. */
export type ReportedState = "error-active" | "error-warning" | "error-passive" | "bus-off" | null;

export interface ErrorReport {
  /** The classes this frame reports (one frame may carry several). */
  readonly classes: readonly ErrorClass[];
  readonly state: ReportedState;
  /** The controller's transmit / receive error counters, when the frame carries them. */
  readonly counters: { readonly tx: number; readonly rx: number } | null;
}

export function isErrorFrame(frame: CanFrame): boolean {
  return (frame.canId & CAN_ERR_FLAG) !== 0;
}

/** Reads one error frame (the caller checked isErrorFrame). */
export function readErrorFrame(frame: CanFrame): ErrorReport {
  const id = frame.canId;
  const d = frame.data;
  const byte = (i: number): number => (i < frame.len ? d[i] ?? 0 : 0);
  const classes: ErrorClass[] = [];
  let state: ReportedState = null;
  if (id & CAN_ERR_TX_TIMEOUT) classes.push("tx_timeout");
  if (id & CAN_ERR_LOSTARB) classes.push("lostarb");
  if (id & CAN_ERR_CRTL) {
    const c = byte(1);
    if (c & (CAN_ERR_CRTL_RX_WARNING | CAN_ERR_CRTL_TX_WARNING)) classes.push("crtl_warning");
    if (c & (CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE)) classes.push("crtl_passive");
    if (c & (CAN_ERR_CRTL_RX_OVERFLOW | CAN_ERR_CRTL_TX_OVERFLOW)) classes.push("crtl_overflow");
    if (c & CAN_ERR_CRTL_ACTIVE) classes.push("crtl_active");
    if ((c & 0x7f) === 0) classes.push("crtl_other");
    // The worst state named wins (a driver may set a warning and a passive bit together).
    if (c & (CAN_ERR_CRTL_RX_PASSIVE | CAN_ERR_CRTL_TX_PASSIVE)) state = "error-passive";
    else if (c & (CAN_ERR_CRTL_RX_WARNING | CAN_ERR_CRTL_TX_WARNING)) state = "error-warning";
    else if (c & CAN_ERR_CRTL_ACTIVE) state = "error-active";
  }
  if (id & CAN_ERR_PROT) classes.push("prot");
  if (id & CAN_ERR_TRX) classes.push("trx");
  if (id & CAN_ERR_ACK) classes.push("ack");
  if (id & CAN_ERR_BUSOFF) classes.push("busoff");
  if (id & CAN_ERR_BUSERROR) classes.push("buserror");
  if (id & CAN_ERR_RESTARTED) classes.push("restarted");
  // A restart brings the controller back error-active; a bus-off in the same frame is the newer fact.
  if (id & CAN_ERR_RESTARTED) state = "error-active";
  if (id & CAN_ERR_BUSOFF) state = "bus-off";
  const counters = id & CAN_ERR_CNT || id & CAN_ERR_CRTL ? (frame.len >= 8 ? { tx: byte(6), rx: byte(7) } : null) : null;
  return { classes, state, counters };
}
