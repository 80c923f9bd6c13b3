/**
 * Bounded FIFO ring buffer. offer() returns false when `capacity` items are held instead of
 * growing past it, so a slow client can never make the gateway's memory grow without bound.
 * Storage starts small and doubles on demand up to `capacity`: a connection costs memory for
 * what it actually queues, not for its limit (-hub-buffer may be large).
 */
const INITIAL_SLOTS = 64;

export class BoundedQueue<T> {
  private items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`queue capacity must be a positive integer, got ${capacity}`);
    this.items = new Array<T | undefined>(Math.min(capacity, INITIAL_SLOTS));
  }

  get length(): number {
    return this.count;
  }

  isFull(): boolean {
    return this.count === this.capacity;
  }

  offer(item: T): boolean {
    if (this.count === this.items.length) {
      if (this.count === this.capacity) return false;
      this.grow();
    }
    this.items[(this.head + this.count) % this.items.length] = item;
    this.count++;
    return true;
  }

  /** Puts an item back in front of the oldest (after a poll that could not be used); false if full. */
  unshift(item: T): boolean {
    if (this.count === this.items.length) {
      if (this.count === this.capacity) return false;
      this.grow();
    }
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = item;
    this.count++;
    return true;
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  poll(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.count--;
    return item;
  }

  /** Moves up to max items into out (from index 0) and returns how many were moved. */
  drainInto(out: T[], max: number): number {
    const n = Math.min(max, this.count);
    for (let i = 0; i < n; i++) out[i] = this.poll()!;
    return n;
  }

  /** Drops every item (releases them for the garbage collector). */
  clear(): void {
    while (this.count > 0) this.poll();
    this.head = 0;
  }

  private grow(): void {
    const next = new Array<T | undefined>(Math.min(this.capacity, this.items.length * 2));
    for (let i = 0; i < this.count; i++) next[i] = this.items[(this.head + i) % this.items.length];
    this.items = next;
    this.head = 0;
  }
}
