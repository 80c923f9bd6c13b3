/**
 * A bounded queue drained in batches off the hot path, for in-process hub clients (the Ampio
 * decoder, the DBC signal store): offer() is all the hub pays for; a setImmediate hands at most
 * `batchMax` items per event-loop turn to `handle`, then yields and comes back while more waits,
 * so a burst never holds the loop and a full queue is the hub policy's business (offer → false).
 */
import { BoundedQueue } from "./bounded-queue.ts";

export class BatchDrain<T> {
  private readonly queue: BoundedQueue<T>;
  private readonly batch: T[] = [];
  private scheduled = false;

  constructor(
    capacity: number,
    private readonly batchMax: number,
    /** Gets each batch (the array is reused: do not keep it). */
    private readonly handle: (batch: readonly T[]) => void,
  ) {
    this.queue = new BoundedQueue<T>(capacity);
  }

  get length(): number {
    return this.queue.length;
  }

  /** Queues an item and schedules a drain; false when the queue is full (the caller counts it). */
  offer(item: T): boolean {
    if (!this.queue.offer(item)) return false;
    this.schedule();
    return true;
  }

  /** Drops everything queued (a kicked client); returns how many items were dropped. */
  clear(): number {
    const n = this.queue.length;
    this.queue.clear();
    return n;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.drain);
  }

  private readonly drain = (): void => {
    this.scheduled = false;
    const batch = this.batch;
    batch.length = 0;
    this.queue.drainInto(batch, this.batchMax);
    this.handle(batch);
    batch.length = 0;
    if (this.queue.length > 0) this.schedule();
  };
}
