/**
 * Each bus's state on MQTT (issue 21 item 3): a retained `<prefix>/<bus>/state` message, JSON
 *   {"link":"up","reason":"","state":"error-active","tx_errors":0,"rx_errors":0,"restarts":0,"bus_off":0}
 * `link` is the backend (up, or down with its reason: a lost link), `state` the CAN controller's
 * state where the backend reports it (SocketCAN: error-active, error-warning, error-passive,
 * bus-off, stopped; null elsewhere), so a bus-off is told apart from a lost link. Published when it
 * changes (looked at once a second) and again after every connect (the broker may have lost its
 * retained store). The gateway's own <prefix>/availability (online/offline, the last will) stays
 * the bridge's. An extension of the bridge (./extension.ts): no change to the bridge's pump.
 */
import type { Backend } from "../../backends/backend.ts";
import type { MqttExtension, MqttSink } from "./extension.ts";
import { topicLevel } from "./signals.ts";

/** How often the buses are looked at; a change is published within this. */
const LOOK_MS = 1000;

export interface StateBus {
  readonly name: string;
  readonly backend: Backend;
}

/** The retained payload for one bus now. */
export function busStatePayload(backend: Backend): string {
  const h = backend.health?.() ?? null;
  return JSON.stringify({
    link: backend.up ? "up" : "down",
    reason: backend.up ? "" : backend.downReason,
    state: h?.state ?? null,
    ...(h?.txErrors !== undefined ? { tx_errors: h.txErrors } : {}),
    ...(h?.rxErrors !== undefined ? { rx_errors: h.rxErrors } : {}),
    ...(h?.restarts !== undefined ? { restarts: h.restarts } : {}),
    ...(h?.busOff !== undefined ? { bus_off: h.busOff } : {}),
  });
}

export class BusStatePublisher implements MqttExtension {
  private sink: MqttSink | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  /** The last payload queued per topic (a change is what gets published). */
  private readonly last = new Map<string, string>();

  constructor(
    private readonly prefix: string,
    private readonly buses: readonly StateBus[],
  ) {}

  /** The state topic of a bus. */
  topic(bus: string): string {
    return `${this.prefix}/${topicLevel(bus)}/state`;
  }

  subscriptions(): readonly string[] {
    return [];
  }

  bind(sink: MqttSink): void {
    this.sink = sink;
    this.look(false);
    this.timer = setInterval(() => this.look(false), LOOK_MS);
    this.timer.unref?.();
  }

  connected(): void {
    this.look(true);
  }

  message(): boolean {
    return false;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private look(all: boolean): void {
    if (this.sink === null) return;
    for (const b of this.buses) {
      const topic = this.topic(b.name);
      const payload = busStatePayload(b.backend);
      if (!all && this.last.get(topic) === payload) continue;
      // A full outbox is counted by the bridge; try again at the next look.
      if (this.sink.retained(topic, payload)) this.last.set(topic, payload);
      else this.last.delete(topic);
    }
  }
}
