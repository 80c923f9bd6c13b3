import { describe, expect, test } from "bun:test";
import { BatchDrain } from "../../src/hub/batch-drain.ts";

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("BatchDrain", () => {
  test("hands at most batchMax items per turn, in order, and comes back while more waits", async () => {
    const seen: number[][] = [];
    const q = new BatchDrain<number>(100, 4, (b) => seen.push([...b]));
    for (let i = 0; i < 10; i++) expect(q.offer(i)).toBe(true);
    expect(seen).toEqual([]); // nothing handled on the offering turn
    await turn();
    expect(seen).toEqual([[0, 1, 2, 3]]);
    expect(q.length).toBe(6);
    await turn();
    await turn();
    expect(seen).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(q.length).toBe(0);
  });

  test("offer is refused when full; clear drops and counts what was queued", async () => {
    const seen: number[] = [];
    const q = new BatchDrain<number>(3, 10, (b) => seen.push(...b));
    expect([q.offer(1), q.offer(2), q.offer(3), q.offer(4)]).toEqual([true, true, true, false]);
    expect(q.clear()).toBe(3);
    await turn();
    expect(seen).toEqual([]);
    expect(q.offer(5)).toBe(true);
    await turn();
    expect(seen).toEqual([5]);
  });
});
