/**
 * A Prometheus counter that mirrors a plain number at scrape time (the gateway counts in plain
 * fields; prom-client counters only go up by inc(), so collect() resets and re-adds). Shared by
 * the ops registry and the consumers' metrics. The prom-client classes are passed in, so this
 * module loads nothing: prom-client stays loaded only when -metrics-addr is set.
 */
import type * as Prom from "prom-client";

export function mirrorCounter(Counter: typeof Prom.Counter, registry: Prom.Registry, name: string, help: string, read: () => number): Prom.Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
