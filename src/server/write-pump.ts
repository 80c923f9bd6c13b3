/**
 * Partial writes done right. `Bun.listen` sockets may accept only part of a write and do not
 * buffer the rest, so the pump keeps the unaccepted tail and resumes it on `drain`. Bytes are
 * never dropped or reordered, so a frame is never split or lost on the wire.
 */

/** The one thing the pump needs of a socket: write, returning how many bytes were taken (<0: closed). */
export interface ByteSink {
  write(data: Uint8Array): number;
}

export class WritePump {
  private pending: Uint8Array | null = null;

  constructor(private readonly sink: ByteSink) {}

  /** True while bytes wait for the socket to drain; write() must not be called then. */
  get busy(): boolean {
    return this.pending !== null;
  }

  get pendingBytes(): number {
    return this.pending?.length ?? 0;
  }

  /** Writes bytes, keeping what the socket did not take. Returns false if the socket is closed. */
  write(bytes: Uint8Array): boolean {
    if (this.pending) throw new Error("WritePump.write while busy");
    return this.offer(bytes);
  }

  /** Call on `drain`: writes the kept tail. Returns false if the socket is closed. */
  resume(): boolean {
    const rest = this.pending;
    if (!rest) return true;
    this.pending = null;
    return this.offer(rest);
  }

  private offer(bytes: Uint8Array): boolean {
    if (bytes.length === 0) return true;
    const n = this.sink.write(bytes);
    if (n < 0) return false;
    if (n < bytes.length) this.pending = bytes.subarray(n);
    return true;
  }
}
