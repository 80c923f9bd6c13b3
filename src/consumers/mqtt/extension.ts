/**
 * What the MQTT bridge offers a feature that publishes through it (the DBC signals today): a
 * sink for retained messages (the bridge's bounded outbox, latest per topic, drops counted), the
 * topic filters to subscribe after every connect, and the messages that arrive on them. The
 * bridge keeps the connection, the outbox and the pump; the feature keeps its topics.
 */
export interface MqttSink {
  /** Queues a retained message; false when the outbox was full (counted by the bridge). */
  retained(topic: string, payload: string): boolean;
}

export interface MqttExtension {
  /** Topic filters the bridge subscribes to after every connect. */
  subscriptions(): readonly string[];
  /** Called once, when the bridge is built. */
  bind(sink: MqttSink): void;
  /** After every connect: the broker may have lost retained messages, so publish everything again. */
  connected(): void;
  /** A message on a topic; true when it was this extension's. */
  message(topic: string, payload: string, retained: boolean): boolean;
  stop(): void;
}
