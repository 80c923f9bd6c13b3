/**
 * Flags + environment → Config, or one clear error. Pure (argv and env are arguments).
 * Go `flag` syntax: `-name value`, `-name=value`, `--name` too; a bool flag alone means true and
 * also takes `true|false` as the next word (go-ampio-server's unit passes `-mdns-enable true`).
 * Precedence: flag > configuration file (-config, src/cli/config-file.ts) > CAN_SERVER_* variable
 * > default: the file is what the operator wrote for this gateway, the environment often a
 * package's defaults file.
 *
 * A bad flag is an error (exit 2). A bad environment variable is a warning and keeps the default,
 * as go-ampio-server silently did for `CAN_SERVER_BAUD=0`, `CAN_SERVER_MDNS_ENABLE=enabled` and
 * the like: an upgraded systemd unit whose EnvironmentFile go-ampio-server accepted must still start.
 * Exception: variables whose default is more open than anything the operator could have meant
 * (listen on every interface, allow everyone) stay errors — a typo must not widen access.
 */
import { parseListenAddress, parsePeerAddress } from "../net/address.ts";
import { CidrList, splitList } from "../net/cidr.ts";
import { slcanBitrateCommand, slcanBitrates } from "../backends/slcan/slcan-wire.ts";
import { REPLAY_SPEED_HELP, replaySpeedValue } from "../backends/replay/config.ts";
import { PROTOCOLS } from "../protocols/registry.ts";
import { FLAGS, type Config, type FlagSpec } from "./config.ts";

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Timers longer than this (2^31-1 ms) fire at once in JavaScript runtimes, so longer durations are refused. */
export const MAX_TIMER_MS = 2_147_483_647;

const BOOL_WORDS: Record<string, boolean> = { "1": true, true: true, yes: true, on: true, "0": false, false: false, no: false, off: false };

/** Go duration syntax ("300ms", "1.5s", "1m30s", "0") → milliseconds. A bare number is refused (ambiguous). */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (t === "0") return 0;
  const re = /(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos === 0 || pos !== t.length) return null;
  return total;
}

/**
 * A protocol listen flag also takes `true`/`on`/`yes` (every interface, the protocol's default
 * port; a bare flag means the same) and `false`/`off`/`no` (disabled). A bare number stays
 * invalid: `20001` could mean a port or a mistyped address.
 */
function listenShorthand(raw: string, defaultPort: number): string {
  const t = raw.trim().toLowerCase();
  if (t === "true" || t === "on" || t === "yes") return `:${defaultPort}`;
  if (t === "false" || t === "off" || t === "no") return "";
  return raw;
}

function describe(spec: FlagSpec): string {
  switch (spec.kind) {
    case "enum":
      return `one of ${spec.values!.join("|")}`;
    case "bool":
      return "true|false";
    case "int":
      return `an integer${spec.min !== undefined ? ` >= ${spec.min}` : ""}${spec.max !== undefined ? ` and <= ${spec.max}` : ""}`;
    case "duration":
      return `a duration like 500ms, 3s, 1m${spec.min ? ` of at least ${spec.min}ms` : ""}, at most ${MAX_TIMER_MS}ms (about 24 days)`;
    case "addr":
      if (spec.required) return "host:port or :port";
      return spec.defaultPort !== undefined
        ? `host:port, :port, or true for :${spec.defaultPort} (empty or false disables)`
        : "host:port or :port (empty disables)";
    case "peers":
      return "host:port[,host:port...] (IPv6 as [addr]:port)";
    case "cidrs":
      return "CIDR[,CIDR...] such as 192.168.1.0/24,10.0.0.5,::1 (empty = no restriction)";
    case "rate":
      return "auto or an integer >= 0 (0 = unlimited)";
    default:
      return "a string";
  }
}

function convert(spec: FlagSpec, raw: string, source: string): string | number | boolean | string[] {
  const fail = (): never => {
    throw new ConfigError(`invalid value ${JSON.stringify(raw)} for ${source}: expected ${describe(spec)}`);
  };
  switch (spec.kind) {
    case "string":
      return raw;
    case "addr": {
      const addr = spec.defaultPort !== undefined ? listenShorthand(raw, spec.defaultPort) : raw;
      if (addr === "" ? spec.required === true : !parseListenAddress(addr)) fail();
      return addr;
    }
    case "peers": {
      const entries = splitList(raw);
      for (const e of entries) if (!parsePeerAddress(e)) throw new ConfigError(`invalid value ${JSON.stringify(raw)} for ${source}: ${JSON.stringify(e)} is not ${describe(spec)}`);
      return entries;
    }
    case "enum":
      if (!spec.values!.includes(raw)) fail();
      return raw;
    case "bool": {
      const b = BOOL_WORDS[raw.toLowerCase()];
      if (b === undefined) fail();
      return b!;
    }
    case "int": {
      if (!/^[+-]?\d+$/.test(raw.trim())) fail();
      const n = Number(raw);
      if (!Number.isSafeInteger(n)) fail();
      if (spec.min !== undefined && n < spec.min) fail();
      if (spec.max !== undefined && n > spec.max) fail();
      return n;
    }
    case "cidrs": {
      const entries = splitList(raw);
      try {
        CidrList.parse(entries);
      } catch (e) {
        throw new ConfigError(`invalid value ${JSON.stringify(raw)} for ${source}: ${e instanceof Error ? e.message : String(e)}`);
      }
      return entries;
    }
    case "rate": {
      const t = raw.trim().toLowerCase();
      if (t === "auto") return "auto";
      if (!/^\d+$/.test(t)) fail();
      const n = Number(t);
      if (!Number.isSafeInteger(n) || n > 100_000_000) fail();
      return n;
    }
    case "duration": {
      const ms = parseDuration(raw);
      if (ms === null) fail();
      if (spec.min !== undefined && ms! < spec.min) fail();
      if (!(ms! <= MAX_TIMER_MS)) fail();
      return ms!;
    }
  }
}

const BY_NAME = new Map(FLAGS.map((f) => [f.name, f]));

/**
 * Environment variables that fail closed: their default (`:20000` on every interface, no
 * allowlist) grants more than the operator asked for, so an invalid value exits 2 instead of
 * falling back to it. go-ampio-server did not keep the default for these either (a bad
 * CAN_SERVER_LISTEN failed at listen time; the allowlists are new).
 */
export const STRICT_ENV: ReadonlySet<string> = new Set(["CAN_SERVER_LISTEN", "CAN_SERVER_ALLOW", "CAN_SERVER_TX_ALLOW"]);

/** An invalid environment value that was ignored: the default was kept. */
export interface ConfigWarning {
  /** The variable, e.g. `CAN_SERVER_BAUD`. */
  readonly variable: string;
  /** Its value as given (trimmed). */
  readonly value: string;
  /** The value kept instead (the flag's default, as text; "" for an empty default). */
  readonly kept: string;
  /** One line for a human: what was wrong, what was expected, what is kept. */
  readonly message: string;
}

export function defaultConfig(): Config {
  const c: Record<string, unknown> = {};
  for (const f of FLAGS) c[f.key] = convert(f, f.def, `default of -${f.name}`);
  return c as unknown as Config;
}

/**
 * Parses argv (without the program name) and env. Throws ConfigError naming the flag or variable;
 * an invalid environment value is dropped with a warning (see the module comment), so callers
 * that cannot log (tests, tools) lose nothing but the warnings. Use parseConfigWithWarnings to
 * report them.
 */
export function parseConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Config {
  return parseConfigWithWarnings(argv, env).config;
}

/** Where a configuration value came from (-print-config says it beside each value). */
export type ValueSource = "flag" | "environment" | "file" | "default";

/**
 * The top level of a configuration file, as raw flag values (src/cli/config-file.ts loads it):
 * by flag name, the text convert() takes, and how an error names the key (file and line).
 */
export interface FileLayer {
  readonly values: ReadonlyMap<string, string>;
  where(flagName: string): string;
}

export interface ParsedConfig {
  config: Config;
  warnings: ConfigWarning[];
  /** Where each value came from, by Config key. */
  sources: Map<keyof Config, ValueSource>;
}

/** The flag spec of a name (undefined if there is no such flag). */
export function flagSpec(name: string): FlagSpec | undefined {
  return BY_NAME.get(name);
}

/** A raw value for a flag, checked and converted; `source` names it in the error. */
export function convertValue(spec: FlagSpec, raw: string, source: string): string | number | boolean | string[] {
  return convert(spec, raw, source);
}

/**
 * parseConfig, plus one warning per invalid environment value that was replaced by its default,
 * and the source of every value. `loadFile` reads the -config file (CAN_SERVER_CONFIG) into its
 * top-level values; without it -config is only recorded.
 */
export function parseConfigWithWarnings(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  loadFile?: (path: string) => FileLayer,
): ParsedConfig {
  const config = defaultConfig() as unknown as Record<string, unknown>;
  const warnings: ConfigWarning[] = [];
  const fromFlags = new Set<string>();
  const sources = new Map<keyof Config, ValueSource>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      if (i + 1 < argv.length) throw new ConfigError(`unexpected argument ${JSON.stringify(argv[i + 1])}: can-server takes flags only`);
      break;
    }
    const m = /^--?([a-zA-Z0-9][a-zA-Z0-9-]*)(?:=([\s\S]*))?$/.exec(arg);
    if (!m) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}: can-server takes flags only (see -help)`);
    const name = m[1]!;
    if (name === "h") {
      config.help = true;
      continue;
    }
    const spec = BY_NAME.get(name);
    if (!spec) throw new ConfigError(`unknown flag -${name} (see -help for the list)`);
    let raw = m[2];
    if (raw === undefined) {
      if (spec.kind === "bool") {
        const next = argv[i + 1];
        if (next !== undefined && BOOL_WORDS[next.toLowerCase()] !== undefined) {
          raw = next;
          i++;
        } else raw = "true";
      } else if (spec.defaultPort !== undefined && (argv[i + 1] === undefined || /^--?[a-zA-Z]/.test(argv[i + 1]!))) {
        // A protocol listen flag alone enables it on its default port (`-gvret-listen -fd`).
        raw = "true";
      } else {
        if (i + 1 >= argv.length) throw new ConfigError(`flag -${name} needs a value: ${describe(spec)}`);
        raw = argv[++i]!;
      }
    }
    const value = convert(spec, raw, `flag -${name}`);
    // A repeated list flag adds to the list (`-cannelloni-udp-peer a:1 -cannelloni-udp-peer b:2`).
    const prev = config[spec.key];
    config[spec.key] = spec.kind === "peers" && fromFlags.has(spec.name) && Array.isArray(prev) && Array.isArray(value) ? [...(prev as string[]), ...value] : value;
    fromFlags.add(spec.name);
    sources.set(spec.key, "flag");
  }
  // The file: its path from the flag, else the environment.
  const fromFile = new Set<string>();
  const configPath = fromFlags.has("config") ? (config.config as string) : (env.CAN_SERVER_CONFIG ?? "").trim();
  if (configPath !== "" && loadFile && !config.help && !config.version) {
    config.config = configPath;
    sources.set("config", fromFlags.has("config") ? "flag" : "environment");
    const layer = loadFile(configPath);
    for (const [name, raw] of layer.values) {
      const spec = BY_NAME.get(name)!;
      if (fromFlags.has(name)) continue;
      config[spec.key] = convert(spec, raw, layer.where(name));
      fromFile.add(name);
      sources.set(spec.key, "file");
    }
  }
  for (const spec of FLAGS) {
    if (!spec.env || fromFlags.has(spec.name) || fromFile.has(spec.name)) continue;
    const raw = env[spec.env];
    if (raw === undefined) continue;
    const v = raw.trim();
    // As with go-ampio-server, an empty variable means "not set" (systemd EnvironmentFile templates leave
    // them empty), except for optional addresses where empty is meaningful (disables the endpoint).
    if (v === "" && (spec.kind !== "addr" || spec.required)) continue;
    try {
      config[spec.key] = convert(spec, v, `environment variable ${spec.env}`);
      sources.set(spec.key, "environment");
    } catch (e) {
      if (!(e instanceof ConfigError) || STRICT_ENV.has(spec.env)) throw e;
      const kept = spec.def;
      warnings.push({
        variable: spec.env,
        value: v,
        kept,
        message: `${e.message}; keeping the default ${kept === "" ? '""' : kept}`,
      });
    }
  }
  const parsed = config as unknown as Config;
  validateCombination(parsed);
  for (const f of FLAGS) if (!sources.has(f.key)) sources.set(f.key, "default");
  return { config: parsed, warnings, sources };
}

/**
 * Rules between flags, checked after flags and environment are merged (so either source may set
 * either side). Skipped for -help and -version, which exit before the configuration is used.
 */
export function validateCombination(config: Config): void {
  if (config.help || config.version) return;
  if (config.socketcandBeacon && !config.socketcandListen) {
    throw new ConfigError("-socketcand-beacon (CAN_SERVER_SOCKETCAND_BEACON) needs -socketcand-listen: the beacon advertises that listener");
  }
  if (config.gvretDiscovery && !config.gvretListen) {
    throw new ConfigError("-gvret-discovery (CAN_SERVER_GVRET_DISCOVERY) needs -gvret-listen: the datagrams advertise that listener");
  }
  if ((config.backend === "cannelloni-client" || config.backend === "socketcand-client") && parsePeerAddress(config.remote) === null) {
    throw new ConfigError(
      config.remote === ""
        ? `-backend ${config.backend} needs -remote HOST:PORT (CAN_SERVER_REMOTE): the remote gateway to connect to`
        : `-remote (CAN_SERVER_REMOTE) "${config.remote}" is not HOST:PORT (e.g. 192.168.1.20:20000 or [::1]:20000)`,
    );
  }
  if (config.backend === "socketcand-client" && !/^[\x21-\x3b\x3d\x3f-\x7e]{1,64}$/.test(config.remoteBus)) {
    throw new ConfigError(`-remote-bus (CAN_SERVER_REMOTE_BUS) "${config.remoteBus}" is not a bus name (1..64 printable characters, no spaces or < >)`);
  }
  if (config.backend === "slcan" && config.bitrate !== 0 && slcanBitrateCommand(config.bitrate) === null) {
    throw new ConfigError(`-backend slcan: -bitrate ${config.bitrate} has no slcan code; an slcan adapter takes ${slcanBitrates()} (0 = 500000)`);
  }
  if (config.backend === "replay") {
    if (!config.replayFile) throw new ConfigError("-backend replay needs -replay-file FILE (CAN_SERVER_REPLAY_FILE): the candump log to play");
    if (replaySpeedValue(config.replaySpeed) === null) {
      throw new ConfigError(`invalid value ${JSON.stringify(config.replaySpeed)} for -replay-speed (CAN_SERVER_REPLAY_SPEED): expected ${REPLAY_SPEED_HELP}`);
    }
  }
  checkListenConflicts(config);
  if ((config.cannelloniUdpPeer.length > 0 || config.cannelloniUdpAcceptAny) && !config.cannelloniUdpListen) {
    throw new ConfigError("-cannelloni-udp-peer and -cannelloni-udp-accept-any need -cannelloni-udp-listen (the local UDP address, e.g. :20000)");
  }
  // A peer outside -allow would be sent the bus while its datagrams are refused. Addresses are
  // checked here (exit 2); names once resolved, at start-up (src/server/udp-peer.ts).
  const allow = CidrList.parse(config.allow);
  for (const text of config.cannelloniUdpPeer) {
    const host = parsePeerAddress(text)?.host ?? "";
    if (/^[\d.]+$|:/.test(host) && !allow.allows(host)) {
      throw new ConfigError(`-cannelloni-udp-peer ${text} is outside -allow (${allow.toString()}): add it to -allow or remove the peer`);
    }
  }
}

const WILDCARD_HOSTS: ReadonlySet<string> = new Set(["0.0.0.0", "::", "[::]"]);

/**
 * Two listeners on the same transport and port whose hosts overlap (the same host, or either on
 * every interface) cannot both bind: the second would fail at start-up with "address in use".
 * Caught here, naming both flags. Port 0 (any free port) never conflicts.
 */
function checkListenConflicts(config: Config): void {
  const values = config as unknown as Record<string, unknown>;
  const binds: { flag: string; text: string; transport: "tcp" | "udp"; host: string; port: number }[] = [];
  const add = (flag: string, text: unknown, transport: "tcp" | "udp"): void => {
    if (typeof text !== "string" || text === "") return;
    const a = parseListenAddress(text);
    if (a && a.port !== 0) binds.push({ flag, text, transport, host: a.host, port: a.port });
  };
  for (const p of PROTOCOLS) add(p.flag, values[p.configKey], p.transport);
  add("metrics-addr", config.metricsAddr, "tcp");
  for (let i = 0; i < binds.length; i++) {
    for (let j = i + 1; j < binds.length; j++) {
      const a = binds[i]!;
      const b = binds[j]!;
      if (a.transport !== b.transport || a.port !== b.port) continue;
      if (a.host !== b.host && !WILDCARD_HOSTS.has(a.host) && !WILDCARD_HOSTS.has(b.host)) continue;
      throw new ConfigError(`-${a.flag} ${a.text} and -${b.flag} ${b.text} both listen on ${a.transport.toUpperCase()} port ${a.port}: give each its own port`);
    }
  }
}

/** -help lives in help.ts; re-exported here for the callers that import it with parseConfig. */
export { usage } from "./help.ts";
