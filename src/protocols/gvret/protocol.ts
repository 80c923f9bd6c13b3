/**
 * GVRET over TCP as a WireSession (docs/protocols.md §7; default port 23, which SavvyCAN has
 * fixed). The gateway plays a GVRET device whose bus numbers are the gateway's buses (0 = the
 * first; at most GVRET_MAX_BUSES): each frame sent carries its bus (StampedFrame.bus), each frame
 * received goes to the bus its bus byte names (the session is a client of every bus: `allBuses`).
 * - `ready()` fires at the first `E7` (binary mode; SavvyCAN opens with `E7 E7`). Before it, no
 *   bus frame is sent, as a device in text mode sends none in binary.
 * - Queries are answered at once and each answer goes out as part of one reply per received
 *   chunk: `F1 01` time sync, `F1 06` bus parameters (SavvyCAN shows "connected" on this answer),
 *   `F1 07` device info, `F1 09` keepalive (`F1 09 DE AD`; SavvyCAN drops the connection after 10
 *   unanswered ones, sent every 250 ms), `F1 0C` number of buses, `F1 0D` extended buses
 *   (zeros; SavvyCAN asks for it after the bus count and also counts its answer as connected).
 * - `accepts(frame)`: data frames only (the format has no RTR or error bit); FD only with
 *   `options.fd` (sent as command 20).
 * - `rejected(reason)`: a frame the host sent that cannot go to the bus (a bus number past the last, FD
 *   without `-fd`, id or length out of range). Garbage bytes are skipped and counted in
 *   `skippedBytes`, never reported as violations; `fail()` is never used.
 * - `F1 05` (bus set-up) is acknowledged by silence, as devices do; the bus is not retuned.
 * - `F1 0B` (echo) is answered with the frame as if received, to this client only.
 */
import { stamp, type CanFrame, type StampedFrame } from "../../can/frame.ts";
import { systemClock } from "../../can/clock.ts";
import type { WireProtocol, WireSession, WireSessionEvents, WireSessionOptions } from "../protocol.ts";
import {
  encodeGvretFrames,
  GvretCmd,
  GvretHostDecoder,
  GVRET_MAX_BUSES,
  gvretBusParamsReply,
  gvretCanCarry,
  gvretDeviceInfoReply,
  gvretExtBusesReply,
  gvretKeepaliveReply,
  gvretNumBusesReply,
  gvretTimeSyncReply,
} from "./codec.ts";

export const GVRET_NAME = "gvret";
/** SavvyCAN connects to port 23 only; binding it needs CAP_NET_BIND_SERVICE (or root). */
export const GVRET_DEFAULT_PORT = 23;
/** Build number reported in the device-info answer (ESP32RET's current build is 618). */
export const GVRET_BUILD = 618;

export interface GvretOptions extends WireSessionOptions {
  /** The bus bit rate reported in the bus-parameter answer; 0 (default) when unknown. */
  readonly busBitrate?: number;
  /** Something worth a log line that is not an error (a bus set-up the gateway will not apply). */
  readonly notice?: (text: string) => void;
}

export class GvretSession implements WireSession {
  private binary = false;
  private readonly decoder: GvretHostDecoder;
  /** Device time 0 in wall-clock µs: the session's start (a GVRET device counts micros() from boot). */
  private readonly epochUs: number;
  private out: Uint8Array[] = [];
  /** Buses this device reports (the gateway's, at most GVRET_MAX_BUSES). */
  private readonly buses: number;

  constructor(
    private readonly events: WireSessionEvents,
    private readonly options: GvretOptions,
  ) {
    this.epochUs = this.nowUs();
    this.buses = Math.min(GVRET_MAX_BUSES, Math.max(1, options.busNames?.length ?? 1));
    this.decoder = new GvretHostDecoder({
      binaryMode: () => {
        if (this.binary) return;
        this.binary = true;
        this.events.ready();
      },
      frame: (frame, bus) => this.hostFrame(frame, bus),
      echo: (frame, bus) => {
        // A bus this device does not have is refused as for a frame to send (not shown on bus 0).
        if (bus >= this.buses) return this.events.rejected(`echo for bus ${bus}: this device has ${this.buses === 1 ? "one bus (0)" : `buses 0 to ${this.buses - 1}`}`);
        // The device answers at once: the frame's time is now (it never enters the hub).
        if (gvretCanCarry(frame, this.options.fd)) this.out.push(encodeGvretFrames([stamp(frame, this.nowUs(), bus)], 1, { fd: this.options.fd, epochUs: this.epochUs }));
      },
      query: (cmd) => this.query(cmd),
      setupBuses: (can0) => {
        const rate = can0 & 0xfffff;
        if (rate !== 0 && this.options.busBitrate !== undefined && rate !== this.options.busBitrate) {
          this.options.notice?.(`GVRET client asked for ${rate} bit/s, the bus runs at ${this.options.busBitrate} bit/s; the gateway does not retune the bus`);
        }
      },
      rejected: (reason) => this.events.rejected(reason),
    });
  }

  /** Whether the client has switched to binary mode (E7). */
  get binaryMode(): boolean {
    return this.binary;
  }
  /** Bytes skipped while looking for a command (garbage, text-mode input). */
  get skippedBytes(): number {
    return this.decoder.skipped;
  }
  get buffered(): number {
    return this.decoder.buffered;
  }

  start(): void {
    // A GVRET device speaks only when spoken to.
  }

  receive(chunk: Uint8Array): void {
    this.decoder.push(chunk);
    if (this.out.length === 0) return;
    const parts = this.out;
    this.out = [];
    if (parts.length === 1) return this.events.reply(parts[0]!);
    let n = 0;
    for (const p of parts) n += p.length;
    const all = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    this.events.reply(all);
  }

  accepts(frame: CanFrame): boolean {
    return gvretCanCarry(frame, this.options.fd) && ((frame as Partial<StampedFrame>).bus ?? 0) < this.buses;
  }

  encode(frames: readonly StampedFrame[], count: number): Uint8Array {
    return encodeGvretFrames(frames, count, { fd: this.options.fd, epochUs: this.epochUs });
  }

  private nowUs(): number {
    return (this.options.clock ?? systemClock).nowUs();
  }

  /** Device time now, on the same clock as the frames' timestamps. */
  private deviceMicros(): number {
    return (this.nowUs() - this.epochUs) >>> 0;
  }

  private hostFrame(frame: CanFrame, bus: number): void {
    if (bus >= this.buses) return this.events.rejected(`frame for bus ${bus}: this device has ${this.buses === 1 ? "one bus (0)" : `buses 0 to ${this.buses - 1}`}`);
    if (frame.fd && !this.options.fd) return this.events.rejected("CAN FD frame, but CAN FD is not enabled on this gateway");
    // Several buses: the bus byte picks the bus (its index in the gateway); one bus: the session's.
    if (this.options.busNames !== undefined) this.events.frame(frame, bus);
    else this.events.frame(frame);
  }

  /** `F1 06` describes can0 and can1: the gateway's first two buses (the second disabled when there is none). */
  private busParams(): Uint8Array {
    const rates = this.options.busBitrates;
    const can0 = { enabled: true, listenOnly: false, bitrate: rates?.[0] ?? this.options.busBitrate ?? 0 };
    if (this.buses < 2) return gvretBusParamsReply(can0);
    return gvretBusParamsReply(can0, { enabled: true, listenOnly: false, bitrate: rates?.[1] ?? 0 });
  }

  private query(cmd: number): void {
    switch (cmd) {
      case GvretCmd.timeSync:
        this.out.push(gvretTimeSyncReply(this.deviceMicros()));
        return;
      case GvretCmd.getBusParams:
        this.out.push(this.busParams());
        return;
      case GvretCmd.getDeviceInfo:
        this.out.push(gvretDeviceInfoReply(GVRET_BUILD));
        return;
      case GvretCmd.keepalive:
        this.out.push(gvretKeepaliveReply());
        return;
      case GvretCmd.getNumBuses:
        this.out.push(gvretNumBusesReply(this.buses));
        return;
      case GvretCmd.getExtBuses:
        this.out.push(gvretExtBusesReply());
        return;
    }
  }
}

export function open(events: WireSessionEvents, options: GvretOptions): GvretSession {
  return new GvretSession(events, options);
}

export const gvret: WireProtocol = { name: "gvret", defaultPort: GVRET_DEFAULT_PORT, allBuses: true, open };
