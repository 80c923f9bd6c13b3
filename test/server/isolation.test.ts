/**
 * Client isolation over real TCP (issue 9): a hostile or broken client must not hurt the process,
 * the other clients or the bus. The memory and fd scenarios run the gateway as its own process so
 * its RssAnon (private memory; RSS would count the mapped binary) and CPU are its own.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, formatFrame, type CanFrame } from "../../src/can/frame.ts";
import { startOpsHttp } from "../../src/ops/http.ts";
import { silentLogger } from "../../src/ops/log.ts";
import { CidrList } from "../../src/net/cidr.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { RawSocketcandClient, startSlowSocketcandClient } from "../helpers/socketcand-clients.ts";
import { WaveshareTestClient, wsBytes } from "../helpers/waveshare-client.ts";

const procs: GatewayProcess[] = [];
const gws: TestGateway[] = [];
afterEach(async () => {
  for (const p of procs.splice(0)) await p.stop();
  for (const g of gws.splice(0)) await g.stop();
});

async function gateway(overrides: Parameters<typeof startTestGateway>[0] = {}): Promise<TestGateway> {
  const g = await startTestGateway(overrides);
  gws.push(g);
  return g;
}

/** RssAnon the flooding tests allow the gateway process (it idles at ~10 MiB). */
const RSS_ANON_BOUND_KIB = 150 * 1024;

describe("isolation over real TCP", () => {
  test("a never-reading < echo > flooder: memory stays bounded, others keep getting the bus, it is disconnected and counted", async () => {
    const gw = await startGatewayProcess(["-socketcand-listen", "127.0.0.1:0", "-virtual-demo", "true", "-client-read-timeout", "3s"]);
    procs.push(gw);
    const observer = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await observer.handshake();
    const flooder = await RawSocketcandClient.connect(gw.ports.socketcand!);
    await flooder.handshake();
    flooder.pause(); // never reads again
    const chunk = new TextEncoder().encode("< echo >".repeat(8192));
    const base = gw.memory().rssAnonKiB;
    let peak = base;
    let written = 0;
    const t0 = Date.now();
    while (Date.now() - t0 < 2500 && !flooder.closed) {
      const n = flooder.tryWrite(chunk);
      if (n < 0) break;
      written += n;
      peak = Math.max(peak, gw.memory().rssAnonKiB);
      await Bun.sleep(n === 0 ? 20 : 1);
    }
    // The gateway stopped reading: far less than the flood could have sent in 2.5 s got in.
    expect(written).toBeLessThan(64 * 1024 * 1024);
    expect(peak).toBeLessThan(RSS_ANON_BOUND_KIB);
    const h = await gw.http("/healthz");
    expect(h.status).toBe(200);
    expect(h.ms).toBeLessThan(1000);
    // It owes what it never takes: disconnected — over the reply cap (data already in flight
    // when reading paused) or by the 3 s stall timer — and counted either way.
    const gone = await gw.waitFor("client_disconnected", 8000, (l) => l.protocol === "socketcand");
    expect(["over_limit", "stalled"]).toContain(String(gone.reason));
    const counted = (await gw.metric("clients_over_limit_total")) + (await gw.metric("errors_total", { where: "tcp_write" }));
    expect(counted).toBeGreaterThanOrEqual(1);
    await observer.waitFrames(4, 5000); // the demo's ~2 frames/s kept flowing throughout
    expect(gw.memory().rssAnonKiB).toBeLessThan(RSS_ANON_BOUND_KIB);
    observer.close();
  }, 30_000);

  test("a flooder that starts reading its backlog does not stall the gateway or other clients", async () => {
    const gw = await startGatewayProcess(["-socketcand-listen", "127.0.0.1:0", "-virtual-demo", "true"]);
    procs.push(gw);
    const observer = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await observer.handshake();
    const flooder = await RawSocketcandClient.connect(gw.ports.socketcand!);
    await flooder.handshake();
    flooder.pause();
    const chunk = new TextEncoder().encode("< echo >".repeat(8192));
    const t0 = Date.now();
    while (Date.now() - t0 < 1500) {
      if (flooder.tryWrite(chunk) < 0) break;
      await Bun.sleep(2);
    }
    flooder.resume(); // now it reads everything it was owed
    const before = observer.frames.length;
    let worst = 0;
    for (let i = 0; i < 10; i++) {
      const h = await gw.http("/healthz");
      worst = Math.max(worst, h.ms);
      await Bun.sleep(100);
    }
    expect(worst).toBeLessThan(500);
    await observer.waitFrames(before + 1, 3000);
    expect(flooder.elements.filter((e) => e === "echo").length).toBeGreaterThan(0);
  }, 30_000);

  test("a pre-handshake flooder is closed promptly and stops being read", async () => {
    const gw = await gateway({ handshakeTimeoutMs: 10_000 });
    const sock = await Bun.connect({ hostname: "127.0.0.1", port: gw.port, socket: { data() {}, close() {}, error() {} } });
    let closed = false;
    const closedAt = new Promise<number>((resolve) => {
      sock.reload({
        socket: {
          data() {},
          close: () => {
            closed = true;
            resolve(Date.now());
          },
          error() {},
        },
      });
    });
    sock.pause(); // never reads the error either
    const t0 = Date.now();
    const junk = new Uint8Array(65536).fill(0x41);
    let sent = 0;
    while (!closed && Date.now() - t0 < 4000) {
      const n = sock.write(junk);
      if (n < 0) break;
      sent += n;
      await Bun.sleep(5);
    }
    const at = await Promise.race([closedAt, Bun.sleep(5000).then(() => -1)]);
    expect(at).toBeGreaterThan(0);
    expect(at - t0).toBeLessThan(2500); // CLOSE_GRACE_MS, not the 10 s handshake or 60 s stall timer
    expect(gw.stats.handshakeFailures).toBe(1);
    expect(sent).toBeLessThan(64 * 1024 * 1024);
  });

  test("a bad Waveshare frame is counted and skipped; the session stays open", async () => {
    const gw = await gateway({ waveshareListen: "127.0.0.1:0" });
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    const ws = await WaveshareTestClient.connect(gw.gateway.port("waveshare")!);
    await Bun.sleep(50);
    ws.write(wsBytes(0x0f | 0x30, 0x123, [])); // DLC 15: not a frame
    ws.write(wsBytes(0x02, 0x123, [0xaa, 0xbb]));
    const deadline = Date.now() + 3000;
    while (onBus.length < 1 && Date.now() < deadline) await Bun.sleep(10);
    expect(onBus.map(formatFrame)).toEqual(["123#AABB"]);
    expect(ws.closed).toBe(false);
    expect(gw.stats.protocol("waveshare").malformed).toBe(1);
  });

  test("-allow: a peer outside the list is closed at once and counted; the HTTP endpoint answers 403", async () => {
    const gw = await gateway({ allow: ["10.0.0.0/8"] });
    const c = await CannelloniTestClient.connect(gw.port);
    await c.waitClosed(2000);
    expect(gw.stats.rejected.get("not_allowed")).toBe(1);
    expect(gw.events().some((e) => e.msg === "client_rejected" && e.reason === "not_allowed")).toBe(true);
    let rejected = 0;
    const http = startOpsHttp({
      addr: "127.0.0.1:0",
      metrics: { render: async () => "", contentType: "text/plain" },
      readiness: () => ({ ready: true, reason: "" }),
      log: silentLogger,
      allow: CidrList.parse(["10.0.0.0/8"]),
      rejected: () => rejected++,
    });
    const r = await fetch(`http://127.0.0.1:${http.port}/healthz`);
    expect(r.status).toBe(403);
    expect(rejected).toBe(1);
    await http.stop();
    const open = await gateway({ allow: ["127.0.0.0/8", "::1"] });
    const ok = await CannelloniTestClient.connect(open.port);
    await ok.handshake();
    expect(ok.closed).toBe(false);
    ok.close();
  });

  test("-tx-allow: a read-only client receives the bus, its frames are dropped and counted, never sent or echoed", async () => {
    const gw = await gateway({ txAllow: ["192.168.1.10/32"] });
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    const ro = await CannelloniTestClient.connect(gw.port);
    await ro.handshake();
    const other = await CannelloniTestClient.connect(gw.port);
    await other.handshake();
    await Bun.sleep(30);
    ro.send(dataFrame(0x321, [1, 2, 3]));
    gw.backend.inject(dataFrame(0x100, [9]));
    await ro.waitFrames(1);
    await other.waitFrames(1);
    await Bun.sleep(50);
    expect(onBus).toHaveLength(0);
    expect(other.frames.map(formatFrame)).toEqual(["100#09"]);
    expect(gw.stats.txDropped.get("read_only")).toBe(1);
  });

  test("under ulimit -n 256 a connection flood is refused cleanly: /healthz answers, CPU stays idle", async () => {
    // One host, so the per-host count cap is lifted: this is about the descriptor budget.
    const gw = await startGatewayProcess(["-waveshare-listen", "127.0.0.1:0", "-max-host-connections", "0"], { shellPrefix: "ulimit -n 256;" });
    procs.push(gw);
    const conns: WaveshareTestClient[] = [];
    let refusedAtConnect = 0;
    for (let i = 0; i < 300; i++) {
      // A refused connection may be reset before the client sees it open.
      try {
        conns.push(await WaveshareTestClient.connect(gw.ports.waveshare!));
      } catch {
        refusedAtConnect++;
      }
    }
    expect(conns.length + refusedAtConnect).toBe(300);
    await Bun.sleep(300);
    const cpu0 = gw.cpuSeconds();
    await Bun.sleep(1000);
    const cpuShare = gw.cpuSeconds() - cpu0;
    expect(cpuShare).toBeLessThan(0.2); // an accept loop spinning on EMFILE would be ~1.0
    const h = await gw.http("/healthz");
    expect(h.status).toBe(200);
    expect(h.ms).toBeLessThan(1000);
    expect(gw.openFds()).toBeLessThanOrEqual(256);
    // Refused within the descriptor budget: one host may hold at most half of it (host_connections).
    expect((await gw.metric("clients_rejected_total", { reason: "fd_reserve" })) + (await gw.metric("clients_rejected_total", { reason: "host_connections" }))).toBeGreaterThan(0);
    // Logged once per burst, not once per connection.
    expect(gw.lines.filter((l) => l.msg === "client_rejected").length).toBeLessThanOrEqual(2);
    for (const c of conns) c.close();
  }, 30_000);

  test("SIGTERM with a client that never reads its frames: exit within -shutdown-timeout", async () => {
    const gw = await startGatewayProcess(["-socketcand-listen", "127.0.0.1:0", "-shutdown-timeout", "1s", "-client-tx-rate", "0"]);
    procs.push(gw);
    const stuck = await startSlowSocketcandClient(gw.ports.socketcand!, 20);
    const sender = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await sender.handshake();
    // Echoed to the stuck client until the kernel's socket buffers (MBs on loopback) and then its
    // queue are full: bounded to 400k frames / 10 s.
    const batch = Array.from({ length: 500 }, (_, k) => dataFrame(0x100 + k, [1, 2, 3, 4, 5, 6, 7, 8]));
    const t0flood = Date.now();
    for (let i = 0; i < 800 && Date.now() - t0flood < 10_000; i++) {
      sender.send(...batch);
      await Bun.sleep(1);
      if (i % 50 === 49 && (await gw.metric("hub_queue_depth_max")) >= 500) break;
    }
    await Bun.sleep(200);
    expect(await gw.metric("hub_queue_depth_max")).toBeGreaterThanOrEqual(500); // its writes are blocked
    const t0 = performance.now();
    gw.proc.kill("SIGTERM");
    expect(await gw.proc.exited).toBe(0);
    expect(performance.now() - t0).toBeLessThan(1000 + 700);
    const summary = gw.lines.find((l) => l.msg === "shutdown_summary");
    expect(summary?.aborted_at_deadline).toBe(1);
    stuck.kill();
  }, 20_000);
});
