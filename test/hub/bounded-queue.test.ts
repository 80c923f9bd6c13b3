/** The ring buffer: FIFO order across wrap-around, refusal when full, batch draining. */
import { expect, test } from "bun:test";
import { BoundedQueue } from "../../src/hub/bounded-queue.ts";

test("FIFO across wrap-around, offer() false when full", () => {
  const q = new BoundedQueue<number>(3);
  const out: number[] = [];
  let next = 0;
  for (let round = 0; round < 10; round++) {
    while (q.offer(next)) next++;
    expect(q.isFull()).toBe(true);
    expect(q.length).toBe(3);
    out.push(q.poll()!, q.poll()!);
  }
  while (q.length) out.push(q.poll()!);
  expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
});

test("drainInto moves at most max items", () => {
  const q = new BoundedQueue<string>(5);
  for (const s of ["a", "b", "c", "d"]) q.offer(s);
  const batch: string[] = [];
  expect(q.drainInto(batch, 3)).toBe(3);
  expect(batch).toEqual(["a", "b", "c"]);
  expect(q.drainInto(batch, 3)).toBe(1);
  expect(batch[0]).toBe("d");
  expect(q.poll()).toBeUndefined();
});

test("capacity must be positive", () => {
  expect(() => new BoundedQueue(0)).toThrow(RangeError);
});

test("storage grows on demand up to capacity, order kept across growth and wrap", () => {
  const q = new BoundedQueue<number>(1000);
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < 50; i++) q.offer(next++);
  for (let i = 0; i < 30; i++) out.push(q.poll()!); // head moves, then growth with wrap
  while (q.offer(next)) next++;
  expect(q.length).toBe(1000);
  while (q.length) out.push(q.poll()!);
  expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
});
