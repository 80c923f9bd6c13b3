/**
 * A live pcap or pcapng stream (`GET /capture.pcap`, `/capture.pcapng`): a hub client (of each
 * bus it captures) whose bounded queue holds
 * stamped frames until the HTTP response body pulls them. The body is pulled only as fast as the
 * reader takes bytes, so a slow reader fills this queue, and then frames are dropped *here*
 * (counted on the stream and in ConsumerCounters) — `enqueue` always answers true, so the hub
 * never counts this stream as a slow TCP client and never kicks it, whatever -hub-policy says.
 */
import type { CanFrame, StampedFrame } from "../can/frame.ts";
import type { HubClient } from "../hub/hub.ts";
import { BoundedQueue } from "../hub/bounded-queue.ts";
import type { ConsumerCounters } from "./counters.ts";
import type { IdFilter } from "./filter.ts";
import { PCAP_MAX_RECORD, pcapGlobalHeader, writePcapRecord } from "./pcap.ts";
import { PCAPNG_MAX_RECORD, pcapngHeader, writePcapngRecord } from "./pcapng.ts";

/** How a capture stream writes: its file header and one record per frame. */
export interface CaptureFormat {
  readonly header: Uint8Array;
  /** Bytes one record takes at most. */
  readonly maxRecord: number;
  /** Writes the record of `frame` at `at`, returns the offset after it. */
  write(out: Uint8Array, at: number, frame: StampedFrame): number;
}

/** Classic pcap (`/capture.pcap`): one bus, no interface in the records. */
export const PCAP_FORMAT: CaptureFormat = {
  header: pcapGlobalHeader(),
  maxRecord: PCAP_MAX_RECORD,
  write: (out, at, f) => writePcapRecord(out, at, f, f.ts),
};

/**
 * pcapng (`/capture.pcapng`): one interface per captured bus, named after it. `busIndexes[i]` is
 * the bus (StampedFrame.bus) of interface i.
 */
export function pcapngFormat(buses: readonly { readonly name: string; readonly index: number }[]): CaptureFormat {
  const iface = new Map(buses.map((b, i) => [b.index, i]));
  return {
    header: pcapngHeader(buses.map((b) => b.name)),
    maxRecord: PCAPNG_MAX_RECORD,
    write: (out, at, f) => writePcapngRecord(out, at, f, f.ts, iface.get(f.bus) ?? 0),
  };
}

/** Frames one pcap chunk carries at most (≈ 8 KiB of classic frames). */
const FRAMES_PER_CHUNK = 256;

export interface CaptureStreamOptions {
  readonly id: number;
  readonly remote: string;
  /** Frames held for a slow reader before dropping. */
  readonly queueFrames: number;
  readonly filter: IdFilter;
  /** Default PCAP_FORMAT. */
  readonly format?: CaptureFormat;
  readonly counters: ConsumerCounters;
  /** Called once when the stream ends (reader gone or kicked): detach from the hub here. */
  readonly closed: (stream: CaptureStream) => void;
}

export class CaptureStream implements HubClient {
  readonly protocol = "pcap";
  readonly id: number;
  readonly remote: string;
  readonly connectedAt = Date.now();
  readonly body: ReadableStream<Uint8Array>;
  dropped = 0;
  /** Frames written to the response body. */
  txFrames = 0;
  private readonly queue: BoundedQueue<StampedFrame>;
  private wake: (() => void) | null = null;
  private ended = false;
  private readonly format: CaptureFormat;

  constructor(private readonly opts: CaptureStreamOptions) {
    this.id = opts.id;
    this.remote = opts.remote;
    this.queue = new BoundedQueue<StampedFrame>(opts.queueFrames);
    const format = (this.format = opts.format ?? PCAP_FORMAT);
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (c) => c.enqueue(format.header.slice()),
        pull: (c) => this.pull(c),
        cancel: () => this.end(),
      },
      // One chunk in flight: the next pull waits for the reader.
      { highWaterMark: 1 },
    );
  }

  get receiving(): boolean {
    return !this.ended;
  }

  get queued(): number {
    return this.queue.length;
  }

  accepts(frame: CanFrame): boolean {
    return this.opts.filter.matches(frame);
  }

  enqueue(frame: StampedFrame): boolean {
    if (!this.queue.offer(frame)) {
      this.dropped++;
      this.opts.counters.byKind.pcap.dropped++;
    } else if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
    }
    return true;
  }

  kick(_reason: string): void {
    this.end();
  }

  /** Ends the stream (reader gone, shutdown). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.clear();
    const w = this.wake;
    this.wake = null;
    w?.();
    this.opts.closed(this);
  }

  private async pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    if (this.queue.length === 0 && !this.ended) await new Promise<void>((r) => (this.wake = r));
    if (this.ended) {
      try {
        c.close();
      } catch {
        // Already closed or errored by a cancelled reader.
      }
      return;
    }
    const n = Math.min(this.queue.length, FRAMES_PER_CHUNK);
    const out = new Uint8Array(n * this.format.maxRecord);
    let at = 0;
    for (let i = 0; i < n; i++) at = this.format.write(out, at, this.queue.poll()!);
    this.txFrames += n;
    this.opts.counters.byKind.pcap.frames += n;
    c.enqueue(out.subarray(0, at));
  }
}
