/**
 * What a client wire protocol provides to the server layer. A stream protocol (TCP: cannelloni,
 * Waveshare 13-byte, socketcand, slcan, GVRET, canlogserver) gives a WireSession per connection:
 * it turns received bytes into frames and control replies and encodes batches of bus frames. A
 * datagram protocol (UDP: cannelloni v2) gives a DatagramProtocol: stateless datagram encode and
 * decode. Neither does I/O; the server layer (src/server/) owns sockets, queues and timers. Which
 * protocols exist, and their flags and ports, is declared in ./registry.ts.
 */
import type { CanFrame, StampedFrame } from "../can/frame.ts";
import type { WallClock } from "../can/clock.ts";
import type { ProtocolName } from "./registry.ts";

export type ViolationKind = "handshake" | "malformed";

export interface WireSessionEvents {
  /**
   * A frame the client sent for the bus; `bus`: the gateway's bus index it names (protocols that
   * carry every bus, `allBuses`), else the session's bus.
   */
  frame(frame: CanFrame, bus?: number): void;
  /** Bytes to send that are not bus frames (hello, handshake replies). Each call is one write, in order. */
  reply(bytes: Uint8Array): void;
  /** Handshake complete: from now on the session receives bus frames. */
  ready(): void;
  /**
   * A frame the client sent that cannot go to the bus, in a protocol that reports the error and
   * carries on (socketcand `< send >` with bad fields): counted as malformed, connection kept.
   */
  rejected(reason: string): void;
  /** A protocol violation: the server counts it and closes this connection only. */
  fail(kind: ViolationKind, reason: string): void;
  /**
   * Multi-bus protocols (socketcand `< open NAME >`): attach this session to the gateway's bus
   * of that name before its handshake completes (its frames go to that bus's TX, it receives that
   * bus). False when no such bus. Absent (in-memory tests): only `busName` is served.
   */
  selectBus?(name: string): boolean;
}

export interface WireSessionOptions {
  /** Whether CAN FD frames may be exchanged (configuration `-fd` and an FD-capable backend). */
  readonly fd: boolean;
  /** socketcand: the bus name answered to `< open NAME >`; canlogserver: the interface name. */
  readonly busName: string;
  /** Every bus of the gateway by name, in order (multi-bus protocols); undefined = only busName. */
  readonly busNames?: readonly string[];
  /** Their bit rates, in the same order (GVRET's bus parameters); 0 when unknown. */
  readonly busBitrates?: readonly number[];
  /** The bus bit rate (slcan and GVRET report or compare it); undefined when unknown. */
  readonly busBitrate?: number;
  /** Something worth a log line that is not an error (e.g. a bit rate the gateway will not apply). */
  readonly notice?: (text: string) => void;
  /**
   * The gateway's frame clock, for times a session states that are not frame times (GVRET's
   * time-sync answer); frame times come with the frames (StampedFrame.ts). System clock if unset.
   */
  readonly clock?: WallClock;
}

export interface WireSession {
  /** Called once on accept (cannelloni sends its hello here, socketcand `< hi >`). */
  start(): void;
  /** Bytes from the client, split anywhere. After fail() further input is ignored. */
  receive(chunk: Uint8Array): void;
  /** Whether this client can be sent this frame (e.g. FD only when enabled). */
  accepts(frame: CanFrame): boolean;
  /** Encodes frames[0..count) into one buffer for one socket write. */
  encode(frames: readonly StampedFrame[], count: number): Uint8Array;
}

export interface WireProtocol {
  readonly name: ProtocolName;
  readonly defaultPort: number;
  /**
   * Milliseconds to wait after the last handshake reply has been written before streaming bus
   * frames (socketcand: python-can reads each reply with one recv() and needs it alone).
   */
  readonly streamDelayMs?: number;
  /**
   * The session is ready the moment it is accepted (start() calls ready()): no handshake, so the
   * admission layer never counts its connection as handshaking (src/net/admission.ts).
   */
  readonly readyOnAccept?: boolean;
  /**
   * The session is a client of every bus at once and each frame carries its bus (GVRET bus
   * numbers: StampedFrame.bus out, WireSessionEvents.frame's `bus` in). Needs a multi-bus listener.
   */
  readonly allBuses?: boolean;
  open(events: WireSessionEvents, options: WireSessionOptions): WireSession;
}

/** One decoded datagram: its sequence number (null if the header is unusable), frames, problems. */
export interface DecodedDatagram {
  readonly seq: number | null;
  readonly frames: CanFrame[];
  /** Each problem is one counted malformed item; the datagram's valid frames are still used. */
  readonly problems: string[];
}

/** How a datagram's sequence number relates to the ones before it. */
export type SeqVerdict = "first" | "in-order" | "gap" | "duplicate" | "late";

export interface DatagramSeqTracker {
  observe(seq: number): number;
  classify(seq: number): { verdict: SeqVerdict; lostBefore: number };
  /** Forgets the reference (the peer restarted): the next datagram is "first". */
  reset(): void;
  readonly lost: number;
}

/** A datagram protocol (cannelloni UDP): pure encode/decode, no sockets. */
export interface DatagramProtocol {
  readonly name: ProtocolName;
  readonly defaultPort: number;
  /** Whether a peer can be sent this frame (FD only when enabled). */
  accepts(frame: CanFrame, fd: boolean): boolean;
  /** Encodes frames into datagrams of at most the link `mtu`, numbered from `seq` (mod 256). */
  encode(frames: readonly CanFrame[], seq: number, mtu: number, ipv6: boolean): Uint8Array[];
  /** How many frames a datagram made by encode() carries (counted once it was really sent). */
  frameCount(datagram: Uint8Array): number;
  /** Never throws. */
  decode(datagram: Uint8Array): DecodedDatagram;
  /** Sequence distance → datagrams lost before this one, and whether it is new (see SeqTracker in the codec). */
  newSeqTracker(): DatagramSeqTracker;
}

/** What a protocol can carry besides classic data frames (for docs, help and tests). */
export interface FrameSupport {
  /** Remote requests (RTR). */
  readonly rtr: boolean;
  /** CAN FD frames (only ever exchanged with -fd). */
  readonly fd: boolean;
  /** Error frames (CAN_ERR_FLAG). */
  readonly error: boolean;
}

/**
 * A protocol's entry in the registry (./registry.ts): everything the configuration, the listener
 * wiring, metrics labels, mDNS TXT records and -help need to know about it. `load` imports the
 * session factory only when the listener is enabled.
 */
interface DescriptorBase<N extends string, K extends string> {
  readonly name: N;
  /** Human name for help texts, e.g. "slcan (Lawicel ASCII)". */
  readonly title: string;
  /** The listen flag without its dash, e.g. "slcan-listen" (cannelloni keeps go-ampio-server's "listen"). */
  readonly flag: string;
  readonly env: string;
  /** The Config key holding the listen address ("" = disabled). */
  readonly configKey: K;
  /** Port used when the flag names none (`-slcan-listen true`, `-slcan-listen 0.0.0.0`). */
  readonly defaultPort: number;
  /** The address when the flag is not given: "" (off) for every protocol except cannelloni TCP. */
  readonly defaultAddress: string;
  /** The listener cannot be disabled (cannelloni TCP). */
  readonly required?: boolean;
  readonly carries: FrameSupport;
  /** The flag's help text. */
  readonly help: string;
  /** mDNS TXT key advertising this listener's port, or null (cannelloni TCP is the service port). */
  readonly txtKey: string | null;
  /**
   * The handshake timeout this protocol needs at least (the larger of this and
   * -handshake-timeout applies). slcan: a client opens the channel when it likes.
   */
  readonly minHandshakeTimeoutMs?: number;
  /** Added by can-server (not in go-ampio-server). */
  readonly isNew: boolean;
  /**
   * The protocol can carry several buses on one listener (socketcand `< open NAME >`, GVRET bus
   * numbers): it listens once per gateway. Otherwise each bus has its own listener.
   */
  readonly multiBus?: boolean;
}

export interface StreamProtocolDescriptor<N extends string = string, K extends string = string> extends DescriptorBase<N, K> {
  readonly transport: "tcp";
  load(): Promise<WireProtocol>;
}

export interface DatagramProtocolDescriptor<N extends string = string, K extends string = string> extends DescriptorBase<N, K> {
  readonly transport: "udp";
  load(): Promise<DatagramProtocol>;
}

export type ProtocolDescriptor<N extends string = string, K extends string = string> =
  | StreamProtocolDescriptor<N, K>
  | DatagramProtocolDescriptor<N, K>;
