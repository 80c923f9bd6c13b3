/**
 * Counters shared by the in-process consumers (capture stream, recorder,
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
  /** Dashboard send attempts refused for a wrong -web-token or a locked-out host (web_tx_token_refused_total). */
  webTokenRefused = 0;
}
