/**
 * The write pump against sinks that take bytes in odd amounts, take nothing, or are closed:
 * bytes must come out complete and in order. These sinks are in-memory stand-ins for a socket's
 * write() return value (the real-socket path is covered by test/server/gateway.test.ts).
 */
import { expect, test } from "bun:test";
import { WritePump, type ByteSink } from "../../src/server/write-pump.ts";

class StingySink implements ByteSink {
  readonly out: number[] = [];
  constructor(private readonly takes: () => number) {}
  write(data: Uint8Array): number {
    const n = Math.min(data.length, this.takes());
    for (let i = 0; i < n; i++) this.out.push(data[i]!);
    return n;
  }
}

test("partial writes resume on drain with the exact remaining bytes", () => {
  let seed = 7;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 5);
  const sink = new StingySink(rand);
  const pump = new WritePump(sink);
  const expected: number[] = [];
  for (let msg = 0; msg < 200; msg++) {
    const bytes = Uint8Array.from({ length: 1 + (msg % 17) }, (_, i) => (msg * 31 + i) & 0xff);
    expected.push(...bytes);
    let guard = 0;
    while (pump.busy && guard++ < 10_000) pump.resume();
    expect(pump.busy).toBe(false);
    expect(pump.write(bytes)).toBe(true);
  }
  let guard = 0;
  while (pump.busy && guard++ < 10_000) pump.resume();
  expect(sink.out).toEqual(expected);
});

test("a sink that takes nothing keeps everything pending", () => {
  const sink = new StingySink(() => 0);
  const pump = new WritePump(sink);
  pump.write(Uint8Array.from([1, 2, 3]));
  expect(pump.busy).toBe(true);
  expect(pump.pendingBytes).toBe(3);
  expect(() => pump.write(Uint8Array.from([4]))).toThrow();
});

test("a closed sink reports false", () => {
  const pump = new WritePump({ write: () => -1 });
  expect(pump.write(Uint8Array.from([1]))).toBe(false);
});
