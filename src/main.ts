#!/usr/bin/env bun
/**
 * can-server entry point (composition root): config → logger → backend → gateway (hub +
 * listeners) → operations (HTTP, mDNS, metric logs) → signals. Exit codes: 0 after a clean
 * shutdown, 1 on a fatal runtime error (e.g. no SocketCAN in the kernel, port in use),
 * 2 on bad configuration (one line on stderr). Logs `listening` once the ports are open and
 * `ready` once /ready would answer 200.
 */
import { BackendFatalError } from "./backends/backend.ts";
import { createBackend } from "./backends/create.ts";
import { ConfigError, usage, type ConfigWarning } from "./cli/parse.ts";
import { loadConfiguration, type Configuration } from "./cli/config-file.ts";
import { printConfig } from "./cli/print-config.ts";
import { PROTOCOLS } from "./protocols/registry.ts";
import { startGateway, type BusSpec } from "./gateway.ts";
import { createLogger, type LogFields, type Logger } from "./ops/log.ts";
import { Stats } from "./ops/stats.ts";
import { startOperations } from "./ops/operations.ts";
import { buildInfo, versionLine } from "./ops/build-info.ts";
import { createConsumers, validateConsumerConfig } from "./consumers/consumers.ts";
import { ConsumerCounters } from "./capture/counters.ts";
import { startRecorder } from "./consumers/recorder.ts";
import { replayFileProblem } from "./backends/replay/config.ts";
import { Jobs } from "./jobs/jobs.ts";
import { stateDirProblem } from "./jobs/state-file.ts";

/** Protocols that listen once for every bus (src/protocols/registry.ts). */
const MULTI_BUS = new Set<string>(PROTOCOLS.filter((p) => p.multiBus === true).map((p) => p.name));

async function main(argv: string[]): Promise<number> {
  let config;
  let warnings: ConfigWarning[];
  let configuration: Configuration;
  try {
    configuration = loadConfiguration(argv, process.env);
    ({ config, warnings } = configuration);
    validateConsumerConfig(config, configuration.buses);
    if (!config.help && !config.version) {
      // Every bus's replay file (a [[bus]] after the first is as much the user's input as a flag).
      for (const b of configuration.buses) {
        if (b.config.backend !== "replay") continue;
        const problem = replayFileProblem(b.config.replayFile);
        if (problem) throw new ConfigError(configuration.busTables ? `${config.config}: [[bus]] "${b.name}": ${problem}` : problem);
      }
    }
    if (config.stateDir && !config.help && !config.version) {
      const problem = stateDirProblem(config.stateDir);
      if (problem) throw new ConfigError(problem);
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`can-server: configuration error: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (config.help) {
    process.stdout.write(usage());
    return 0;
  }
  const build = buildInfo();
  if (config.version) {
    process.stdout.write(versionLine(build) + "\n");
    return 0;
  }
  if (config.printConfig) {
    process.stdout.write(printConfig(configuration));
    return 0;
  }

  // Installed before start-up, so a SIGTERM during a slow backend start still shuts down cleanly.
  const signal = new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
  const log = createLogger(config.logFormat, config.logLevel);
  const stats = new Stats();
  // Invalid environment values kept their defaults (drop-in with go-ampio-server): say so once each.
  for (const w of warnings) log.warn("config_warning", { variable: w.variable, value: w.value, kept: w.kept, reason: w.message });
  log.info("starting", { version: build.version, commit: build.commit, backend: config.backend });

  // Ampio decoder and MQTT bridge (src/consumers/): created first, the replay hook goes to the gateway.
  const consumers = createConsumers(config, log);
  let gateway;
  try {
    // One backend per bus; the default bus counts into the process's Stats (one bus: as before).
    const buses: BusSpec[] = [];
    for (const [i, b] of configuration.buses.entries()) {
      const busStats = i === 0 ? stats : new Stats();
      const blog = configuration.buses.length > 1 ? log.child({ bus: b.name }) : log;
      buses.push({ name: b.name, config: b.config, stats: busStats, backend: await createBackend(b.config, busStats, blog) });
    }
    gateway = await startGateway(config, { stats, log, buses, routes: configuration.routes, initialFrames: consumers.initialFrames });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log.error(e instanceof BackendFatalError ? "backend_fatal" : "startup_failed", { error: msg });
    process.stderr.write(`can-server: ${msg}\n`);
    return 1;
  }

  const counters = new ConsumerCounters();
  const g = gateway;
  const recording = config.record
    ? await startRecorder(config, { buses: g.buses, allocateId: () => g.registry.allocateId(), counters, log })
    : null;
  await consumers.start(gateway);
  // Transmit jobs (src/jobs/): the configuration file's, then those -state-dir kept.
  const jobs = new Jobs({ buses: gateway.buses, log, stateDir: config.stateDir, allocateId: () => g.registry.allocateId() });
  jobs.load(configuration.jobs);
  // -dbc: SIGHUP re-reads the DBC files (clients stay connected; a bad file keeps the old one).
  if (consumers.signalBuses.stores.length > 0) process.on("SIGHUP", () => consumers.reloadDbc());
  let ops;
  try {
    ops = await startOperations(config, { gateway, stats, log, build, counters, consumers, jobs });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log.error("startup_failed", { error: msg });
    process.stderr.write(`can-server: ${msg}\n`);
    await jobs.stop();
    await recording?.stop();
    await consumers.stop();
    await gateway.shutdown(0);
    return 1;
  }
  const where = {
    // One bus: go-ampio-server's form; several: each single-bus listener says its bus (cannelloni@can1=20010).
    listeners:
      gateway.buses.length === 1
        ? gateway.listeners.map((l) => `${l.protocol.name}=${l.port}`).join(",")
        : gateway.buses.flatMap((b) => b.listeners.map((l) => `${l.protocol.name}${MULTI_BUS.has(l.protocol.name) ? "" : `@${b.name}`}=${l.port}`)).join(","),
    ...(gateway.buses.length > 1 ? { buses: gateway.buses.map((b) => b.name).join(",") } : {}),
    ...(ops.dashboardUrls[0] ? { dashboard: ops.dashboardUrls[0] } : {}),
  };
  // `listening` as soon as the ports are open; `ready` only when /ready says so (the backend is
  // up): a missing serial adapter must not read as a working gateway in the log.
  log.info("listening", where);
  const readyWatch = announceReady(gateway, log, where);

  log.info("shutdown", { signal: await signal });
  readyWatch.stop();
  // One deadline for the whole shutdown (-shutdown-timeout), on the monotonic clock: each step
  // gets what is left, so slow HTTP, MQTT or disk cannot hold the process past it.
  const deadline = performance.now() + config.shutdownTimeoutMs;
  const left = (): number => Math.max(0, deadline - performance.now());
  const within = (p: Promise<unknown>): Promise<unknown> => Promise.race([p, Bun.sleep(left())]);
  await within(ops.stop());
  await within(consumers.stop());
  await within(jobs.stop());
  await gateway.shutdown(left());
  if (recording) await within(recording.stop(left()));
  return 0;
}

/** How often the start-up waits to re-check readiness before logging `ready`. */
const READY_POLL_MS = 200;

/**
 * Logs `ready` once the gateway is ready (at once if it is); until then one `waiting_for_backend`
 * line with the reason /ready gives. Later outages are the backend's own `backend_down`/`_up` lines.
 */
function announceReady(gateway: { readiness(): { ready: boolean; reason: string } }, log: Logger, where: LogFields): { stop(): void } {
  const first = gateway.readiness();
  if (first.ready) {
    log.info("ready", where);
    return { stop() {} };
  }
  log.warn("waiting_for_backend", { reason: first.reason });
  const timer = setInterval(() => {
    if (!gateway.readiness().ready) return;
    clearInterval(timer);
    log.info("ready", where);
  }, READY_POLL_MS);
  return { stop: () => clearInterval(timer) };
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`can-server: fatal: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
