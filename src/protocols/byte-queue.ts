/**
 * The one offset-based byte accumulator every streaming decoder uses. Chunks are appended at the
 * end, decoders read from `start` and `consume()` what they have parsed. Compaction happens only
 * when appending, never while a decoder holds a view, so no decoder can parse a stale view (the
 * go-ampio-server defect that duplicated and lost frames). Growth is bounded by `maxBytes`.
 */
export class ByteQueue {
  private buf: Uint8Array;
  private start = 0;
  private end = 0;

  constructor(
    initialCapacity = 256,
    /** Upper bound on buffered bytes; push() throws ByteQueueOverflow past it. */
    readonly maxBytes = 1 << 20,
  ) {
    this.buf = new Uint8Array(initialCapacity);
  }

  get length(): number {
    return this.end - this.start;
  }

  /** Appends a chunk (copied). Throws ByteQueueOverflow if more than maxBytes would be held. */
  push(chunk: Uint8Array): void {
    const n = chunk.length;
    if (n === 0) return;
    const len = this.end - this.start;
    if (len + n > this.maxBytes) throw new ByteQueueOverflow(len + n, this.maxBytes);
    if (this.end + n > this.buf.length) {
      if (len + n <= this.buf.length && this.start >= len) {
        // Enough room once the unread bytes move to the front.
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        let cap = this.buf.length * 2;
        while (cap < len + n) cap *= 2;
        const next = new Uint8Array(Math.min(cap, Math.max(this.maxBytes, len + n)));
        next.set(this.buf.subarray(this.start, this.end));
        this.buf = next;
      }
      this.start = 0;
      this.end = len;
    }
    this.buf.set(chunk, this.end);
    this.end += n;
  }

  /** Byte at offset i from the read position (caller checks i < length). */
  at(i: number): number {
    return this.buf[this.start + i]!;
  }

  /** A view of the next n unread bytes; valid until the next push(). */
  view(n: number, offset = 0): Uint8Array {
    return this.buf.subarray(this.start + offset, this.start + offset + n);
  }

  /** A copy of n bytes at offset. */
  copy(n: number, offset = 0): Uint8Array {
    return this.buf.slice(this.start + offset, this.start + offset + n);
  }

  consume(n: number): void {
    this.start += Math.min(n, this.end - this.start);
    if (this.start === this.end) this.start = this.end = 0;
  }

  /** Offset (from the read position) of the first byte equal to b at or after `from`, or -1. */
  indexOf(b: number, from = 0): number {
    const i = this.buf.subarray(0, this.end).indexOf(b, this.start + from);
    return i < 0 ? -1 : i - this.start;
  }

  clear(): void {
    this.start = this.end = 0;
  }
}

export class ByteQueueOverflow extends Error {
  override readonly name = "ByteQueueOverflow";
  constructor(
    readonly wanted: number,
    readonly max: number,
  ) {
    super(`decoder buffer would hold ${wanted} bytes, limit is ${max}`);
  }
}
