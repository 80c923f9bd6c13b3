/**
 * Starts the operations side of a running gateway from its Config: the metrics registry, the
 * HTTP endpoint (dashboard, API, capture, /metrics, /ready, /healthz) when -metrics-addr is set, periodic counter logs
 * when -log-metrics-interval > 0, the mDNS advertisement when -mdns-enable is on, and the
 * socketcand discovery beacon when -socketcand-beacon is on (with the socketcand listener bound),
 * and GVRET discovery datagrams when -gvret-discovery is on (with the GVRET listener bound).
 * Each of these is imported only when configured (prom-client, Bun.serve routes, bonjour-service,
 * dgram): a gateway without them neither loads their code nor runs their timers (prom-client's
 * event-loop delay monitor alone woke an idle process 50 times a second).
 */
import type { Config } from "../cli/config.ts";
import { parseListenAddress } from "../net/address.ts";
import { splitList } from "../net/cidr.ts";
import { HostCheck } from "../net/http-hosts.ts";
import type { Gateway } from "../gateway.ts";
import type { BuildInfo } from "./build-info.ts";
import type { HttpRoute } from "./http.ts";
import type { Logger } from "./log.ts";
import type { Registry } from "prom-client";
import type { HubGauges, Metrics } from "./metrics.ts";
import type { Stats } from "./stats.ts";
import { ConsumerCounters } from "../capture/counters.ts";
import { PROTOCOLS } from "../protocols/registry.ts";
import { networkInterfaces } from "node:os";
import { endpointUrls } from "./endpoint-urls.ts";
import type { Jobs } from "../jobs/jobs.ts";

export interface OperationsDeps {
  readonly gateway: Gateway;
  readonly stats: Stats;
  readonly log: Logger;
  readonly build: BuildInfo;
  /** Totals of the in-process consumers (capture, recorder, dashboard); one set per process. */
  readonly counters?: ConsumerCounters;
  /** The Ampio decoder and MQTT bridge (src/consumers/consumers.ts): their HTTP routes and metrics. */
  readonly consumers?: {
    readonly routes: Readonly<Record<string, HttpRoute>>;
    registerMetrics(registry: Registry): Promise<void>;
  };
  /** The gateway's transmit jobs (src/jobs/), served and counted by the HTTP API. */
  readonly jobs?: Jobs;
}

export interface Operations {
  /** The Prometheus registry, when the HTTP endpoint is enabled. */
  readonly metrics: Metrics | undefined;
  /** Bound HTTP port, when the endpoint is enabled. */
  readonly httpPort: number | undefined;
  /** The dashboard's URLs, one per address it is reachable at (empty without -metrics-addr). */
  readonly dashboardUrls: readonly string[];
  stop(): Promise<void>;
}

export async function startOperations(config: Config, deps: OperationsDeps): Promise<Operations> {
  const { gateway, stats, log, build } = deps;
  const gaugesOf = (hub: Gateway["hub"]) => (): HubGauges => {
    const depth = hub.queueDepth();
    return { activeClients: hub.size, queueDepthMax: depth.max, queueDepthAvg: depth.avg };
  };
  const hubGauges = gaugesOf(gateway.hub);
  // With several buses every bus-scoped series carries its bus (README "Several buses").
  const buses = (gateway.buses ?? []).map((b) => ({ name: b.name, stats: b.stats, hubGauges: gaugesOf(b.hub) }));
  const counters = deps.counters ?? new ConsumerCounters();
  const stops: (() => Promise<void> | void)[] = [];
  let httpPort: number | undefined;
  let dashboardUrls: string[] = [];
  let metrics: Metrics | undefined;
  try {
    if (config.metricsAddr) {
      const [{ createMetrics }, { startOpsHttp }, { busViewRoutes }] = await Promise.all([import("./metrics.ts"), import("./http.ts"), import("../web/routes.ts")]);
      metrics = createMetrics({ stats, build, hubGauges, buses, routes: gateway.routes ?? [], consumers: counters });
      await deps.consumers?.registerMetrics(metrics.registry);
      const views = busViewRoutes(config, { gateway, log, counters, build, stats, jobs: deps.jobs });
      stops.push(() => views.stop());
      const { registerApiMetrics } = await import("../api/metrics.ts");
      registerApiMetrics(metrics.registry, views.api.counters, views.jobs);
      const http = startOpsHttp({
        addr: config.metricsAddr,
        metrics,
        readiness: () => gateway.readiness(),
        log,
        allow: gateway.registry.limits.allow,
        admission: gateway.registry.admission,
        hosts: new HostCheck(splitList(config.httpHosts)),
        rejected: () => stats.httpRejected++,
        routes: { ...views.routes, ...deps.consumers?.routes },
        websocket: views.websocket,
      });
      httpPort = http.port;
      stops.push(() => http.stop());
      // Start-up says where to look: the dashboard at every address it answers on.
      dashboardUrls = endpointUrls(parseListenAddress(config.metricsAddr)!.host, http.port, networkInterfaces());
      log.info("dashboard", { urls: dashboardUrls.join(" ") });
    }
    if (config.logMetricsIntervalMs > 0) {
      const { startMetricsLogger } = await import("./metrics-logger.ts");
      stops.push(startMetricsLogger({ stats, intervalMs: config.logMetricsIntervalMs, log, hubGauges }));
    }
    if (config.mdnsEnable) {
      const txt: Record<string, string> = { backend: config.backend, version: build.version, commit: build.commit };
      // One `<protocol>_port` record per enabled listener, from the protocol registry.
      for (const p of PROTOCOLS) {
        const port = gateway.port(p.name);
        if (p.txtKey !== null && port !== undefined) txt[p.txtKey] = String(port);
      }
      const { startMdns, mdnsBusTxt } = await import("./mdns.ts");
      // Several buses: one advertisement listing them (buses=, port_<bus>=).
      Object.assign(txt, mdnsBusTxt(gateway.buses.map((b) => ({ name: b.name, cannelloniPort: b.port("cannelloni") }))));
      const mdns = await startMdns({ name: config.mdnsName, port: gateway.port("cannelloni")!, txt, log });
      stops.push(() => mdns.stop());
    }
    const socketcandPort = gateway.port("socketcand");
    if (config.socketcandBeacon && socketcandPort !== undefined) {
      const { startSocketcandBeacon } = await import("./socketcand-beacon.ts");
      const beacon = startSocketcandBeacon({
        port: socketcandPort,
        busNames: gateway.buses.map((b) => b.name),
        listenHost: parseListenAddress(config.socketcandListen)?.host ?? "0.0.0.0",
        log,
      });
      stops.push(() => beacon.stop());
    }
    const gvretPort = gateway.port("gvret");
    if (config.gvretDiscovery && gvretPort !== undefined) {
      const { startGvretDiscovery } = await import("./gvret-discovery.ts");
      const discovery = startGvretDiscovery({ port: gvretPort, listenHost: parseListenAddress(config.gvretListen)?.host ?? "0.0.0.0", log });
      stops.push(() => discovery.stop());
    }
  } catch (e) {
    for (const s of [...stops].reverse()) await s();
    throw e;
  }
  return {
    metrics,
    httpPort,
    dashboardUrls,
    async stop(): Promise<void> {
      for (const s of [...stops].reverse()) await s();
    },
  };
}
