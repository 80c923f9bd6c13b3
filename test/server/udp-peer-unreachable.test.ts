/**
 * A configured cannelloni UDP peer that is not listening: the kernel answers the gateway's
 * datagrams with ICMP "port unreachable", which Bun reports as an ECONNREFUSED socket error.
 * Found by the soak: that error used to crash the process (the error handler read a field of the
 * wrong argument). Now it is counted (errors_total{where="udp_send"}), logged once per burst, and
 * the gateway goes on serving everyone else.
 */
import { afterEach, expect, test } from "bun:test";
import { dataFrame, formatFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";

let gw: TestGateway | null = null;
afterEach(async () => {
  await gw?.stop();
  gw = null;
});

/** A UDP port on 127.0.0.1 that nothing listens on (bound and released). */
async function deadPort(): Promise<number> {
  const s = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const port = s.port;
  s.close();
  return port;
}

test("a peer that is not listening: ICMP unreachable is counted and logged once, never fatal", async () => {
  gw = await startTestGateway({ cannelloniUdpListen: "127.0.0.1:0", cannelloniUdpPeer: [`127.0.0.1:${await deadPort()}`] });
  const tcp = await CannelloniTestClient.connect(gw.port);
  await tcp.handshake();
  await Bun.sleep(20);
  for (let i = 0; i < 20; i++) {
    gw.backend.inject(dataFrame(0x100 + i, [i]));
    await Bun.sleep(5);
  }
  await tcp.waitFrames(20);
  expect(tcp.frames.map(formatFrame).at(-1)).toBe("113#13");
  expect(gw.stats.errors.get("udp_send")).toBeGreaterThan(0);
  expect(gw.stats.errors.get("internal")).toBe(0);
  expect(gw.events().filter((e) => e.msg === "udp_peer_unreachable")).toHaveLength(1);
  tcp.close();
});
