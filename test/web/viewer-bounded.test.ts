/**
 * Dashboard viewers that never read (issue 18: 32 such WebSockets took the process from 15 to
 * about 200 MiB): each viewer's unsent bytes stay bounded (frames dropped and counted, status and
 * table messages skipped and counted) and the viewer stays connected. Real WebSocket upgrades over
 * real TCP sockets that are paused (the kernel's buffers fill, then the gateway's).
 */
import { afterEach, expect, test } from "bun:test";
import type { Socket } from "bun";
import { dataFrame } from "../../src/can/frame.ts";
import { MAX_BUFFERED, type WebBus } from "../../src/web/bus.ts";
import { startViewGateway, type ViewGateway } from "../capture/helpers.ts";

let gw: ViewGateway | null = null;
const socks: Socket<undefined>[] = [];
afterEach(async () => {
  for (const s of socks.splice(0)) s.terminate();
  await gw?.stop();
  gw = null;
});

test("a never-reading WebSocket viewer stays bounded in unsent bytes, its drops are counted, it stays connected", async () => {
  gw = await startViewGateway();
  const port = gw.ops.httpPort!;
  for (let i = 0; i < 4; i++) {
    let upgraded = false;
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(sock, d) {
          if (!upgraded && new TextDecoder().decode(d).startsWith("HTTP/1.1 101")) {
            upgraded = true;
            sock.pause(); // from now on this browser never reads
          }
        },
      },
    });
    s.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nOrigin: http://127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    socks.push(s);
  }
  const web = [...gw.gateway.hub.attached].find((c) => c.protocol === "web") as unknown as WebBus;
  const t0 = performance.now();
  while (web.viewers.size < 4 && performance.now() - t0 < 3000) await Bun.sleep(10);
  expect(web.viewers.size).toBe(4);
  // A busy bus with 4096 ids (the largest per-id table), until every viewer is backed up (<= 40 s).
  let n = 0;
  const backedUp = (): boolean => [...web.viewers].every((v) => v.skipped > 0);
  while (!backedUp() && performance.now() - t0 < 40_000) {
    for (let i = 0; i < 400; i++, n++) gw.backend.inject(dataFrame(n % 4096, [1, 2, 3, 4, 5, 6, 7, 8]));
    await Bun.sleep(5);
  }
  expect(backedUp()).toBe(true);
  // Keep the bus busy a little longer: nothing more may pile up.
  for (let k = 0; k < 200; k++) {
    for (let i = 0; i < 400; i++, n++) gw.backend.inject(dataFrame(n % 4096, [1, 2, 3, 4, 5, 6, 7, 8]));
    await Bun.sleep(5);
  }
  await Bun.sleep(1100); // one more status round
  expect(web.viewers.size).toBe(4);
  for (const v of web.viewers) {
    // At most the limit plus one message (the per-id table of 4096 ids is under 512 KiB).
    expect(v.ws!.getBufferedAmount()).toBeLessThan(MAX_BUFFERED + 512 * 1024);
    expect(v.dropped).toBeGreaterThan(0);
  }
  expect(gw.counters.byKind.web.dropped).toBeGreaterThan(0);
}, 60_000);
