/**
 * cannelloni UDP peers (-cannelloni-udp-listen, -cannelloni-udp-peer) over real UDP on 127.0.0.1
 * with the virtual bus, against an independent peer (test/helpers/cannelloni-udp-peer.ts): frames
 * both ways (and on to a cannelloni TCP client), RTR keeping its DLC, batching up to the MTU at
 * the end of the event-loop turn with consecutive sequence numbers, a skipped sequence number
 * counted as a lost datagram, datagrams from an unknown address refused and counted (accepted
 * with -cannelloni-udp-accept-any), malformed datagrams counted and skipped without harm, -allow,
 * -tx-allow and FD only with -fd.
 */
import { describe, expect, test } from "bun:test";
import { CAN_ERR_FLAG, dataFrame, fdFrame, formatFrame, remoteFrame, type CanFrame } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { ConfigError, parseConfig } from "../../src/cli/parse.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { CannelloniUdpPeer, udpDatagram } from "../helpers/cannelloni-udp-peer.ts";
import { frameText, GatewayPerTest, startTestGateway, type TestGateway, waitFor as waitUntil } from "../helpers/gateway.ts";

const fx = new GatewayPerTest({ cannelloniUdpListen: "127.0.0.1:0" });

async function peer(): Promise<CannelloniUdpPeer> {
  const p = await CannelloniUdpPeer.bind();
  fx.defer(() => p.close());
  return p;
}

async function gateway(peers: CannelloniUdpPeer[], overrides: Partial<Config> = {}): Promise<TestGateway> {
  return fx.start({ cannelloniUdpPeer: peers.map((p) => `127.0.0.1:${p.port}`), ...overrides });
}

const udpPort = (): number => fx.gw.gateway.port("cannelloni-udp")!;

/** Polls every 2 ms (datagrams arrive in one event-loop turn). */
const waitFor = (cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> => waitUntil(cond, what, timeoutMs, 2);

describe("cannelloni UDP peers", () => {
  test("bus → every configured peer and peer → bus and a cannelloni TCP client; RTR keeps its DLC over UDP", async () => {
    const a = await peer();
    const b = await peer();
    await gateway([a, b]);
    const onBus = fx.busRecorder();
    const cnl = await CannelloniTestClient.connect(fx.gw.port, { helloFirst: true });
    fx.defer(() => cnl.close());
    await cnl.handshake({ helloFirst: true });
    await waitFor(() => fx.gw.gateway.hub.size === 3, "two peers and the TCP client attached");
    const err: CanFrame = { canId: (CAN_ERR_FLAG | 0x04) >>> 0, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    const fromBus = [dataFrame(0x123, [0xde, 0xad]), dataFrame(0x1abcdef0, [1, 2, 3, 4, 5, 6, 7, 8], true), remoteFrame(0x7ff, 5), dataFrame(0x0, []), err];
    for (const f of fromBus) fx.gw.backend.inject(f);
    expect(frameText(await a.waitFrames(5))).toEqual(frameText(fromBus));
    expect(frameText(await b.waitFrames(5))).toEqual(frameText(fromBus));
    expect(a.problems).toEqual([]);

    a.send(udpPort(), dataFrame(0x321, [0x11]), remoteFrame(0x456, 3));
    await waitFor(() => onBus.length === 2, "the peer's frames on the bus");
    expect(frameText(onBus)).toEqual(["321#11", "456#R3"]);
    // The other peer and the TCP client see them (truthful echo); the sender does not.
    expect(frameText(await b.waitFrames(7)).slice(5)).toEqual(["321#11", "456#R3"]);
    expect(frameText(await cnl.waitFrames(7)).slice(5)).toEqual(["321#11", "456#R"]);
    cnl.send(dataFrame(0x55, [0x55]));
    expect(frameText(await a.waitFrames(6))[5]).toBe("055#55");
    expect(a.frames).toHaveLength(6);
    const s = fx.gw.stats.protocol("cannelloni-udp");
    expect(s.clients).toBe(2);
    expect(s.rxFrames).toBe(2);
    expect(fx.gw.stats.udpRxDatagrams).toBe(1);
    // Every datagram comes from the gateway's UDP port.
    expect(new Set(a.senders)).toEqual(new Set([`127.0.0.1:${udpPort()}`]));
  });

  test("frames of one event-loop turn go out batched up to the MTU, with consecutive sequence numbers", async () => {
    const a = await peer();
    await gateway([a], { hubBuffer: 4096, cannelloniUdpMtu: 1500 });
    await waitFor(() => fx.gw.gateway.hub.size === 1, "attached");
    const frames = Array.from({ length: 500 }, (_, i) => dataFrame(0x100 + (i % 0x600), [i & 0xff, 1, 2, 3, 4, 5, 6, 7]));
    for (const f of frames) fx.gw.backend.inject(f); // one turn
    await a.waitFrames(500);
    expect(frameText(a.frames)).toEqual(frameText(frames));
    // 1472 payload bytes = 5-byte header + 112 frames of 13 bytes → 5 datagrams.
    expect(a.datagrams.map((d) => d.frames.length)).toEqual([112, 112, 112, 112, 52]);
    expect(a.datagrams.every((d) => d.bytes <= 1472)).toBe(true);
    expect(a.datagrams.map((d) => d.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(fx.gw.stats.udpTxDatagrams).toBe(5);

    fx.gw.backend.inject(dataFrame(0x7, [7]));
    await a.waitFrames(501);
    expect(a.datagrams.at(-1)!.seq).toBe(5);
    expect(a.datagrams.at(-1)!.frames).toHaveLength(1);
  });

  test("a skipped sequence number counts as a lost datagram; duplicated and replayed datagrams are dropped and counted", async () => {
    const a = await peer();
    await gateway([a]);
    const onBus = fx.busRecorder();
    const port = udpPort();
    a.sendRaw(port, udpDatagram(10, [dataFrame(0x1, [1])]));
    a.sendRaw(port, udpDatagram(11, [dataFrame(0x2, [2])]));
    a.sendRaw(port, udpDatagram(13, [dataFrame(0x3, [3])])); // 12 lost
    a.sendRaw(port, udpDatagram(13, [dataFrame(0x3, [3])])); // the network duplicated it
    a.sendRaw(port, udpDatagram(17, [dataFrame(0x5, [5])])); // 14, 15, 16 lost
    a.sendRaw(port, udpDatagram(11, [dataFrame(0x2, [2])])); // replayed
    a.sendRaw(port, udpDatagram(18, [dataFrame(0x6, [6])]));
    await waitFor(() => onBus.length === 5, "five frames");
    await Bun.sleep(20);
    expect(frameText(onBus)).toEqual(["001#01", "002#02", "003#03", "005#05", "006#06"]);
    expect(fx.gw.stats.udpLostDatagrams).toBe(4);
    expect(fx.gw.stats.udpRefused.get("duplicate")).toBe(1);
    expect(fx.gw.stats.udpRefused.get("out_of_order")).toBe(1);
    await fx.gw.stop();
    const removed = fx.gw.events().find((e) => e.msg === "udp_peer_removed");
    expect(removed?.lost_datagrams).toBe(4);
    expect(removed?.rx_datagrams).toBe(5);
  });

  test("a peer that restarts (its sequence starts again) is followed after a few refused datagrams", async () => {
    const a = await peer();
    await gateway([a]);
    const onBus = fx.busRecorder();
    const port = udpPort();
    for (let seq = 0; seq < 100; seq++) a.sendRaw(port, udpDatagram(seq, []));
    await Bun.sleep(20);
    // Restarted: 0, 1, 2 … are "behind" 99; after 8 refusals the gateway resynchronises.
    for (let seq = 0; seq < 20; seq++) a.sendRaw(port, udpDatagram(seq, [dataFrame(0x100 + seq, [seq])]));
    await waitFor(() => onBus.length === 12, "the frames after the resync");
    expect(frameText(onBus)[0]).toBe("108#08");
    expect(fx.gw.events().some((e) => e.msg === "udp_peer_resync")).toBe(true);
  });

  test("a datagram from an unconfigured address is refused and counted; with accept-any the sender becomes a peer", async () => {
    const a = await peer();
    const stranger = await peer();
    await gateway([a]);
    const onBus = fx.busRecorder();
    stranger.send(udpPort(), dataFrame(0x66, [0x66]));
    a.send(udpPort(), dataFrame(0x67, [0x67]));
    await waitFor(() => onBus.length === 1, "the configured peer's frame");
    await waitFor(() => fx.gw.stats.udpRefused.get("unknown_peer") === 1, "the refusal counted");
    expect(frameText(onBus)).toEqual(["067#67"]);
    const refused = fx.gw.events().find((e) => e.msg === "udp_datagram_refused");
    expect(refused?.reason).toBe("unknown_peer");
    expect(refused?.remote).toBe(`127.0.0.1:${stranger.port}`);
    fx.gw.backend.inject(dataFrame(0x68, [0x68]));
    await a.waitFrames(1);
    await Bun.sleep(30);
    expect(stranger.frames).toHaveLength(0);
    await fx.gw.stop();

    const b = await peer();
    await gateway([], { cannelloniUdpAcceptAny: true });
    const onBus2 = fx.busRecorder();
    b.send(udpPort(), dataFrame(0x69, [0x69]));
    await waitFor(() => onBus2.length === 1, "the learned peer's frame");
    // Not attached until it proved itself with 4 datagrams in sequence.
    fx.gw.backend.inject(dataFrame(0x6b, [0x6b]));
    await Bun.sleep(30);
    expect(b.frames).toHaveLength(0);
    for (let i = 0; i < 3; i++) b.send(udpPort());
    await waitFor(() => fx.gw.gateway.hub.size === 1, "the learned peer attached");
    fx.gw.backend.inject(dataFrame(0x6a, [0x6a]));
    expect(frameText(await b.waitFrames(1))).toEqual(["06A#6A"]);
    expect(fx.gw.events().find((e) => e.msg === "udp_peer_added")?.learned).toBe(true);
    expect(fx.gw.events().some((e) => e.msg === "udp_peer_proven")).toBe(true);
  });

  test("accept-any does not amplify: 70 senders of one datagram each (as spoofed sources) are sent nothing on a busy bus", async () => {
    await gateway([], { cannelloniUdpAcceptAny: true });
    const senders: CannelloniUdpPeer[] = [];
    for (let i = 0; i < 70; i++) senders.push(await peer());
    let inBytes = 0;
    for (const p of senders) {
      const d = udpDatagram(0, [dataFrame(0x7, [1, 2, 3, 4, 5])]);
      inBytes += d.length;
      p.sendRaw(udpPort(), d);
    }
    await waitFor(() => fx.gw.stats.udpRxDatagrams >= 64, "the datagrams received");
    for (let k = 0; k < 20; k++) {
      for (let i = 0; i < 100; i++) fx.gw.backend.inject(dataFrame(0x100 + i, [1, 2, 3, 4, 5, 6, 7, 8]));
      await Bun.sleep(5);
    }
    await Bun.sleep(50);
    const outBytes = senders.reduce((n, p) => n + p.datagrams.reduce((m, d) => m + d.bytes, 0), 0);
    expect(inBytes).toBeGreaterThan(0);
    expect(outBytes).toBeLessThanOrEqual(inBytes); // not one datagram, in fact
    expect(outBytes).toBe(0);
    expect(fx.gw.stats.udpTxDatagrams).toBe(0);
    // A real peer still gets in (unproven senders make room) and, once proven, gets the bus.
    const real = await peer();
    for (let i = 0; i < 4; i++) real.send(udpPort());
    await waitFor(() => fx.gw.gateway.hub.size === 1, "the real peer attached");
    fx.gw.backend.inject(dataFrame(0x55, [0x55]));
    expect(frameText(await real.waitFrames(1))).toEqual(["055#55"]);
  });

  test("malformed datagrams: a frame length above 64 and a count overrunning the datagram are counted and skipped", async () => {
    const a = await peer();
    await gateway([a]);
    const onBus = fx.busRecorder();
    const port = udpPort();
    // A good frame, then one with len byte 0x41 (65): the rest of the datagram is skipped.
    const good = udpDatagram(0, [dataFrame(0x10, [1])], 2);
    const tooLong = Uint8Array.from([...good, 0, 0, 0, 0x11, 0x41, ...new Array(65).fill(0)]);
    a.sendRaw(port, tooLong);
    // Count 5 but only one frame present.
    a.sendRaw(port, udpDatagram(1, [dataFrame(0x12, [2])], 5));
    // A short header and a wrong version.
    a.sendRaw(port, Uint8Array.of(2, 0, 2));
    a.sendRaw(port, Uint8Array.of(1, 0, 3, 0, 0));
    a.send(port); // seq 0 again from the helper's own counter: harmless
    a.sendRaw(port, udpDatagram(4, [dataFrame(0x13, [3])]));
    await waitFor(() => onBus.length === 3, "the valid frames");
    expect(frameText(onBus)).toEqual(["010#01", "012#02", "013#03"]);
    expect(fx.gw.stats.protocol("cannelloni-udp").malformed).toBe(4);
    expect(fx.gw.stats.malformedFrames).toBe(4);
    fx.gw.backend.inject(dataFrame(0x14, [4]));
    expect(frameText(await a.waitFrames(1))).toEqual(["014#04"]);
  });

  test("-allow applies to peers: a configured one outside it is a start-up error, a sender outside it is refused; -tx-allow makes a peer read-only", async () => {
    const a = await peer();
    await expect(startTestGateway({ cannelloniUdpListen: "127.0.0.1:0", cannelloniUdpPeer: [`127.0.0.1:${a.port}`], allow: ["10.0.0.0/8"] })).rejects.toThrow(/outside -allow/);
    // The same from the command line: a configuration error (exit 2), one line.
    expect(() => parseConfig(["-cannelloni-udp-listen", ":20000", "-cannelloni-udp-peer", "192.168.1.20:20000", "-allow", "10.0.0.0/8"], {})).toThrow(ConfigError);
    expect(() => parseConfig(["-cannelloni-udp-listen", ":20000", "-cannelloni-udp-peer", "10.1.2.3:20000", "-allow", "10.0.0.0/8"], {})).not.toThrow();
    await gateway([], { allow: ["10.0.0.0/8"], cannelloniUdpAcceptAny: true });
    const onBus = fx.busRecorder();
    a.send(udpPort(), dataFrame(0x1, [1]));
    await waitFor(() => fx.gw.stats.udpRefused.get("not_allowed") === 1, "refused");
    expect(onBus).toHaveLength(0);
    await fx.gw.stop();

    const b = await peer();
    await gateway([b], { txAllow: ["10.0.0.0/8"] });
    const onBus2 = fx.busRecorder();
    b.send(udpPort(), dataFrame(0x2, [2]));
    await waitFor(() => fx.gw.stats.txDropped.get("read_only") === 1, "the read-only drop");
    expect(onBus2).toHaveLength(0);
    fx.gw.backend.inject(dataFrame(0x3, [3]));
    expect(frameText(await b.waitFrames(1))).toEqual(["003#03"]);
  });

  test("CAN FD both ways only with -fd", async () => {
    const a = await peer();
    await gateway([a], { fd: true });
    const onBus = fx.busRecorder();
    const big = fdFrame(0x123, new Uint8Array(64).map((_, i) => i), 1);
    fx.gw.backend.inject(big);
    expect(frameText(await a.waitFrames(1))).toEqual([formatFrame(big)]);
    a.send(udpPort(), fdFrame(0x124, new Uint8Array(16).fill(9)));
    await waitFor(() => onBus.length === 1, "the FD frame on the bus");
    expect(onBus[0]!.fd).toBe(true);
    await fx.gw.stop();

    const b = await peer();
    await gateway([b], { fd: false });
    fx.gw.backend.inject(fdFrame(0x123, [1]));
    fx.gw.backend.inject(dataFrame(0x125, [2]));
    expect(frameText(await b.waitFrames(1))).toEqual(["125#02"]);
  });

  test("a peer name that does not resolve is a start-up error naming it", async () => {
    await expect(startTestGateway({ cannelloniUdpListen: "127.0.0.1:0", cannelloniUdpPeer: ["no-such-host.invalid:20000"] })).rejects.toThrow(
      /no-such-host\.invalid:20000/,
    );
  });

  test("frames count as sent to a peer only once their datagram was sent (an IPv6 peer an IPv4 socket cannot reach: failures, not frames)", async () => {
    const a = await peer();
    await fx.start({ cannelloniUdpPeer: [`127.0.0.1:${a.port}`, "[::1]:9"] });
    for (let i = 0; i < 3; i++) fx.gw.backend.inject(dataFrame(0x100 + i, [i]));
    await a.waitFrames(3);
    await waitFor(() => fx.gw.stats.udpSendFailures > 0, "the unreachable peer's send failure");
    // The reachable peer's 3 frames, not the unreachable one's.
    expect(fx.gw.stats.protocol("cannelloni-udp").txFrames).toBe(3);
  });

  test("a UDP peer (no flow control) over its rate is still policed: the excess is dropped and counted, not queued", async () => {
    const a = await peer();
    await gateway([a], { bitrate: 50_000 }); // 190 frames/s, burst 47
    const onBus = fx.busRecorder();
    for (let d = 0; d < 10; d++) a.send(udpPort(), ...Array.from({ length: 20 }, (_, i) => dataFrame(0x200, [d, i])));
    await waitFor(() => (fx.gw.stats.txDropped.get("rate_limited") ?? 0) + onBus.length >= 200, "all 200 frames accounted for");
    await Bun.sleep(300);
    expect(onBus.length).toBeGreaterThanOrEqual(47);
    expect(onBus.length).toBeLessThan(120);
    expect(onBus.length + (fx.gw.stats.txDropped.get("rate_limited") ?? 0)).toBe(200);
  });
});

