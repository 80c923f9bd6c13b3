/**
 * The configuration file (`-config FILE`, CAN_SERVER_CONFIG): TOML, read with Bun's built-in
 * parser. Every flag's name is its key (`metrics-addr = "127.0.0.1:9100"`); `[[bus]]` tables hold
 * each bus's settings (the flags marked `bus` in ./config.ts: backend, device, single-bus
 * listeners, FD and TX limits) plus its `name`; `[[route]]` tables hold routes between buses.
 *
 * Precedence: flag > file > environment > default (./parse.ts). A flag or variable that is a bus
 * setting applies to the default bus (the first `[[bus]]`); a bus after the first takes its
 * "own" settings only from its table (else the default; its listeners are off unless set) and
 * its "inherit" settings from its table, else from the top level.
 *
 * Every error is one ConfigError naming the file, the line and key, and what is accepted.
 */
import { readFileSync } from "node:fs";
import { parseListenAddress } from "../net/address.ts";
import { socketcandBusName } from "./bus-name.ts";
import { FLAGS, type Config, type FlagSpec } from "./config.ts";
import { ConfigError, convertValue, flagSpec, parseConfigWithWarnings, validateCombination, type ConfigWarning, type FileLayer, type ValueSource } from "./parse.ts";
import { parseRoute, type RouteConfig } from "./route-config.ts";
import { JobInputError, parseJobInput, type JobSpec } from "../jobs/job-input.ts";

/** A `[[job]]` table: a transmit job the gateway starts at every start (src/jobs/). */
export interface ConfigJob {
  /** Its name = its id in the API. */
  readonly id: string;
  readonly bus: string;
  readonly spec: JobSpec;
}

const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface BusConfig {
  readonly name: string;
  /** Globals plus this bus's settings. */
  readonly config: Config;
  readonly sources: ReadonlyMap<keyof Config, ValueSource>;
}

export interface Configuration {
  /** Globals plus the default bus's settings: what single-bus code reads. */
  readonly config: Config;
  readonly warnings: ConfigWarning[];
  readonly sources: ReadonlyMap<keyof Config, ValueSource>;
  /** Every bus; [0] is the default bus. Without `[[bus]]` tables, the one bus of the flags. */
  readonly buses: readonly BusConfig[];
  readonly routes: readonly RouteConfig[];
  /** `[[job]]` tables. */
  readonly jobs: readonly ConfigJob[];
  /** Whether the buses come from `[[bus]]` tables. */
  readonly busTables: boolean;
}

/** A bus name: what socketcand opens and candump prints (an interface name: at most 15 characters). */
const BUS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;
/** Keys that are not settings (they act at once) and so cannot be in a file. */
const NOT_IN_FILE = new Set(["help", "version", "config", "print-config"]);

type Table = Record<string, unknown>;

interface ParsedFile {
  readonly path: string;
  readonly top: Table;
  readonly buses: Table[];
  readonly routes: Table[];
  readonly jobs: Table[];
  /** The line (1-based) of `key` in section `section` (`""` top level, `bus`/`route` + index). */
  line(section: string, index: number, key: string): number | null;
}

/** Loads flags, the file and the environment into buses and routes; throws ConfigError. */
export function loadConfiguration(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  readFile: (path: string) => string = (p) => readFileSync(p, "utf8"),
): Configuration {
  let file: ParsedFile | null = null;
  const parsed = parseConfigWithWarnings(argv, env, (path) => {
    file = parseFile(path, readFile);
    return topLayer(file);
  });
  const f = file as ParsedFile | null;
  const { config, warnings, sources } = parsed;
  if (f === null || f.buses.length === 0) {
    const routes = f === null ? [] : f.routes.map((r, i) => parseRoute(r, [socketcandBusName(config)], at(f, "route", i)));
    const jobs = f === null ? [] : parseJobs(f, [socketcandBusName(config)]);
    return { config, warnings, sources, buses: [{ name: socketcandBusName(config), config, sources }], routes, jobs, busTables: false };
  }
  if (sources.get("socketcandBus") !== "default") {
    throw new ConfigError(`${f.path}: -socketcand-bus cannot be used with [[bus]] tables: each bus's name = "…" is what socketcand clients open`);
  }
  const buses: BusConfig[] = f.buses.map((t, i) => busConfig(f, t, i, config, sources));
  const names = new Set<string>();
  for (const [i, b] of buses.entries()) {
    if (names.has(b.name)) throw new ConfigError(`${at(f, "bus", i)("name")}: bus name "${b.name}" is used twice; every [[bus]] needs its own name`);
    names.add(b.name);
  }
  checkListenConflicts(f, buses, config);
  const routes = f.routes.map((r, i) => parseRoute(r, [...names], at(f, "route", i)));
  const routeNames = new Set<string>();
  for (const [i, r] of routes.entries()) {
    if (routeNames.has(r.name)) throw new ConfigError(`${at(f, "route", i)("name")}: route name "${r.name}" is used twice; give each [[route]] its own name = "…"`);
    routeNames.add(r.name);
  }
  const first = buses[0]!;
  return { config: first.config, warnings, sources: first.sources, buses, routes, jobs: parseJobs(f, [...names]), busTables: true };
}

/** `[[job]]` tables: name (unique), bus (default: the first bus) and the job's keys (src/jobs/job-input.ts). */
function parseJobs(f: ParsedFile, busNames: readonly string[]): ConfigJob[] {
  const seen = new Set<string>();
  return f.jobs.map((t, i) => {
    const where = at(f, "job", i);
    const { name, bus, ...rest } = t;
    if (typeof name !== "string" || !JOB_NAME.test(name)) throw new ConfigError(`${where("name")}: every [[job]] needs name = "…": 1 to 64 letters, digits, '_', '.', '-'`);
    if (seen.has(name)) throw new ConfigError(`${where("name")}: job name "${name}" is used twice`);
    seen.add(name);
    const busName = bus ?? busNames[0]!;
    if (typeof busName !== "string" || !busNames.includes(busName)) throw new ConfigError(`${where("bus")}: no bus ${JSON.stringify(busName)}; buses: ${busNames.join(", ")}`);
    let spec: JobSpec;
    try {
      spec = parseJobInput({ ...rest, name });
    } catch (e) {
      if (e instanceof JobInputError) {
        const key = Object.keys(rest).find((k) => e.message.startsWith(k)) ?? "name";
        throw new ConfigError(`${where(key)}: ${e.message}`);
      }
      throw e;
    }
    return { id: name, bus: busName, spec };
  });
}

/** "FILE line N, key K" for errors, in section (bus/route) number i. */
function at(f: ParsedFile, section: string, i: number): (key: string) => string {
  return (key) => {
    const line = f.line(section, i, key);
    const where = section === "" ? "" : ` in [[${section}]] #${i + 1}`;
    return `${f.path}${line !== null ? ` line ${line}` : ""}: key "${key}"${where}`;
  };
}

function parseFile(path: string, readFile: (path: string) => string): ParsedFile {
  let text: string;
  try {
    text = readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`cannot read configuration file ${path}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : e instanceof Error ? e.message : String(e)}`);
  }
  let doc: Table;
  try {
    doc = Bun.TOML.parse(text) as Table;
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e)).replace(/^TOML Parse error: /, "");
    throw new ConfigError(`${path} line ${syntaxErrorLine(text)}: not valid TOML: ${msg}`);
  }
  const sections = sectionLines(text);
  const tables = (key: string): Table[] => {
    const v = doc[key];
    if (v === undefined) return [];
    if (!Array.isArray(v) || v.some((t) => typeof t !== "object" || t === null || Array.isArray(t))) {
      throw new ConfigError(`${path}: "${key}" must be an array of tables, written [[${key}]]`);
    }
    return v as Table[];
  };
  return {
    path,
    top: doc,
    buses: tables("bus"),
    routes: tables("route"),
    jobs: tables("job"),
    line(section, index, key) {
      const s = sections.find((x) => x.section === section && x.index === index);
      if (!s) return null;
      const re = new RegExp(`^\\s*["']?${key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}["']?\\s*=`);
      for (let l = s.from; l < s.to; l++) if (re.test(sections.lines[l]!)) return l + 1;
      return s.from > 0 ? s.from : null;
    },
  };
}

/** Where each section starts and ends (line indexes), for error messages. */
function sectionLines(text: string): { section: string; index: number; from: number; to: number }[] & { lines: string[] } {
  const lines = text.split("\n");
  const out: { section: string; index: number; from: number; to: number }[] = [];
  const count = new Map<string, number>();
  let cur = { section: "", index: 0, from: 0, to: lines.length };
  out.push(cur);
  for (let l = 0; l < lines.length; l++) {
    const m = /^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]/.exec(lines[l]!) ?? /^\s*\[\s*([A-Za-z0-9_-]+)\s*\]/.exec(lines[l]!);
    if (!m) continue;
    cur.to = l;
    const name = m[1]!;
    const index = count.get(name) ?? 0;
    count.set(name, index + 1);
    cur = { section: name, index, from: l, to: lines.length };
    out.push(cur);
  }
  return Object.assign(out, { lines });
}

/**
 * Bun's TOML errors carry no line of the file: the line is the one after the longest prefix of
 * whole lines that still parses (a multi-line array parses again once closed).
 */
function syntaxErrorLine(text: string): number {
  const lines = text.split("\n");
  let ok = 0;
  for (let n = 1; n <= lines.length; n++) {
    try {
      Bun.TOML.parse(lines.slice(0, n).join("\n"));
      ok = n;
    } catch {
      // keep looking: a later prefix may parse again
    }
  }
  return Math.min(ok + 1, lines.length);
}

/** A TOML value as the text a flag takes (convertValue checks it). */
function rawValue(v: unknown, where: string, spec: FlagSpec): string {
  if (typeof v === "string") return v;
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number" || typeof v === "bigint") return String(v);
  if (Array.isArray(v) && (spec.kind === "peers" || spec.kind === "cidrs") && v.every((x) => typeof x === "string")) return v.join(",");
  throw new ConfigError(`${where}: a ${Array.isArray(v) ? "list" : typeof v === "object" ? "table" : typeof v} is not accepted here; expected ${kindText(spec)}`);
}

function kindText(spec: FlagSpec): string {
  switch (spec.kind) {
    case "bool":
      return "true or false";
    case "int":
      return "an integer";
    case "duration":
      return 'a duration in quotes, like "3s"';
    case "peers":
    case "cidrs":
      return 'a list of strings, like ["a", "b"], or one comma-separated string';
    case "rate":
      return '"auto" or an integer';
    default:
      return "a string in quotes";
  }
}

function topLayer(f: ParsedFile): FileLayer {
  const values = new Map<string, string>();
  const where = at(f, "", 0);
  for (const [key, v] of Object.entries(f.top)) {
    if (key === "bus" || key === "route" || key === "job") continue;
    const spec = flagSpec(key);
    if (!spec || NOT_IN_FILE.has(key)) {
      throw new ConfigError(`${where(key)}: unknown setting; accepted: the name of any flag in -help (without the dash, e.g. metrics-addr), [[bus]], [[route]] and [[job]] tables`);
    }
    if (spec.bus === "own" && f.buses.length > 0) {
      throw new ConfigError(`${where(key)}: "${key}" is a setting of one bus; with [[bus]] tables put it inside the [[bus]] it belongs to`);
    }
    values.set(key, rawValue(v, where(key), spec));
  }
  return { values, where: (name) => where(name) };
}

/** A bus setting that is a listen address (a bus after the first has that listener only if it says so). */
function isListen(spec: FlagSpec): boolean {
  return spec.kind === "addr";
}

function busConfig(f: ParsedFile, t: Table, i: number, globals: Config, globalSources: ReadonlyMap<keyof Config, ValueSource>): BusConfig {
  const where = at(f, "bus", i);
  const c = { ...globals } as unknown as Record<string, unknown>;
  const sources = new Map(globalSources);
  const name = t.name;
  if (typeof name !== "string" || !BUS_NAME.test(name)) {
    throw new ConfigError(`${where("name")}: every [[bus]] needs name = "…": 1 to 15 letters, digits, '_', '.', '-' (e.g. "can0")`);
  }
  for (const [key, v] of Object.entries(t)) {
    if (key === "name") continue;
    const spec = flagSpec(key);
    if (!spec) throw new ConfigError(`${where(key)}: unknown setting; a [[bus]] accepts name and ${busKeys()}`);
    if (!spec.bus) throw new ConfigError(`${where(key)}: "${key}" is not a setting of one bus; put it at the top level (a [[bus]] accepts name and ${busKeys()})`);
  }
  for (const spec of FLAGS) {
    if (!spec.bus) continue;
    // A flag (or, for the default bus, the environment) names the default bus's setting: a flag
    // beats the table, the table beats the environment.
    if (i === 0 && globalSources.get(spec.key) === "flag") continue;
    const v = t[spec.name];
    if (v !== undefined) {
      c[spec.key] = convertValue(spec, rawValue(v, where(spec.name), spec), where(spec.name));
      sources.set(spec.key, "file");
    } else if (i > 0 && spec.bus === "own") {
      // Not the default bus: nothing of the default bus's own settings, and no listener unless asked.
      c[spec.key] = isListen(spec) ? "" : convertValue(spec, spec.def, `default of -${spec.name}`);
      sources.set(spec.key, "default");
    }
  }
  c.socketcandBus = name;
  const config = c as unknown as Config;
  try {
    validateCombination(config);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(`${f.path}: [[bus]] "${name}": ${e.message}`);
    throw e;
  }
  return { name, config, sources };
}

function busKeys(): string {
  return FLAGS.filter((s) => s.bus)
    .map((s) => s.name)
    .join(", ");
}

/** Two listeners of any buses (or a bus and a global one) on one port: refused while reading. */
function checkListenConflicts(f: ParsedFile, buses: readonly BusConfig[], globals: Config): void {
  const seen: { host: string; port: number; what: string; udp: boolean }[] = [];
  const add = (addr: string, what: string, udp: boolean): void => {
    const a = parseListenAddress(addr);
    if (!a || a.port === 0) return;
    const wild = (h: string): boolean => h === "0.0.0.0" || h === "::" || h === "";
    for (const s of seen) {
      if (s.port !== a.port || s.udp !== udp) continue;
      if (s.host === a.host || wild(s.host) || wild(a.host)) {
        throw new ConfigError(`${f.path}: ${what} and ${s.what} both listen on ${udp ? "UDP" : "TCP"} port ${a.port}; give each its own port`);
      }
    }
    seen.push({ host: a.host, port: a.port, what, udp });
  };
  for (const spec of FLAGS) {
    if (spec.kind !== "addr") continue;
    const udp = spec.key === "cannelloniUdpListen";
    if (spec.bus) {
      for (const b of buses) add(b.config[spec.key] as string, `-${spec.name} of bus ${b.name}`, udp);
    } else add(globals[spec.key] as string, `-${spec.name}`, udp);
  }
}
