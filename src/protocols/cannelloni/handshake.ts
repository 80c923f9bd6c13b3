/**
 * The cannelloni v1 hello (docs/protocols.md §2): each side sends the 12 ASCII bytes
 * `CANNELLONIv1`, no terminator. A pure step function checks the client's bytes as they arrive,
 * failing on the first wrong byte instead of waiting for all 12, and hands back whatever followed
 * the hello in the same chunk: those bytes are already frames and must not be lost.
 */

export const CANNELLONI_HELLO: Uint8Array = new TextEncoder().encode("CANNELLONIv1");

export type HelloStep =
  /** All bytes so far match; `matched` hello bytes have been seen. */
  | { readonly kind: "need-more"; readonly matched: number }
  /** The hello is complete; `rest` is the part of the chunk after it (possibly empty, a view). */
  | { readonly kind: "done"; readonly rest: Uint8Array }
  | { readonly kind: "error"; readonly reason: string };

/** Advances the hello check by one chunk, given how many hello bytes earlier chunks matched. */
export function stepHello(matched: number, chunk: Uint8Array): HelloStep {
  const hello = CANNELLONI_HELLO;
  let m = matched;
  let i = 0;
  while (m < hello.length && i < chunk.length) {
    if (chunk[i] !== hello[m]) {
      return { kind: "error", reason: `expected "CANNELLONIv1", byte ${m} is 0x${chunk[i]!.toString(16).padStart(2, "0")}` };
    }
    m++;
    i++;
  }
  if (m < hello.length) return { kind: "need-more", matched: m };
  return { kind: "done", rest: chunk.subarray(i) };
}
