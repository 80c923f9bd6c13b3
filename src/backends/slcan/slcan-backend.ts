/**
 * `-backend slcan`: a Lawicel slcan USB-serial adapter driven directly on its tty (-serial, -baud),
 * set to -bitrate with `Sn` and opened with `O` after every (re)open. It is the serial backend
 * (../serial/serial-backend.ts: tty, hot-plug, reconnect with backoff, short TX queue) speaking
 * the slcan wire (./slcan-wire.ts).
 */
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { BackendFatalError, DEFAULT_BITRATE } from "../backend.ts";
import type { BackoffOptions } from "../backoff.ts";
import { SerialBackend } from "../serial/serial-backend.ts";
import { slcanWire } from "./slcan-wire.ts";

export interface SlcanBackendOptions {
  /** The adapter's tty, e.g. /dev/ttyACM0. */
  readonly path: string;
  /** tty rate (USB CDC adapters ignore it; FTDI-based CANUSB/USBtin need the right one). */
  readonly baud: number;
  /** CAN bit rate in bit/s; 0 = 500000. */
  readonly bitrate: number;
  readonly stats: Stats;
  readonly log: Logger;
  readonly reconnect?: BackoffOptions;
}

/** Throws BackendFatalError for a bit rate an slcan adapter cannot be set to. */
export function createSlcanBackend(options: SlcanBackendOptions): SerialBackend {
  let wire;
  try {
    wire = slcanWire(options.bitrate > 0 ? options.bitrate : DEFAULT_BITRATE.slcan);
  } catch (e) {
    throw new BackendFatalError(e instanceof Error ? e.message : String(e));
  }
  return new SerialBackend({ path: options.path, baud: options.baud, stats: options.stats, log: options.log, reconnect: options.reconnect, wire });
}
