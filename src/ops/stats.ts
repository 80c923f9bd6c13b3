/**
 * The gateway's counters as plain numbers: incrementing one is a field add on the hot path.
 * Components receive the Stats instance they report to (no global singletons), tests read it
 * synchronously, and src/ops/metrics.ts exposes it to Prometheus under go-ampio-server's
 * metric names at scrape time.
 */
import { PROTOCOL_NAMES, type ProtocolName } from "../protocols/registry.ts";

/** Label values of `errors_total{where}`, pre-registered so every series exists from the start. */
export const ERROR_SITES = [
  "tcp_read",
  "tcp_write",
  "handshake",
  "serial_read",
  "serial_write",
  "serial_tx_overflow",
  "socketcan_read",
  "socketcan_write",
  "socketcan_tx_overflow",
  "socketcan_rx_overflow",
  "socketcan_tx_confirm_mismatch",
  "socketcan_rx_discarded",
  "udp_send",
  "adapter_refused",
  "remote_link",
  "backend_down_tx",
  "backend_unsupported_frame",
  "internal",
  "replay_malformed_line",
] as const;
export type ErrorSite = (typeof ERROR_SITES)[number];

/**
 * Why a frame sent by a client did not reach the bus (`client_tx_dropped_total{reason}`):
 * refused at the hub (read_only: outside -tx-allow; rate_limited: over -client-tx-rate;
 * tx_queue_full: the client's transmit queue is full; unsupported: the backend can never carry
 * it; backend_down), or accepted and then lost (expired: older than -tx-max-age; write_failed;
 * unconfirmed: written to the CAN socket, but the kernel never confirmed it was transmitted).
 */
export const TX_DROP_REASONS = ["read_only", "rate_limited", "tx_queue_full", "unsupported", "backend_down", "expired", "write_failed", "unconfirmed"] as const;
export type TxDropReason = (typeof TX_DROP_REASONS)[number];

/** Why a connection was refused at accept (`clients_rejected_total{reason}`). */
export const REJECT_REASONS = ["max_clients", "max_handshakes", "not_allowed", "fd_reserve", "host_connections", "host_handshakes", "http_connections"] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

// The protocol list lives with the protocols (src/protocols/registry.ts); re-exported for metrics.
export { PROTOCOL_NAMES, type ProtocolName };

/** cannelloni UDP datagrams that were not used, by reason (`udp_refused_datagrams_total{reason}`). */
export const UDP_REFUSE_REASONS = ["unknown_peer", "not_allowed", "truncated", "duplicate", "out_of_order"] as const;
export type UdpRefuseReason = (typeof UDP_REFUSE_REASONS)[number];

export interface ProtocolStats {
  clients: number; // currently connected
  accepted: number;
  rxFrames: number; // client -> gateway
  txFrames: number; // gateway -> client
  malformed: number;
  handshakeFailures: number;
}

/**
 * A bus's health as a backend that can tell reports it (src/backends/bus-health.ts): the CAN
 * controller's state, error frames by class, its error counters, restarts after bus-off.
 */
export interface BusHealthReport {
  /** error-active, error-warning, error-passive, bus-off, stopped, sleeping, unknown. */
  readonly state: string;
  /** can_bus_state's value: 0 error-active, 1 error-warning, 2 error-passive, 3 bus-off, 4 stopped, 5 sleeping, -1 unknown. */
  readonly stateValue: number;
  /** Error frames by class (every class, 0 included). */
  readonly errors: Readonly<Record<string, number>>;
  /** The controller's transmit / receive error counters, null where nothing reported them. */
  readonly txErrors: number | null;
  readonly rxErrors: number | null;
  /** Times the controller came back from bus-off. */
  readonly restarts: number;
}

export class Stats {
  // Mirrors of go-ampio-server's counters (same meaning, same names in metrics.ts).
  serialRxFrames = 0;
  serialTxFrames = 0;
  /** Bytes from a serial adapter that formed no valid frame (line noise, a wrong -baud). */
  serialRxNoiseBytes = 0;
  socketcanRxFrames = 0;
  socketcanTxFrames = 0;
  tcpRxFrames = 0;
  tcpTxFrames = 0;
  hubDroppedFrames = 0;
  hubKickedClients = 0;
  hubRejectedClients = 0;
  malformedFrames = 0;
  /** Clients targeted by the most recent broadcast. */
  hubBroadcastFanout = 0;

  // Beyond go-ampio-server.
  virtualRxFrames = 0;
  virtualTxFrames = 0;
  backendUp = false;
  /** Set by a backend that reports the bus's health (SocketCAN); null for the others. */
  busHealth: { report(): BusHealthReport } | null = null;
  backendReconnects = 0;
  /** Frames from clients that the backend could not take (down, unsupported, overflow). */
  backendTxDropped = 0;
  clientsAccepted = 0;
  clientsDisconnected = 0;
  handshakeFailures = 0;

  /** Client frames that did not reach the bus, by reason. */
  readonly txDropped = new Map<TxDropReason, number>(TX_DROP_REASONS.map((r) => [r, 0]));
  /** Client frames written to the bus (and so echoed to the other clients when -echo-clients). */
  clientTxSent = 0;
  /** Connections refused at accept, by reason (hubRejectedClients keeps go-ampio-server's total). */
  readonly rejected = new Map<RejectReason, number>(REJECT_REASONS.map((r) => [r, 0]));
  /** HTTP requests refused by the -allow list. */
  httpRejected = 0;
  /** Dashboard WebSockets and /capture.pcap streams refused because -http-max-streams were open. */
  httpStreamsRejected = 0;
  /** Dashboard WebSockets and /capture.pcap streams open now (src/net/http-streams.ts). */
  httpStreamsOpen = 0;
  /** Sessions closed because they exceeded a per-client bound (replies owed, pending bytes). */
  clientsOverLimit = 0;

  /** cannelloni UDP: datagrams received from / sent to peers, lost (sequence gaps), refused by reason. */
  udpRxDatagrams = 0;
  udpTxDatagrams = 0;
  udpLostDatagrams = 0;
  /** Datagrams the socket could not send (kernel buffer full or an error); their frames are lost. */
  udpSendFailures = 0;
  readonly udpRefused = new Map<UdpRefuseReason, number>(UDP_REFUSE_REASONS.map((r) => [r, 0]));

  readonly errors = new Map<ErrorSite, number>(ERROR_SITES.map((s) => [s, 0]));
  readonly protocols = new Map<ProtocolName, ProtocolStats>(
    PROTOCOL_NAMES.map((p) => [p, { clients: 0, accepted: 0, rxFrames: 0, txFrames: 0, malformed: 0, handshakeFailures: 0 }]),
  );

  error(where: ErrorSite, n = 1): void {
    this.errors.set(where, (this.errors.get(where) ?? 0) + n);
  }

  txDrop(reason: TxDropReason, n = 1): void {
    this.txDropped.set(reason, this.txDropped.get(reason)! + n);
  }

  reject(reason: RejectReason): void {
    this.rejected.set(reason, this.rejected.get(reason)! + 1);
    this.hubRejectedClients++;
  }

  protocol(name: ProtocolName): ProtocolStats {
    return this.protocols.get(name)!;
  }

  errorsTotal(): number {
    let t = 0;
    for (const v of this.errors.values()) t += v;
    return t;
  }
}
