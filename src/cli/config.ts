/**
 * The gateway's configuration: the Config type and the flag table. Every flag of go-ampio-server
 * keeps its name, default and CAN_SERVER_* variable (drop-in), including `-backend socketcan`,
 * so an upgraded installation keeps bridging can0. Flags go-ampio-server did not have are marked
 * `isNew`; every flag names the -help group it is listed under (FLAG_GROUPS).
 */
import type { BackendKind } from "../backends/backend.ts";
import type { LogFormat, LogLevel } from "../ops/log.ts";

import type { HubPolicy } from "../hub/hub.ts";
import { PROTOCOLS, type AnyProtocolDescriptor, type ProtocolListenConfig } from "../protocols/registry.ts";
export type { HubPolicy };

/** The listen address of every registered protocol (src/protocols/registry.ts) is a Config key too. */
export interface Config extends ProtocolListenConfig {
  backend: BackendKind;
  canIf: string;
  serial: string;
  baud: number;
  listen: string;
  /** Milliseconds. Kept for compatibility; the native serial reader is event-driven. */
  serialReadTimeoutMs: number;
  hubBuffer: number;
  hubPolicy: HubPolicy;
  maxClients: number;
  handshakeTimeoutMs: number;
  clientReadTimeoutMs: number;
  mdnsEnable: boolean;
  mdnsName: string;
  metricsAddr: string;
  logMetricsIntervalMs: number;
  logFormat: LogFormat;
  logLevel: LogLevel;
  version: boolean;
  help: boolean;
  /** The configuration file (-config, TOML; src/cli/config-file.ts); empty = flags only. */
  config: string;
  /** Print the effective configuration as TOML, with where each value came from, and exit. */
  printConfig: boolean;
  // new
  fd: boolean;
  echoClients: boolean;
  virtualDemo: boolean;
  waveshareListen: string;
  socketcandListen: string;
  socketcandBus: string;
  socketcandBeacon: boolean;
  /** Broadcast GVRET discovery datagrams (UDP 17222) for SavvyCAN; needs -gvret-listen. */
  gvretDiscovery: boolean;
  /** cannelloni UDP peers, host:port each. */
  cannelloniUdpPeer: string[];
  /** Accept cannelloni UDP datagrams from any address (each sender becomes a peer). */
  cannelloniUdpAcceptAny: boolean;
  /** Link MTU the cannelloni UDP datagrams are sized for (bytes). */
  cannelloniUdpMtu: number;
  shutdownTimeoutMs: number;
  // isolation and access control
  /** Bus bit rate in bit/s; 0 = the backend's default (serial/Ampio 50k, socketcan 500k, virtual 1M). */
  bitrate: number;
  /** -backend cannelloni-client / socketcand-client: the remote's host:port. */
  remote: string;
  /** -backend socketcand-client: the remote bus name. */
  remoteBus: string;
  /** Frames/s one client may send to the bus; "auto" derives it from the bus rate; 0 = unlimited. */
  clientTxRate: number | "auto";
  /** Token-bucket depth in frames; "auto" derives it from the rate. */
  clientTxBurst: number | "auto";
  /** A client frame not on the bus within this many ms is dropped instead of sent late. */
  txMaxAgeMs: number;
  /** What one TX rate and round-robin turn belong to: each source host, or each connection. */
  txFairness: "host" | "connection";
  /** Connections still in their handshake, over all listeners (0 = unlimited). */
  maxHandshakes: number;
  /** Who may connect at all (CIDR list; empty = everyone). */
  allow: string[];
  /** Who may transmit to the bus (CIDR list; empty = every connected client). */
  txAllow: string[];
  // Ampio decoder and MQTT bridge (src/consumers/)
  /** "auto" = on with -backend serial (or when -mqtt-url / -ampio-state-replay need it). */
  ampioDecode: "auto" | "true" | "false";
  ampioStaleAfterMs: number;
  ampioStateReplay: boolean;
  ampioStateMaxAgeMs: number;
  /** TOML or YAML file naming modules, channels and rooms (src/ampio/names.ts); empty = ids only. */
  ampioNames: string;
  mqttUrl: string;
  /** PEM file of the CAs trusted for an mqtts:// broker (instead of the default list); empty = default list. */
  mqttCa: string;
  mqttUsername: string;
  mqttPassword: string;
  mqttClientId: string;
  mqttPrefix: string;
  mqttQos: number;
  /** Milliseconds; 0 disables MQTT keepalive pings. */
  mqttKeepaliveMs: number;
  mqttRaw: boolean;
  mqttTx: boolean;
  mqttHaDiscovery: boolean;
  /** Serve the Ampio M-SERV topic tree (ampio/from/…, ampio/to/…) from the bus. */
  mqttAmpio: boolean;
  // DBC signal decoding (src/dbc/, src/consumers/signals.ts)
  /** DBC file to decode the bus with; empty = off. */
  dbc: string;
  /** MESSAGE.SIGNAL list exported as Prometheus gauges. */
  dbcMetrics: string;
  /** Milliseconds between two MQTT publications of one signal at most. */
  dbcMqttIntervalMs: number;
  /** Ampio decoded values join the signal model (signals view, /api/signals, MQTT signal topics, gauges). */
  signalsAmpio: boolean;
  // Bus views: recorder, replay backend, web dashboard (src/consumers/, src/backends/replay/, src/web/)
  /** Directory for candump log files; empty disables recording. */
  record: string;
  recordMaxBytes: number;
  recordMaxFiles: number;
  /** Milliseconds; 0 = rotate by size only. */
  recordMaxAgeMs: number;
  replayFile: string;
  replayLoop: boolean;
  /** A positive decimal (kept as text: the flag table has no decimal kind); checked by the replay backend. */
  replaySpeed: string;
  webTx: boolean;
  webToken: string;
  /** Where the gateway keeps state across restarts (transmit jobs created by the API); "" = nowhere. */
  stateDir: string;
  /** Dashboard WebSockets and /capture.pcap streams open at once on -metrics-addr, together. */
  httpMaxStreams: number;
  /** HTTP connections open at once on -metrics-addr (0 = only the descriptor budget limits them). */
  httpMaxConnections: number;
  /** More names the HTTP endpoint answers to in the Host header (comma-separated). */
  httpHosts: string;
  /** Connections (TCP and HTTP) from one host (0 = unlimited). */
  maxHostConnections: number;
  /** Connections from one host still in a protocol handshake (0 = unlimited). */
  maxHostHandshakes: number;
}

/**
 * `cidrs`: comma-separated CIDR list (IPv4 or IPv6, a bare address = one host), empty = no list.
 * `rate`: "auto" or an integer >= 0.
 */
export type FlagKind = "string" | "int" | "duration" | "bool" | "enum" | "addr" | "cidrs" | "rate" | "peers";

/**
 * The topics -help groups the flags under, in the order it prints them. A flag must name one
 * (FlagSpec.group is required), so a new flag cannot land without a place in -help.
 */
export const FLAG_GROUPS = {
  bus: "Bus and backend",
  clients: "Client protocols and sessions",
  transmit: "Transmit and security",
  http: "HTTP endpoint: dashboard, API, capture, metrics, health",
  recording: "Recording and replay",
  ampio: "Ampio decoding",
  dbc: "DBC signal decoding",
  mqtt: "MQTT bridge",
  ops: "Logging and operations",
} as const;
export type FlagGroup = keyof typeof FLAG_GROUPS;

export interface FlagSpec {
  readonly name: string;
  readonly key: keyof Config;
  readonly env: string | null;
  readonly kind: FlagKind;
  readonly def: string;
  readonly help: string;
  /** The -help section this flag is listed in. */
  readonly group: FlagGroup;
  /**
   * The value's form in -help (`-record DIR`); kinds other than string have a default form
   * (help.ts), a string flag must say what its text is.
   */
  readonly arg?: string;
  readonly values?: readonly string[];
  /** Smallest accepted value (int: number; duration: milliseconds). */
  readonly min?: number;
  readonly max?: number;
  /** An address that cannot be empty (the cannelloni listener cannot be disabled). */
  readonly required?: boolean;
  /** Added by can-server (not in go-ampio-server). */
  readonly isNew?: boolean;
  /** addr: the port `true`, a bare port-less host or a bare flag means (a protocol's default port). */
  readonly defaultPort?: number;
  /**
   * A setting of one bus (allowed in a configuration file's `[[bus]]` tables; flags and the
   * environment set it for the default bus). "own": each bus has its own, a bus that does not set
   * it gets the default (the backend, its device, single-bus listeners); "inherit": a bus that
   * does not set it takes the top-level value (FD, queue and TX limits). Unset: global only.
   */
  readonly bus?: "own" | "inherit";
}

/** The listen flag of a registered protocol. */
function protocolFlag(p: AnyProtocolDescriptor): FlagSpec {
  return {
    name: p.flag,
    key: p.configKey,
    env: p.env,
    kind: "addr",
    group: "clients",
    def: p.defaultAddress,
    help: p.help,
    ...(p.multiBus ? {} : { bus: "own" as const }),
    ...(p.required ? { required: true } : { defaultPort: p.defaultPort }),
    ...(p.isNew ? { isNew: true } : {}),
  };
}

/** The listen flags of the registered protocols that `pick` selects, in registry order. */
function protocolFlags(pick: (p: AnyProtocolDescriptor) => boolean): FlagSpec[] {
  return PROTOCOLS.filter(pick).map(protocolFlag);
}

export const FLAGS: readonly FlagSpec[] = [
  { name: "backend", bus: "own", key: "backend", env: "CAN_SERVER_BACKEND", kind: "enum", group: "bus", def: "socketcan", values: ["socketcan", "serial", "virtual", "replay", "slcan", "cannelloni-client", "socketcand-client"], help: "CAN backend: socketcan | serial (Ampio USB adapter) | virtual (in-process bus, no hardware) | replay (plays -replay-file) | slcan (Lawicel USB-serial adapter on -serial, set to -bitrate) | cannelloni-client (the bus of a cannelloni TCP server at -remote) | socketcand-client (bus -remote-bus of a socketcand at -remote)" },
  { name: "can-if", bus: "own", key: "canIf", env: "CAN_SERVER_IF", kind: "string", arg: "IFACE", group: "bus", def: "can0", help: "SocketCAN interface (with -backend socketcan)" },
  { name: "serial", bus: "own", key: "serial", env: "CAN_SERVER_SERIAL", kind: "string", arg: "DEVICE", group: "bus", def: "/dev/ttyUSB0", help: "Serial device of the Ampio adapter (with -backend serial) or of the slcan adapter (with -backend slcan, e.g. /dev/ttyACM0)" },
  { name: "baud", bus: "own", key: "baud", env: "CAN_SERVER_BAUD", kind: "int", group: "bus", def: "115200", min: 1, max: 4_000_000, help: "Serial baud rate" },
  ...protocolFlags((p) => p.name === "cannelloni"),
  { name: "serial-read-timeout", bus: "own", key: "serialReadTimeoutMs", env: "CAN_SERVER_SERIAL_READ_TIMEOUT", kind: "duration", group: "bus", def: "50ms", min: 1, help: "Serial read timeout (accepted for compatibility; reads are event-driven)" },
  { name: "hub-buffer", bus: "inherit", key: "hubBuffer", env: "CAN_SERVER_HUB_BUFFER", kind: "int", group: "clients", def: "512", min: 1, max: 1_000_000, help: "Per-client queue length in frames" },
  { name: "hub-policy", bus: "inherit", key: "hubPolicy", env: "CAN_SERVER_HUB_POLICY", kind: "enum", group: "clients", def: "drop", values: ["drop", "kick"], help: "What happens to a client whose queue is full: drop (lose frames, stay connected) | kick (disconnect)" },
  { name: "max-clients", key: "maxClients", env: "CAN_SERVER_MAX_CLIENTS", kind: "int", group: "clients", def: "0", min: 0, max: 1_000_000, help: "Maximum simultaneous TCP clients over all listeners (0 = derived from the machine: 128 per CPU core, at least 64, within the descriptor budget; logged at start-up as max_clients)" },
  { name: "handshake-timeout", key: "handshakeTimeoutMs", env: "CAN_SERVER_HANDSHAKE_TIMEOUT", kind: "duration", group: "clients", def: "3s", min: 1, help: "Time a client has to complete the protocol handshake" },
  { name: "client-read-timeout", key: "clientReadTimeoutMs", env: "CAN_SERVER_CLIENT_READ_TIMEOUT", kind: "duration", group: "clients", def: "60s", min: 1, help: "Disconnect a client that takes none of the bytes owed to it for this long (a stalled reader; idle listen-only clients stay connected, as with go-ampio-server)" },
  { name: "mdns-enable", key: "mdnsEnable", env: "CAN_SERVER_MDNS_ENABLE", kind: "bool", group: "ops", def: "false", help: "Advertise _can-server._tcp over mDNS (the packaged unit turns it on)" },
  { name: "mdns-name", key: "mdnsName", env: "CAN_SERVER_MDNS_NAME", kind: "string", arg: "NAME", group: "ops", def: "", help: "mDNS instance name (default can-server-<hostname>)" },
  { name: "metrics-addr", key: "metricsAddr", env: "CAN_SERVER_METRICS", kind: "addr", group: "http", def: "", help: "HTTP endpoint for the web dashboard (/), its JSON API, live pcap capture, Prometheus /metrics, /ready and /healthz (e.g. 127.0.0.1:9100, or :9100 for every interface); empty disables" },
  { name: "log-metrics-interval", key: "logMetricsIntervalMs", env: "CAN_SERVER_LOG_METRICS_INTERVAL", kind: "duration", group: "ops", def: "0", min: 0, help: "Log a counter snapshot this often (0 disables)" },
  { name: "log-format", key: "logFormat", env: "CAN_SERVER_LOG_FORMAT", kind: "enum", group: "ops", def: "text", values: ["text", "json"], help: "Log format" },
  { name: "log-level", key: "logLevel", env: "CAN_SERVER_LOG_LEVEL", kind: "enum", group: "ops", def: "info", values: ["debug", "info", "warn", "error"], help: "Log level" },
  { name: "version", key: "version", env: null, kind: "bool", group: "ops", def: "false", help: "Print version, commit and build date, then exit" },
  { name: "help", key: "help", env: null, kind: "bool", group: "ops", def: "false", help: "Print this help, then exit" },
  { name: "config", key: "config", env: "CAN_SERVER_CONFIG", kind: "string", arg: "FILE", group: "ops", def: "", isNew: true, help: "Configuration file (TOML): every flag's name is its key; [[bus]] tables define several buses, [[route]] tables routes between them (README \"Several buses\"). Flags override the file, the file overrides the environment" },
  { name: "print-config", key: "printConfig", env: null, kind: "bool", group: "ops", def: "false", isNew: true, help: "Print the effective configuration as TOML, each value with where it came from (flag, environment, file, default), then exit" },
  { name: "fd", bus: "inherit", key: "fd", env: "CAN_SERVER_FD", kind: "bool", group: "bus", def: "false", isNew: true, help: "Enable CAN FD (SocketCAN CAN_RAW_FD_FRAMES; FD frames to cannelloni clients)" },
  { name: "echo-clients", bus: "inherit", key: "echoClients", env: "CAN_SERVER_ECHO_CLIENTS", kind: "bool", group: "clients", def: "true", isNew: true, help: "Deliver a frame sent by one client to the other clients too, as a real bus does" },
  { name: "virtual-demo", bus: "own", key: "virtualDemo", env: "CAN_SERVER_VIRTUAL_DEMO", kind: "bool", group: "bus", def: "false", isNew: true, help: "With -backend virtual: emit demo Ampio-like state broadcasts (about 2 frames/s)" },
  // Every other protocol's listen flag, from the registry (src/protocols/registry.ts).
  ...protocolFlags((p) => p.name !== "cannelloni"),
  { name: "socketcand-bus", key: "socketcandBus", env: "CAN_SERVER_SOCKETCAND_BUS", kind: "string", arg: "NAME", group: "clients", def: "", isNew: true, help: "Bus name socketcand clients open (default: -can-if with socketcan, else can0)" },
  { name: "socketcand-beacon", key: "socketcandBeacon", env: "CAN_SERVER_SOCKETCAND_BEACON", kind: "bool", group: "clients", def: "false", isNew: true, help: "Broadcast the socketcand discovery beacon (UDP 42000) for SavvyCAN/python-can; needs -socketcand-listen" },
  { name: "gvret-discovery", key: "gvretDiscovery", env: "CAN_SERVER_GVRET_DISCOVERY", kind: "bool", group: "clients", def: "false", isNew: true, help: "Broadcast GVRET discovery datagrams (UDP 17222, once a second) so SavvyCAN lists the gateway; needs -gvret-listen" },
  { name: "cannelloni-udp-peer", bus: "own", key: "cannelloniUdpPeer", env: "CAN_SERVER_CANNELLONI_UDP_PEER", kind: "peers", group: "clients", def: "", isNew: true, help: "cannelloni UDP peer host:port (repeatable or comma-separated): gets the bus, may send to it; datagrams from other addresses are dropped and counted" },
  { name: "cannelloni-udp-accept-any", bus: "inherit", key: "cannelloniUdpAcceptAny", env: "CAN_SERVER_CANNELLONI_UDP_ACCEPT_ANY", kind: "bool", group: "clients", def: "false", isNew: true, help: "Accept cannelloni UDP datagrams from any address (-allow still applies); each sender becomes a peer until 60 s of silence, and is sent the bus once it has sent 4 datagrams in sequence" },
  { name: "cannelloni-udp-mtu", bus: "inherit", key: "cannelloniUdpMtu", env: "CAN_SERVER_CANNELLONI_UDP_MTU", kind: "int", group: "clients", def: "1500", min: 128, max: 65535, isNew: true, help: "Link MTU cannelloni UDP datagrams are filled up to (as cannelloni -m)" },
  { name: "shutdown-timeout", key: "shutdownTimeoutMs", env: "CAN_SERVER_SHUTDOWN_TIMEOUT", kind: "duration", group: "ops", def: "2s", min: 0, isNew: true, help: "On SIGINT/SIGTERM, time allowed to flush client queues" },
  { name: "bitrate", bus: "own", key: "bitrate", env: "CAN_SERVER_BITRATE", kind: "int", group: "bus", def: "0", min: 0, max: 8_000_000, isNew: true, help: "Bus bit rate in bit/s, for TX rate defaults and bus load (0 = the rate a SocketCAN CAN device runs at, read over netlink; else the backend default: serial 50000 (Ampio), socketcan 500000 (vcan), virtual 1000000)" },
  { name: "client-tx-rate", bus: "inherit", key: "clientTxRate", env: "CAN_SERVER_CLIENT_TX_RATE", kind: "rate", group: "transmit", def: "auto", isNew: true, help: "Frames/s one host (every connection from one address; see -tx-fairness) may send to the bus (token bucket; TCP clients over it are read more slowly, not dropped); auto = half the bus's frame rate; 0 = unlimited" },
  { name: "client-tx-burst", bus: "inherit", key: "clientTxBurst", env: "CAN_SERVER_CLIENT_TX_BURST", kind: "rate", group: "transmit", def: "auto", isNew: true, help: "Frames a host may send at once above its rate (bucket depth); auto = a quarter second of the rate, at least 32" },
  { name: "tx-max-age", bus: "inherit", key: "txMaxAgeMs", env: "CAN_SERVER_TX_MAX_AGE", kind: "duration", group: "transmit", def: "2s", min: 1, isNew: true, help: "A client frame that could not be put on the bus within this time is dropped (counted), never sent late" },
  { name: "tx-fairness", bus: "inherit", key: "txFairness", env: "CAN_SERVER_TX_FAIRNESS", kind: "enum", group: "transmit", def: "host", values: ["host", "connection"], isNew: true, help: "Who shares one -client-tx-rate and one round-robin turn at the bus: host (all connections from one address) | connection (each connection)" },
  { name: "max-handshakes", key: "maxHandshakes", env: "CAN_SERVER_MAX_HANDSHAKES", kind: "int", group: "transmit", def: "64", min: 0, max: 1_000_000, isNew: true, help: "Connections still in their protocol handshake, over all listeners (0 = unlimited); -max-clients counts established clients" },
  { name: "max-host-handshakes", key: "maxHostHandshakes", env: "CAN_SERVER_MAX_HOST_HANDSHAKES", kind: "int", group: "transmit", def: "16", min: 0, max: 1_000_000, isNew: true, help: "Connections from one host (an IPv4 address or an IPv6 /64) still in their protocol handshake (0 = unlimited): one host cannot hold -max-handshakes (64) alone; 16 leaves room for a host that reconnects many clients at once" },
  { name: "max-host-connections", key: "maxHostConnections", env: "CAN_SERVER_MAX_HOST_CONNECTIONS", kind: "int", group: "transmit", def: "64", min: 0, max: 1_000_000, isNew: true, help: "Connections from one host (an IPv4 address or an IPv6 /64) to all listeners and the HTTP endpoint together (0 = unlimited): one host cannot lock the others out" },
  { name: "allow", key: "allow", env: "CAN_SERVER_ALLOW", kind: "cidrs", group: "transmit", def: "", isNew: true, help: "Who may connect to any listener or the HTTP endpoint: CIDR[,CIDR...] (e.g. 192.168.1.0/24,::1); empty = everyone" },
  { name: "tx-allow", key: "txAllow", env: "CAN_SERVER_TX_ALLOW", kind: "cidrs", group: "transmit", def: "", isNew: true, help: "Who may transmit to the bus: CIDR[,CIDR...]; other clients are read-only (their frames are dropped and counted); empty = every connected client" },
  // Ampio decoder and MQTT bridge (src/consumers/, README "Ampio decoding and MQTT")
  { name: "ampio-decode", key: "ampioDecode", env: "CAN_SERVER_AMPIO_DECODE", kind: "enum", group: "ampio", def: "auto", values: ["auto", "true", "false"], isNew: true, help: "Decode Ampio state broadcasts (module inventory, /api/ampio/modules, ampio_* metrics); auto = on with -backend serial or when -mqtt-url or -ampio-state-replay is set" },
  { name: "ampio-stale-after", key: "ampioStaleAfterMs", env: "CAN_SERVER_AMPIO_STALE_AFTER", kind: "duration", group: "ampio", def: "5m", min: 1000, isNew: true, help: "An Ampio module silent this long is reported stale (offline over MQTT)" },
  { name: "ampio-state-replay", key: "ampioStateReplay", env: "CAN_SERVER_AMPIO_STATE_REPLAY", kind: "bool", group: "ampio", def: "false", isNew: true, help: "Send each new Waveshare client the latest Ampio state broadcasts right after its handshake (state on connect for Home Assistant)" },
  { name: "ampio-state-max-age", key: "ampioStateMaxAgeMs", env: "CAN_SERVER_AMPIO_STATE_MAX_AGE", kind: "duration", group: "ampio", def: "1h", min: 1, isNew: true, help: "With -ampio-state-replay: never replay a state broadcast older than this" },
  { name: "ampio-names", key: "ampioNames", env: "CAN_SERVER_AMPIO_NAMES", kind: "string", group: "ampio", def: "", arg: "FILE", isNew: true, help: "TOML or YAML file naming Ampio modules, channels and rooms (the Home Assistant Ampio integration's devices: list fits); used by the MQTT inventory and discovery, /api/ampio/modules and the dashboard; empty = ids; a bad file exits 2 (docs/ampio.md)" },
  { name: "mqtt-url", key: "mqttUrl", env: "CAN_SERVER_MQTT_URL", kind: "string", arg: "URL", group: "mqtt", def: "", isNew: true, help: "MQTT broker to bridge the bus to: mqtt://host:1883 or mqtts://host:8883; empty disables" },
  { name: "mqtt-ca", key: "mqttCa", env: "CAN_SERVER_MQTT_CA", kind: "string", arg: "FILE", group: "mqtt", def: "", isNew: true, help: "With an mqtts:// -mqtt-url: PEM file of the CA certificate(s) to trust for the broker (e.g. a private or self-signed CA), read at start-up; replaces the default (public) CA list; empty = the default list. The certificate and the broker's name are always verified" },
  { name: "mqtt-username", key: "mqttUsername", env: "CAN_SERVER_MQTT_USERNAME", kind: "string", arg: "USER", group: "mqtt", def: "", isNew: true, help: "MQTT user name" },
  { name: "mqtt-password", key: "mqttPassword", env: "CAN_SERVER_MQTT_PASSWORD", kind: "string", arg: "PASSWORD", group: "mqtt", def: "", isNew: true, help: "MQTT password (never logged; prefer the environment variable: flags show in ps)" },
  { name: "mqtt-client-id", key: "mqttClientId", env: "CAN_SERVER_MQTT_CLIENT_ID", kind: "string", arg: "ID", group: "mqtt", def: "", isNew: true, help: "MQTT client id (default can-server-<hostname>-<random>; must differ between gateways)" },
  { name: "mqtt-prefix", key: "mqttPrefix", env: "CAN_SERVER_MQTT_PREFIX", kind: "string", arg: "PREFIX", group: "mqtt", def: "can-server", isNew: true, help: "Topic prefix; one per bus when several gateways share a broker" },
  { name: "mqtt-qos", key: "mqttQos", env: "CAN_SERVER_MQTT_QOS", kind: "int", group: "mqtt", def: "0", min: 0, max: 2, isNew: true, help: "QoS of every published message and of the command subscription" },
  { name: "mqtt-keepalive", key: "mqttKeepaliveMs", env: "CAN_SERVER_MQTT_KEEPALIVE", kind: "duration", group: "mqtt", def: "30s", min: 0, isNew: true, help: "MQTT keepalive (whole seconds; 0 disables)" },
  { name: "mqtt-raw", key: "mqttRaw", env: "CAN_SERVER_MQTT_RAW", kind: "bool", group: "mqtt", def: "true", isNew: true, help: "With -mqtt-url: publish every bus frame on <prefix>/raw/<id>" },
  { name: "mqtt-tx", key: "mqttTx", env: "CAN_SERVER_MQTT_TX", kind: "bool", group: "mqtt", def: "false", isNew: true, help: "Accept frames to transmit on <prefix>/tx (same validation and rate limit as TCP clients; refusals counted)" },
  { name: "mqtt-ampio", key: "mqttAmpio", env: "CAN_SERVER_MQTT_AMPIO", kind: "bool", group: "mqtt", def: "false", isNew: true, help: "With -mqtt-url: serve the Ampio M-SERV topic tree (ampio/from/<MAC>/state/…, inventory, descriptions; commands on ampio/to/… with -mqtt-tx) from the bus, for Ampio's Node-RED nodes and ampio-hacc; turns Ampio decoding on" },
  { name: "mqtt-ha-discovery", key: "mqttHaDiscovery", env: "CAN_SERVER_MQTT_HA_DISCOVERY", kind: "bool", group: "mqtt", def: "false", isNew: true, help: "Publish Home Assistant MQTT discovery for decoded temperatures and diagnostics" },
  // DBC signal decoding (README "DBC signals")
  { name: "dbc", bus: "own", key: "dbc", env: "CAN_SERVER_DBC", kind: "string", arg: "FILE", group: "dbc", def: "", isNew: true, help: "Decode the bus with this DBC file: signals on /api/signals, the dashboard, MQTT (<prefix>/<bus>/signals/...) and -dbc-metrics; read at start-up (a bad file exits 2) and again on SIGHUP" },
  { name: "dbc-metrics", key: "dbcMetrics", env: "CAN_SERVER_DBC_METRICS", kind: "string", arg: "MSG.SIGNAL,...", group: "dbc", def: "", isNew: true, help: "Signals exported as the Prometheus gauge dbc_signal_value (an explicit list keeps the series bounded)" },
  { name: "dbc-mqtt-interval", key: "dbcMqttIntervalMs", env: "CAN_SERVER_DBC_MQTT_INTERVAL", kind: "duration", group: "dbc", def: "1s", min: 0, isNew: true, help: "With -dbc and -mqtt-url: a signal is published when it changes, at most once per this interval" },
  { name: "signals-ampio", key: "signalsAmpio", env: "CAN_SERVER_SIGNALS_AMPIO", kind: "bool", group: "dbc", def: "false", isNew: true, help: "Ampio decoded values join the signal model as Ampio_<id> messages: the dashboard's signals view, /api/signals, MQTT <prefix>/<bus>/signals/... and -dbc-metrics; the Ampio topics stay as they are (turns Ampio decoding on with -ampio-decode auto)" },
  // Bus views: recorder, replay backend, web dashboard (README "Dashboard, capture, recording and replay")
  { name: "record", key: "record", env: "CAN_SERVER_RECORD", kind: "string", arg: "DIR", group: "recording", def: "", isNew: true, help: "Record every bus frame (R) and every client frame sent to the bus (T) to candump log files in this directory; empty disables" },
  { name: "record-max-bytes", key: "recordMaxBytes", env: "CAN_SERVER_RECORD_MAX_BYTES", kind: "int", group: "recording", def: "16777216", min: 4096, max: 1_099_511_627_776, isNew: true, help: "Start a new record file once one holds this many bytes" },
  { name: "record-max-files", key: "recordMaxFiles", env: "CAN_SERVER_RECORD_MAX_FILES", kind: "int", group: "recording", def: "8", min: 1, max: 100_000, isNew: true, help: "Record files kept (oldest deleted): disk use stays under max-files x max-bytes" },
  { name: "record-max-age", key: "recordMaxAgeMs", env: "CAN_SERVER_RECORD_MAX_AGE", kind: "duration", group: "recording", def: "1h", min: 0, isNew: true, help: "Start a new record file after this long (0 = by size only)" },
  // Remote buses (src/backends/remote/, README "Remote buses and slcan adapters")
  { name: "remote", bus: "own", key: "remote", env: "CAN_SERVER_REMOTE", kind: "string", arg: "HOST:PORT", group: "bus", def: "", isNew: true, help: "With -backend cannelloni-client or socketcand-client: the remote gateway's host:port (its cannelloni TCP listener, e.g. 192.168.1.20:20000, or its socketcand listener, e.g. host:29536); reconnects with backoff" },
  { name: "remote-bus", bus: "own", key: "remoteBus", env: "CAN_SERVER_REMOTE_BUS", kind: "string", arg: "NAME", group: "bus", def: "can0", isNew: true, help: "With -backend socketcand-client: the remote bus to open (< open NAME >)" },
  { name: "replay-file", bus: "own", key: "replayFile", env: "CAN_SERVER_REPLAY_FILE", kind: "string", arg: "FILE", group: "recording", def: "", isNew: true, help: "With -backend replay: the candump log (candump -l, python-can, -record) to play onto the bus" },
  { name: "replay-loop", bus: "own", key: "replayLoop", env: "CAN_SERVER_REPLAY_LOOP", kind: "bool", group: "recording", def: "false", isNew: true, help: "With -backend replay: start again at the end of the file" },
  { name: "replay-speed", bus: "own", key: "replaySpeed", env: "CAN_SERVER_REPLAY_SPEED", kind: "string", arg: "FACTOR", group: "recording", def: "1", isNew: true, help: "With -backend replay: time scale (2 = twice as fast, 0.5 = half speed)" },
  { name: "web-tx", key: "webTx", env: "CAN_SERVER_WEB_TX", kind: "bool", group: "http", def: "false", isNew: true, help: "Let the dashboard send frames to the bus (needs -web-token); otherwise it is read-only" },
  { name: "web-token", key: "webToken", env: "CAN_SERVER_WEB_TOKEN", kind: "string", arg: "TOKEN", group: "http", def: "", isNew: true, help: "Token the dashboard must present to send frames (with -web-tx; prefer the environment variable)" },
  { name: "state-dir", key: "stateDir", env: "CAN_SERVER_STATE_DIR", kind: "string", arg: "DIR", group: "transmit", def: "", isNew: true, help: "Directory for state kept across restarts: transmit jobs created by the HTTP API (jobs.json); empty: they live in memory only (the packaged unit sets /var/lib/can-server)" },
  { name: "http-max-connections", key: "httpMaxConnections", env: "CAN_SERVER_HTTP_MAX_CONNECTIONS", kind: "int", group: "http", def: "64", min: 0, max: 100_000, isNew: true, help: "HTTP connections the endpoint (-metrics-addr) holds at once, idle or busy (0 = only the descriptor budget, of which HTTP may use half); more are closed at accept (counted)" },
  { name: "http-hosts", key: "httpHosts", env: "CAN_SERVER_HTTP_HOSTS", kind: "string", arg: "NAME[,NAME...]", group: "http", def: "", isNew: true, help: "More names the HTTP endpoint answers to in the Host header, besides IP addresses, localhost, the hostname and hostname.local (e.g. a reverse proxy's name); requests for other names are refused (DNS rebinding)" },
  { name: "http-max-streams", key: "httpMaxStreams", env: "CAN_SERVER_HTTP_MAX_STREAMS", kind: "int", group: "http", def: "32", min: 1, max: 4096, isNew: true, help: "Long-lived streams the HTTP endpoint (-metrics-addr) holds open at once: dashboard WebSockets and /capture.pcap streams together; beyond it they are refused with 503 (counted)" },
];
