/**
 * Counters and the receive clock shared by the in-process consumers (capture stream, recorder,
 * dashboard viewers). Each consumer kind has monotonic totals that outlive its instances (a
 * capture stream that ends keeps its drops counted), read by /metrics and the dashboard.
 */

export type ConsumerKind = "pcap" | "recorder" | "web";
export const CONSUMER_KINDS: readonly ConsumerKind[] = ["pcap", "recorder", "web"];

export interface ConsumerCount {
  /** Frames the consumer delivered (wrote to the stream, file or socket). */
  frames: number;
  /** Frames it lost because its own bounded queue was full (or the disk refused them). */
  dropped: number;
}

export class ConsumerCounters {
  readonly byKind: Readonly<Record<ConsumerKind, ConsumerCount>> = {
    pcap: { frames: 0, dropped: 0 },
    recorder: { frames: 0, dropped: 0 },
    web: { frames: 0, dropped: 0 },
  };
}

const ORIGIN_US = performance.timeOrigin * 1000;

/**
 * Wall-clock microseconds since the Unix epoch, with sub-millisecond resolution (Date.now() has
 * only milliseconds). Consumers stamp a frame when the hub hands it to them, which is in the same
 * event-loop turn in which the backend delivered it: the receive time as this process saw it.
 */
export function nowUs(): number {
  return Math.floor(ORIGIN_US + performance.now() * 1000);
}
