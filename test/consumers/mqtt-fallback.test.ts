/**
 * A broker that speaks only MQTT 3.1.1: the bridge (MQTT 5 by default, for "retain as published")
 * falls back to 3.1.1 and says what that costs. A scripted stand-in broker, because no real broker
 * here can be told to refuse MQTT 5 (Debian's Mosquitto always accepts it): it answers a level-5
 * CONNECT with the 3.1.1 refusal "unacceptable protocol version" (CONNACK 1) and accepts level 4.
 */
import { afterEach, expect, test } from "bun:test";
import { bridgeOf, startConsumerGateway, waitFor } from "./harness.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

test("a broker that refuses MQTT 5: fallback to 3.1.1, logged once with what it costs, connected", async () => {
  const levels: number[] = [];
  const srv = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(s, d) {
        if (d[0] !== 0x10) return; // only CONNECT is answered
        const level = d[8]!; // fixed header (2) + protocol name (6) → protocol level
        levels.push(level);
        if (level === 5) {
          s.write(new Uint8Array([0x20, 0x02, 0x00, 0x01]));
          s.end();
        } else s.write(new Uint8Array([0x20, 0x02, 0x00, 0x00]));
      },
    },
  });
  cleanup.push(() => srv.stop(true));
  const gw = await startConsumerGateway({ mqttUrl: `mqtt://127.0.0.1:${srv.port}`, mqttTx: true });
  cleanup.push(() => gw.stop());
  await waitFor(() => bridgeOf(gw).connected, 5000, "connected with 3.1.1");
  expect(levels.slice(0, 2)).toEqual([5, 4]);
  const fallback = gw.events().filter((e) => e.msg === "mqtt_protocol_fallback");
  expect(fallback.length).toBe(1);
  expect(fallback[0]).toMatchObject({ protocol: "3.1.1" });
  expect(String(fallback[0]!.detail)).toContain("retained commands");
});
