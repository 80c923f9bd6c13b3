/**
 * The cap on the long-lived streams of the operations HTTP endpoint (`-http-max-streams`):
 * dashboard WebSockets (`/ws`, each a WebViewer with its own frame queue) and live captures
 * (`/capture.pcap`, each a hub client with its own queue), counted together. Without it a peer
 * opening thousands of them grows memory without bound and uses a descriptor per stream.
 *
 * A stream holds its slot from admission until it really ends (WebSocket close, capture stream
 * end or abort); `release()` is idempotent, so a slot is freed exactly once whichever of the ways
 * a stream can end fires first or fires twice. Beyond the cap the route answers 503 with
 * `retry-after: 5`; every refusal is counted (Stats.httpStreamsRejected, exported as
 * http_streams_rejected_total) and a burst of them is logged once per 10 s (./refusals.ts).
 */
import { RefusalLog } from "./refusals.ts";
import type { Logger } from "../ops/log.ts";
import type { Stats } from "../ops/stats.ts";

/** What is asking for a slot (a log field). */
export type HttpStreamKind = "websocket" | "capture";

/** Seconds a refused client is asked to wait (the `retry-after` header). */
export const STREAM_RETRY_AFTER_S = 5;

export interface HttpStreamSlot {
  /** Frees the slot; every call after the first does nothing. */
  release(): void;
}

export class HttpStreamLimit {
  private held = 0;
  private readonly refusals: RefusalLog;

  constructor(
    /** -http-max-streams (at least 1). */
    readonly max: number,
    private readonly stats: Stats,
    log: Logger,
  ) {
    this.refusals = new RefusalLog(log, "http_stream_rejected");
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`http stream limit must be an integer >= 1, got ${max}`);
  }

  /** Streams holding a slot now. */
  get open(): number {
    return this.held;
  }

  /**
   * A slot for a new stream from `remote`, or, when `max` streams are open, the 503 response to
   * answer instead (the refusal is already counted and, once per burst, logged).
   */
  admit(kind: HttpStreamKind, remote: string): HttpStreamSlot | Response {
    if (this.held >= this.max) return this.refuse(kind, remote);
    this.set(this.held + 1);
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.set(this.held - 1);
      },
    };
  }

  private set(n: number): void {
    this.held = n;
    this.stats.httpStreamsOpen = n;
  }

  private refuse(kind: HttpStreamKind, remote: string): Response {
    this.stats.httpStreamsRejected++;
    this.refusals.note({ kind, remote, open: this.held, max: this.max });
    return new Response(
      `too many open streams: ${this.max} dashboard WebSockets and /capture.pcap streams are already open, the most -http-max-streams ${this.max} allows; retry later\n`,
      {
        status: 503,
        headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store", "retry-after": String(STREAM_RETRY_AFTER_S) },
      },
    );
  }
}
