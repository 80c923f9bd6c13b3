/**
 * What the soak does to a running gateway, built from the project's own test clients (one client
 * library per protocol, shared with tests and benchmarks): well-behaved churn, and hostile
 * clients of every kind. Every action is bounded in time and bytes and ends by itself; every
 * socket it opens is closed (or reset) before it returns. Counts of what was sent go to `tally`.
 */
import { dataFrame } from "../../src/can/frame.ts";
import { CanlogserverTestClient } from "../../test/helpers/canlogserver-client.ts";
import { CannelloniTestClient } from "../../test/helpers/cannelloni-client.ts";
import { CannelloniUdpPeer } from "../../test/helpers/cannelloni-udp-peer.ts";
import { GvretTestClient } from "../../test/helpers/gvret-client.ts";
import { SlcanTestClient } from "../../test/helpers/slcan-client.ts";
import { RawSocketcandClient, startSlowSocketcandClient } from "../../test/helpers/socketcand-clients.ts";
import { WaveshareTestClient, wsBytes } from "../../test/helpers/waveshare-client.ts";
import { openIdleSockets } from "../../test/helpers/idle-sockets.ts";

export type Tally = Map<string, number>;

export function count(tally: Tally, kind: string, n = 1): void {
  tally.set(kind, (tally.get(kind) ?? 0) + n);
}

export interface Ports {
  readonly cannelloni: number;
  readonly waveshare: number;
  readonly socketcand: number;
  readonly slcan: number;
  readonly gvret: number;
  readonly canlogserver: number;
  /** The gateway's cannelloni UDP port; peers must bind one of `udpPeerPorts`. */
  readonly cannelloniUdp: number;
  readonly udpPeerPorts: readonly number[];
  readonly http: number;
}

/** Peer ports the soak configures with -cannelloni-udp-peer; a churned peer borrows a free one. */
const freeUdpPorts: number[] = [];
export function offerUdpPeerPorts(ports: readonly number[]): void {
  freeUdpPorts.push(...ports);
}

const HOST = "127.0.0.1";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(0x50a4);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
function garbage(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}

/** Raw TCP: connect, run `fn` with a writer, then close (or reset). Never throws. */
async function rawTcp(port: number, fn: (write: (b: Uint8Array) => number) => Promise<void>, reset = false): Promise<boolean> {
  try {
    const sock = await Bun.connect({ hostname: HOST, port, socket: { data() {}, close() {}, error() {} } });
    try {
      await fn((b) => sock.write(b));
    } finally {
      if (reset) sock.terminate();
      else sock.end();
    }
    return true;
  } catch {
    return false;
  }
}

/** One well-behaved client life: connect, handshake, exchange a few frames, leave (some without FIN). */
export async function churnOnce(ports: Ports, tally: Tally): Promise<void> {
  const vanish = rand() < 0.3;
  const kind = pick(["cannelloni", "waveshare", "socketcand", "slcan", "gvret", "canlogserver", "cannelloni_udp"] as const);
  const frame = dataFrame(0x700 + Math.floor(rand() * 0xff), [1, 2, 3]);
  try {
    if (kind === "cannelloni") {
      const c = await CannelloniTestClient.connect(ports.cannelloni);
      await c.handshake();
      c.send(frame);
      await Bun.sleep(20 + rand() * 200);
      vanish ? c.reset() : c.close();
    } else if (kind === "waveshare") {
      const c = await WaveshareTestClient.connect(ports.waveshare);
      c.send(frame);
      await Bun.sleep(20 + rand() * 200);
      vanish ? c.reset() : c.close();
    } else if (kind === "socketcand") {
      const c = await RawSocketcandClient.connect(ports.socketcand);
      await c.handshake();
      c.write("< send 701 1 01 >");
      await Bun.sleep(20 + rand() * 200);
      vanish ? c.reset() : c.close();
    } else if (kind === "slcan") {
      const c = await SlcanTestClient.connect(ports.slcan);
      await c.open();
      c.send(frame);
      await Bun.sleep(20 + rand() * 200);
      vanish ? c.reset() : c.close();
    } else if (kind === "gvret") {
      const c = await GvretTestClient.connect(ports.gvret);
      await c.openLikeSavvyCan();
      c.send(frame);
      await Bun.sleep(20 + rand() * 200);
      vanish ? c.reset() : c.close();
    } else if (kind === "canlogserver") {
      const c = await CanlogserverTestClient.connect(ports.canlogserver);
      await Bun.sleep(20 + rand() * 200);
      vanish ? c.reset() : c.close();
    } else {
      // UDP has no connection: a peer borrows one of the configured ports, sends, listens, leaves.
      const port = freeUdpPorts.shift();
      if (port === undefined) {
        count(tally, "churn_cannelloni_udp_busy");
        return;
      }
      try {
        const peer = await CannelloniUdpPeer.bind(port);
        peer.send(ports.cannelloniUdp, frame);
        await Bun.sleep(20 + rand() * 200);
        peer.close();
      } finally {
        freeUdpPorts.push(port);
      }
    }
    count(tally, `churn_${kind}${vanish ? "_vanished" : ""}`);
  } catch {
    count(tally, `churn_${kind}_failed`);
  }
}

/** The hostile repertoire; each entry is one bounded attack. */
export const HOSTILE: Readonly<Record<string, (ports: Ports, tally: Tally) => Promise<void>>> = {
  async garbage_bytes(ports, tally) {
    const port = pick([ports.cannelloni, ports.waveshare, ports.socketcand]);
    if (await rawTcp(port, async (w) => void w(garbage(64 + Math.floor(rand() * 4096))), rand() < 0.5)) count(tally, "garbage_bytes");
  },
  async invalid_cannelloni_frame(ports, tally) {
    // After the handshake, a frame header with length 0x7f: the strict codec closes the client.
    const ok = await rawTcp(ports.cannelloni, async (w) => {
      w(new TextEncoder().encode("CANNELLONIv1"));
      await Bun.sleep(5);
      w(Uint8Array.from([0, 0, 1, 0x23, 0x7f, 1, 2, 3]));
      await Bun.sleep(20);
    });
    if (ok) count(tally, "invalid_cannelloni_frame");
  },
  async invalid_waveshare_frames(ports, tally) {
    const ok = await rawTcp(ports.waveshare, async (w) => {
      for (const info of [0x0f, 0x30, 0x09]) w(wsBytes(info, 0x123, []));
      w(wsBytes(0x02, 0x7ff + 1, [1, 2]));
      await Bun.sleep(20);
    });
    if (ok) count(tally, "invalid_waveshare_frames", 4);
  },
  async waveshare_stray_bytes(ports, tally) {
    // 1..12 stray bytes, then Ampio-style commands in one write: the decoder re-aligns (issue 18).
    const ok = await rawTcp(ports.waveshare, async (w) => {
      w(garbage(1 + Math.floor(rand() * 12)));
      const commands = new Uint8Array(10 * 13);
      for (let i = 0; i < 10; i++) commands.set(wsBytes(0x88, 0x0f001d4c, [0x10, i, 0, 0, 1, 0, 0, 0]), i * 13);
      w(commands);
      await Bun.sleep(20);
    });
    if (ok) count(tally, "waveshare_stray_bytes");
  },
  async socketcand_invalid_ids_and_bytes(ports, tally) {
    // Refused as socketcand reads them: 0x800 as a 3-digit (standard) id, a byte above FF; `-1` is FF.
    try {
      const c = await RawSocketcandClient.connect(ports.socketcand);
      await c.handshake();
      c.write("< send 800 0 >< send FFF 1 1 >< send 123 1 100 >< send 7FE 1 -1 >");
      await Bun.sleep(30);
      c.close();
      count(tally, "socketcand_invalid_ids_and_bytes", 3);
    } catch {
      count(tally, "socketcand_invalid_ids_and_bytes_failed");
    }
  },
  async invalid_socketcand_commands(ports, tally) {
    try {
      const c = await RawSocketcandClient.connect(ports.socketcand);
      await c.handshake();
      c.write("< send 1 9 00 >< send zz 1 00 >< bittiming 1 >< " + "x".repeat(600) + " >junk outside<");
      await Bun.sleep(30);
      c.close();
      count(tally, "invalid_socketcand_commands", 4);
    } catch {
      count(tally, "invalid_socketcand_commands_failed");
    }
  },
  async echo_flood_never_reads(ports, tally) {
    try {
      const c = await RawSocketcandClient.connect(ports.socketcand);
      await c.handshake();
      c.pause();
      const chunk = new TextEncoder().encode("< echo >".repeat(4096));
      const t0 = Date.now();
      let bytes = 0;
      while (Date.now() - t0 < 1500 && !c.closed) {
        const n = c.tryWrite(chunk);
        if (n < 0) break;
        bytes += n;
        await Bun.sleep(n === 0 ? 20 : 1);
      }
      c.reset();
      count(tally, "echo_flood_never_reads");
      count(tally, "echo_flood_bytes", bytes);
    } catch {
      count(tally, "echo_flood_failed");
    }
  },
  async half_open_handshake(ports, tally) {
    // Part of the hello, then silence: closed by -handshake-timeout.
    const ok = await rawTcp(ports.cannelloni, async (w) => {
      w(new TextEncoder().encode("CANNEL"));
      await Bun.sleep(200 + rand() * 800);
    }, true);
    if (ok) count(tally, "half_open_handshake");
  },
  async slow_reader(ports, tally) {
    // A python client with a 2 KiB receive buffer that reads 1 byte per second, or never: held
    // for a few seconds while the bus runs at full rate.
    const perSecond = rand() < 0.5 ? 1 : 0;
    try {
      const s = await startSlowSocketcandClient(ports.socketcand, 4, perSecond);
      await s.proc.exited;
      count(tally, perSecond ? "reader_1_byte_per_second" : "reader_never_reads");
    } catch {
      count(tally, "slow_reader_failed");
    }
  },
  async connection_flood(ports, tally) {
    // Up to 600 connections at once from another host (127.0.0.2; the soak runs the gateway
    // under ulimit -n 512), held 1 s: the admission layer refuses them by host and descriptor
    // budget while the churn from 127.0.0.1 goes on.
    const idle = await openIdleSockets(ports.waveshare, 600, "127.0.0.2");
    await Bun.sleep(1000);
    idle.close();
    count(tally, "connection_flood");
    count(tally, "connection_flood_sockets", idle.opened);
  },
  async idle_http_connections(ports, tally) {
    // 300 HTTP connections that never send a request, held 2 s: admitted up to the HTTP share of
    // the budget, the rest closed at accept; /healthz and the churn stay served.
    const idle = await openIdleSockets(ports.http, 300, "127.0.0.2");
    await Bun.sleep(2000);
    idle.close();
    count(tally, "idle_http_connections");
  },
  async handshake_hogs(ports, tally) {
    // 64 sockets each to slcan (60 s to open a channel) and cannelloni that never finish their
    // handshake, from one host; a cannelloni client from another host must still get its hello.
    const hogs = [await openIdleSockets(ports.slcan, 64, "127.0.0.2"), await openIdleSockets(ports.cannelloni, 64, "127.0.0.2")];
    try {
      const c = await CannelloniTestClient.connect(ports.cannelloni);
      await c.handshake({}, 2000);
      c.close();
      count(tally, "handshake_hogs");
    } catch {
      count(tally, "handshake_hogs_locked_out");
    } finally {
      for (const h of hogs) h.close();
    }
  },
  async oversized_http_request(ports, tally) {
    const big = "GET /metrics?" + "a".repeat(1024 * 1024) + " HTTP/1.1\r\nHost: x\r\nX-Pad: " + "b".repeat(64 * 1024) + "\r\n\r\n";
    if (await rawTcp(ports.http, async (w) => {
      const bytes = new TextEncoder().encode(big);
      let off = 0;
      const t0 = Date.now();
      while (off < bytes.length && Date.now() - t0 < 2000) {
        const n = w(bytes.subarray(off));
        if (n < 0) break;
        off += n;
        await Bun.sleep(1);
      }
    })) count(tally, "oversized_http_request");
  },
  async slow_http_headers(ports, tally) {
    // Slowloris: a header byte every 100 ms for ~3 s.
    if (await rawTcp(ports.http, async (w) => {
      const head = new TextEncoder().encode("GET /healthz HTTP/1.1\r\nHost: soak\r\nX-Slow: " + "z".repeat(30));
      for (let i = 0; i < head.length; i++) {
        if (w(head.subarray(i, i + 1)) < 0) break;
        await Bun.sleep(100);
      }
    }, true)) count(tally, "slow_http_headers");
  },
};
