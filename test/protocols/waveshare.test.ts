/**
 * Waveshare 13-byte codec and session (docs/protocols.md §5): the shared conformance suite
 * (as a resynchronising codec: a bad frame is skipped, never fatal), named byte vectors commented
 * per byte, the WireSession driven through a recording events sink (the interface the server
 * layer implements), and bad frames over real TCP through a gateway on the virtual bus.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { CAN_ERR_FLAG, type CanFrame, dataFrame, fdFrame, remoteFrame } from "../../src/can/frame.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import { encodeWaveshare, WAVESHARE_FRAME_BYTES, WaveshareDecoder } from "../../src/protocols/waveshare/codec.ts";
import { waveshare } from "../../src/protocols/waveshare/protocol.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { WaveshareTestClient, wsBytes } from "../helpers/waveshare-client.ts";
import { Rng, runCodecConformance } from "./conformance.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

function genWaveshareFrame(rng: Rng): CanFrame {
  const ext = rng.bool();
  const id = ext ? rng.int(0x20000000) : rng.int(0x800);
  return rng.bool(0.2) ? remoteFrame(id, rng.int(9), ext) : dataFrame(id, rng.bytes(rng.int(9)), ext);
}

function decodeAll(...chunks: Uint8Array[]): { frames: CanFrame[]; rejects: string[]; buffered: number } {
  const frames: CanFrame[] = [];
  const rejects: string[] = [];
  const dec = new WaveshareDecoder(
    (f) => frames.push(f),
    (r) => rejects.push(r),
  );
  for (const c of chunks) dec.push(c);
  expect(dec.rejected).toBe(rejects.length);
  return { frames, rejects, buffered: dec.buffered };
}

runCodecConformance({
  name: "waveshare",
  encode: (frames) => encodeWaveshare(frames, frames.length),
  makeDecoder(onFrame) {
    const d = new WaveshareDecoder(onFrame);
    return {
      push: (c) => {
        d.push(c);
        return null;
      },
      buffered: () => d.buffered,
      rejected: () => d.rejected,
    };
  },
  genFrame: genWaveshareFrame,
  maxBuffered: WAVESHARE_FRAME_BYTES - 1,
  // A resynchronising codec: a bad frame is skipped. DLC 9:
  malformed: bytes(0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
});

describe("waveshare decoder byte vectors", () => {
  // info DLC 3 | id 0x123 | AA BB CC + 5 padding
  const std3 = bytes(0x03, 0x00, 0x00, 0x01, 0x23, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0);

  test("standard data frame", () => {
    expect(decodeAll(std3)).toEqual({ frames: [dataFrame(0x123, [0xaa, 0xbb, 0xcc])], rejects: [], buffered: 0 });
  });

  test("frame split in two chunks", () => {
    expect(decodeAll(std3.subarray(0, 6), std3.subarray(6)).frames).toEqual([dataFrame(0x123, [0xaa, 0xbb, 0xcc])]);
  });

  test("one and a half frames, then the rest", () => {
    const wire = new Uint8Array([...std3, ...std3]);
    expect(decodeAll(wire.subarray(0, 19)).frames.length).toBe(1);
    expect(decodeAll(wire.subarray(0, 19), wire.subarray(19)).frames.length).toBe(2);
  });

  test("extended frame: info 0x80, id without flag bits", () => {
    // info EXT | DLC 8, id 0x1ABCDE0F, 8 data bytes
    const { frames } = decodeAll(bytes(0x88, 0x1a, 0xbc, 0xde, 0x0f, 1, 2, 3, 4, 5, 6, 7, 8));
    expect(frames).toEqual([dataFrame(0x1abcde0f, [1, 2, 3, 4, 5, 6, 7, 8], true)]);
  });

  test("extended frame with a small id stays extended", () => {
    const { frames } = decodeAll(bytes(0x80, 0, 0, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 0));
    expect(frames).toEqual([dataFrame(0x5, [], true)]);
  });

  test("RTR keeps its DLC, padding ignored, no data", () => {
    // info RTR | DLC 4, id 0x7FF, padding not zero
    const { frames } = decodeAll(bytes(0x44, 0, 0, 0x07, 0xff, 9, 9, 9, 9, 9, 9, 9, 9));
    expect(frames).toEqual([remoteFrame(0x7ff, 4)]);
  });

  test("non-zero padding after the data is ignored", () => {
    const { frames } = decodeAll(bytes(0x01, 0, 0, 0, 0x10, 0x42, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff));
    expect(frames).toEqual([dataFrame(0x10, [0x42])]);
  });

  // Each bad frame below is followed by std3: it must be skipped, reported once, and std3 decoded.
  const skipped = (bad: Uint8Array): { frames: CanFrame[]; rejects: string[]; buffered: number } =>
    decodeAll(new Uint8Array([...bad, ...std3]));
  const std3Frame = dataFrame(0x123, [0xaa, 0xbb, 0xcc]);

  test("DLC 9 is rejected and skipped", () => {
    // info DLC 9 | id 1 | 8 bytes
    expect(skipped(bytes(0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0))).toEqual({ frames: [std3Frame], rejects: ["DLC 9 above 8"], buffered: 0 });
  });

  test("DLC 15 is rejected and skipped", () => {
    expect(skipped(bytes(0x0f, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0))).toEqual({ frames: [std3Frame], rejects: ["DLC 15 above 8"], buffered: 0 });
  });

  test("reserved info bits are rejected and skipped", () => {
    // info 0x10 / 0x20 / 0x30 (reserved) | DLC 0
    expect(skipped(bytes(0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0))).toEqual({ frames: [std3Frame], rejects: ["reserved info bits set (0x10)"], buffered: 0 });
    expect(skipped(bytes(0x20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).rejects).toEqual(["reserved info bits set (0x20)"]);
    // reserved bits with an otherwise valid extended DLC-8 frame: still not this protocol
    expect(skipped(bytes(0xb8, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8)).rejects).toEqual(["reserved info bits set (0xb8)"]);
  });

  test("standard id above 0x7FF is rejected and skipped", () => {
    expect(skipped(bytes(0x00, 0, 0, 0x08, 0x00, 0, 0, 0, 0, 0, 0, 0, 0))).toEqual({ frames: [std3Frame], rejects: ["standard id 0x800 out of range"], buffered: 0 });
  });

  test("extended id above 0x1FFFFFFF is rejected and skipped", () => {
    expect(skipped(bytes(0x80, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)).rejects).toEqual(["extended id 0x20000000 out of range"]);
  });

  test("flag bits in the id word are rejected (the format has none)", () => {
    // info EXT | id word 0x80000001 (the SocketCAN EFF flag written into the id)
    const r = skipped(bytes(0x80, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    expect(r.frames).toEqual([std3Frame]);
    expect(r.rejects).toEqual(["extended id 0x80000001 out of range"]);
  });

  test("frames before and after a bad frame in the same chunk are all delivered", () => {
    const { frames, rejects } = decodeAll(new Uint8Array([...std3, 0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, ...std3]));
    expect(frames).toEqual([std3Frame, std3Frame]);
    expect(rejects).toHaveLength(1);
  });

  test("a bad frame completed from buffered bytes is skipped; framing stays aligned", () => {
    // info DLC 12, split 3 | 10 across chunks, with std3 before and after
    const bad = bytes(0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const { frames, rejects, buffered } = decodeAll(new Uint8Array([...std3, ...bad.subarray(0, 3)]), bad.subarray(3), std3);
    expect(frames).toEqual([std3Frame, std3Frame]);
    expect(rejects).toEqual(["DLC 12 above 8"]);
    expect(buffered).toBe(0);
  });

  test("bad frames back to back, one byte at a time: each reported once", () => {
    const wire = new Uint8Array([
      ...bytes(0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
      ...std3,
      ...bytes(0x09, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0),
      ...bytes(0x00, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0),
      ...std3,
    ]);
    const chunks = Array.from(wire, (b) => bytes(b));
    const { frames, rejects } = decodeAll(...chunks);
    expect(frames).toEqual([std3Frame, std3Frame]);
    expect(rejects).toEqual(["reserved info bits set (0x10)", "DLC 9 above 8", "standard id 0xffffffff out of range"]);
  });
});

describe("waveshare encoder byte vectors", () => {
  test("standard, extended and RTR frames, 13 bytes each, zero padded", () => {
    const wire = encodeWaveshare([dataFrame(0x123, [0xaa, 0xbb, 0xcc]), dataFrame(0x1abcde0f, [1], true), remoteFrame(0x7ff, 8)], 3);
    expect(Array.from(wire)).toEqual([
      0x03, 0x00, 0x00, 0x01, 0x23, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0, // DLC 3, id 0x123
      0x81, 0x1a, 0xbc, 0xde, 0x0f, 0x01, 0, 0, 0, 0, 0, 0, 0, // EXT | DLC 1, id without EFF bit
      0x48, 0x00, 0x00, 0x07, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, // RTR | DLC 8, no data
    ]);
  });

  test("FD and error frames are skipped", () => {
    const err: CanFrame = { canId: (CAN_ERR_FLAG | 4) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    const wire = encodeWaveshare([fdFrame(0x1, [1]), err, dataFrame(0x2, [])], 3);
    expect(Array.from(wire)).toEqual([0x00, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});

function recorder() {
  const rec = { frames: [] as CanFrame[], replies: 0, ready: 0, rejected: [] as string[], fails: [] as [string, string][] };
  const events: WireSessionEvents = {
    frame: (f) => rec.frames.push(f),
    reply: () => rec.replies++,
    ready: () => rec.ready++,
    rejected: (reason) => rec.rejected.push(reason),
    fail: (kind, reason) => rec.fails.push([kind, reason]),
  };
  return { events, rec };
}

describe("waveshare session", () => {
  const opts = { fd: true, busName: "can0" };

  test("protocol identity", () => {
    expect(waveshare.name).toBe("waveshare");
    expect(waveshare.defaultPort).toBe(20001);
  });

  test("no handshake: ready on start, nothing sent", () => {
    const { events, rec } = recorder();
    waveshare.open(events, opts).start();
    expect(rec).toEqual({ frames: [], replies: 0, ready: 1, rejected: [], fails: [] });
  });

  test("a bad frame is reported as rejected, never as a failure; the session keeps decoding", () => {
    const { events, rec } = recorder();
    const s = waveshare.open(events, opts);
    s.start();
    s.receive(encodeWaveshare([dataFrame(0x1, [1])], 1));
    // info 0x30: reserved bits
    s.receive(bytes(0x30, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    // DLC 9, split over two receives, then a good frame in the same chunk as its tail
    s.receive(bytes(0x09, 0, 0));
    s.receive(new Uint8Array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, ...encodeWaveshare([dataFrame(0x2, [2])], 1)]));
    expect(rec.frames).toEqual([dataFrame(0x1, [1]), dataFrame(0x2, [2])]);
    expect(rec.rejected).toEqual(["reserved info bits set (0x30)", "DLC 9 above 8"]);
    expect(rec.fails).toEqual([]);
    expect(rec.replies).toBe(0);
  });

  test("accepts neither FD nor error frames, even with FD enabled", () => {
    const s = waveshare.open(recorder().events, opts);
    expect(s.accepts(fdFrame(0x1, [1]))).toBe(false);
    expect(s.accepts({ canId: CAN_ERR_FLAG, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toBe(false);
    expect(s.accepts(dataFrame(0x1, [1]))).toBe(true);
    expect(s.accepts(remoteFrame(0x1, 2))).toBe(true);
  });
});

describe("waveshare bad frames over real TCP", () => {
  let gw: TestGateway | null = null;
  let client: WaveshareTestClient | null = null;
  afterEach(async () => {
    if (client && !client.closed) client.close();
    client = null;
    await gw?.stop();
    gw = null;
  });

  async function until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 3000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(5);
    }
  }

  test("each bad frame is counted as malformed (per protocol) and skipped; the client stays connected both ways", async () => {
    gw = await startTestGateway({ waveshareListen: "127.0.0.1:0" });
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    client = await WaveshareTestClient.connect(gw.gateway.port("waveshare")!);
    // good | DLC 9 | reserved bit | standard id 0x800 | good, in one write
    const wire = new Uint8Array(5 * WAVESHARE_FRAME_BYTES);
    wire.set(wsBytes(0x01, 0x010, [0x77]), 0);
    wire.set(wsBytes(0x09, 0x123, [1, 2, 3, 4, 5, 6, 7, 8]), 13);
    wire.set(wsBytes(0x11, 0x123, [1]), 26);
    wire.set(wsBytes(0x01, 0x800, [1]), 39);
    wire.set(wsBytes(0x02, 0x011, [0x88, 0x99]), 52);
    client.write(wire);
    await until(() => onBus.length === 2 && gw!.stats.protocol("waveshare").malformed === 3, "two frames on the bus, three malformed");
    expect(onBus).toEqual([dataFrame(0x010, [0x77]), dataFrame(0x011, [0x88, 0x99])]);
    expect(gw.stats.malformedFrames).toBe(3);
    expect(gw.stats.protocol("cannelloni").malformed).toBe(0);
    expect(gw.events().filter((e) => e.msg === "protocol_violation")).toEqual([]);
    // Still open in both directions: a bus frame arrives, and the next frame it sends gets through.
    gw.backend.inject(dataFrame(0x20, [0x20]));
    expect((await client.waitFrames(1)).map((f) => f.canId)).toEqual([0x20]);
    client.send(dataFrame(0x012, [1]));
    await until(() => onBus.length === 3, "the frame after the bad ones");
    expect(client.closed).toBe(false);
    expect(client.problems).toEqual([]);
  });
});
