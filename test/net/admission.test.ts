/**
 * The admission layer (src/net/admission.ts): cheap unit tests of its rules, and the real thing —
 * a gateway process with every TCP listener, hostile idle connections from 127.0.0.2 on each of
 * them, and ordinary clients from 127.0.0.1 that must still get in.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { Admission, hostKey, Ticket, type AdmissionLimits } from "../../src/net/admission.ts";
import { CidrList } from "../../src/net/cidr.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { PROTOCOLS } from "../../src/protocols/registry.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { openIdleSockets, type IdleSockets } from "../helpers/idle-sockets.ts";
import { SlcanTestClient } from "../helpers/slcan-client.ts";
import { RawSocketcandClient } from "../helpers/socketcand-clients.ts";
import { WaveshareTestClient } from "../helpers/waveshare-client.ts";

function limits(over: Partial<AdmissionLimits> = {}): AdmissionLimits {
  return {
    allow: CidrList.parse([]),
    txAllow: CidrList.parse([]),
    maxClients: 0,
    maxHandshakes: 0,
    maxHostHandshakes: 0,
    maxHostConnections: 0,
    httpMaxConnections: 0,
    fdBudget: 0,
    ...over,
  };
}

function admission(over: Partial<AdmissionLimits> = {}): { a: Admission; stats: Stats; lines: string[] } {
  const stats = new Stats();
  const { log, lines } = memoryLogger("info");
  return { a: new Admission(limits(over), stats, log), stats, lines };
}

describe("Admission rules", () => {
  test("a host is an IPv4 address (also IPv4-mapped) or an IPv6 /64", () => {
    expect(hostKey("192.168.1.10")).toBe("192.168.1.10");
    expect(hostKey("::ffff:192.168.1.10")).toBe("192.168.1.10");
    expect(hostKey("2001:db8:1:2:aaaa::1")).toBe(hostKey("2001:db8:1:2:bbbb::9"));
    expect(hostKey("2001:db8:1:2::1")).not.toBe(hostKey("2001:db8:1:3::1"));
  });

  test("per-host handshake limit: one host's hogs leave the global budget to the others", () => {
    const { a, stats } = admission({ maxHandshakes: 64, maxHostHandshakes: 8 });
    for (let i = 0; i < 8; i++) expect(a.admit("tcp", "127.0.0.2", true, {})).toBeInstanceOf(Ticket);
    expect(a.admit("tcp", "127.0.0.2", true, {})).toBe("host_handshakes");
    expect(a.admit("tcp", "127.0.0.1", true, {})).toBeInstanceOf(Ticket);
    expect(stats.rejected.get("host_handshakes")).toBe(1);
  });

  test("a protocol ready on accept never counts as handshaking", () => {
    const { a } = admission({ maxHandshakes: 1, maxHostHandshakes: 1 });
    for (let i = 0; i < 100; i++) expect(a.admit("tcp", "127.0.0.2", false, {})).toBeInstanceOf(Ticket);
    expect(a.handshaking).toBe(0);
    expect(a.established).toBe(100);
    expect(a.admit("tcp", "127.0.0.1", true, {})).toBeInstanceOf(Ticket);
  });

  test("one descriptor budget: an HTTP connection costs three, a TCP client one; neither kind starves the other", () => {
    const { a } = admission({ fdBudget: 100 });
    const http: Ticket[] = [];
    for (let i = 0; i < 16; i++) http.push(a.admit("http", `10.0.0.${i}`, false, {}) as Ticket);
    expect(a.admit("http", "10.0.1.1", false, {})).toBe("fd_reserve"); // 17 x 3 > half of 100
    for (let i = 0; i < 52; i++) expect(a.admit("tcp", `10.0.2.${i}`, false, {})).toBeInstanceOf(Ticket);
    expect(a.fdsInUse).toBe(100);
    expect(a.admit("tcp", "10.0.3.1", false, {})).toBe("fd_reserve");
    http[0]!.release();
    http[0]!.release(); // idempotent
    expect(a.fdsInUse).toBe(97);
    expect(a.admit("tcp", "10.0.3.1", false, {})).toBeInstanceOf(Ticket);
    // TCP alone stops 24 short of the budget (8 HTTP connections' worth stay free).
    const { a: b } = admission({ fdBudget: 100 });
    for (let i = 0; i < 76; i++) expect(b.admit("tcp", `10.1.0.${i}`, false, {})).toBeInstanceOf(Ticket);
    expect(b.admit("tcp", "10.1.1.1", false, {})).toBe("fd_reserve");
    expect(b.admit("http", "10.1.1.1", false, {})).toBeInstanceOf(Ticket);
  });

  test("-allow refuses before anything is counted; per-host connections cap TCP and HTTP together", () => {
    const { a } = admission({ allow: CidrList.parse(["10.0.0.0/8"]), maxHostConnections: 2 });
    expect(a.admit("http", "192.168.1.1", false, {})).toBe("not_allowed");
    expect(a.admit("http", "10.0.0.1", false, {})).toBeInstanceOf(Ticket);
    expect(a.admit("tcp", "10.0.0.1", true, {})).toBeInstanceOf(Ticket);
    expect(a.admit("tcp", "10.0.0.1", false, {})).toBe("host_connections");
    expect(a.admit("tcp", "10.0.0.2", false, {})).toBeInstanceOf(Ticket);
  });

  test("one host may fill an explicit -max-clients (everything on one machine); the per-host share applies to the descriptor budget only", () => {
    const { a } = admission({ maxClients: 2, fdBudget: 10_000 });
    expect(a.admit("tcp", "127.0.0.1", false, {})).toBeInstanceOf(Ticket);
    expect(a.admit("tcp", "127.0.0.1", false, {})).toBeInstanceOf(Ticket);
    expect(a.admit("tcp", "127.0.0.1", false, {})).toBe("max_clients");
    const { a: b } = admission({ fdBudget: 100 });
    for (let i = 0; i < 38; i++) expect(b.admit("tcp", "127.0.0.2", false, {})).toBeInstanceOf(Ticket);
    expect(b.admit("tcp", "127.0.0.2", false, {})).toBe("host_connections"); // half of 76
    expect(b.admit("tcp", "127.0.0.1", false, {})).toBeInstanceOf(Ticket);
  });

  test("a flood of refusals is logged once per burst, every one counted", () => {
    const { a, stats, lines } = admission({ maxHostConnections: 1 });
    a.admit("tcp", "10.0.0.1", false, {});
    for (let i = 0; i < 10_000; i++) a.admit("tcp", "10.0.0.1", false, { remote: "10.0.0.1:1" });
    expect(stats.rejected.get("host_connections")).toBe(10_000);
    expect(lines.filter((l) => l.includes("client_rejected")).length).toBe(1);
  });
});

test("readyOnAccept is declared exactly by the protocols whose session is ready when it starts", async () => {
  for (const d of PROTOCOLS) {
    if (d.transport !== "tcp") continue;
    const p = await d.load();
    let ready = false;
    const s = p.open({ frame: () => {}, reply: () => {}, ready: () => (ready = true), rejected: () => {}, fail: () => {} }, { fd: false, busName: "can0" });
    s.start();
    expect({ protocol: d.name, ready }).toEqual({ protocol: d.name, ready: p.readyOnAccept === true });
  }
});

describe("idle connections from one host keep nobody else out (real sockets, gateway process)", () => {
  const procs: GatewayProcess[] = [];
  const idle: IdleSockets[] = [];
  afterEach(async () => {
    for (const s of idle.splice(0)) s.close();
    for (const p of procs.splice(0)) await p.stop();
  });

  test("70 idle sockets from 127.0.0.2 on every listener; clients from 127.0.0.1 still get in", async () => {
    const listeners = ["-waveshare-listen", "-socketcand-listen", "-slcan-listen", "-gvret-listen", "-canlogserver-listen"].flatMap((f) => [f, "127.0.0.1:0"]);
    const gw = await startGatewayProcess(listeners);
    procs.push(gw);
    for (const name of ["slcan", "cannelloni", "socketcand", "gvret", "waveshare", "canlogserver"]) {
      idle.push(await openIdleSockets(gw.ports[name]!, 70, "127.0.0.2"));
    }
    await Bun.sleep(200);
    const canno = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await canno.handshake();
    const scd = await RawSocketcandClient.connect(gw.ports.socketcand!);
    await scd.handshake();
    const slcan = await SlcanTestClient.connect(gw.ports.slcan!);
    await slcan.open();
    const ws = await WaveshareTestClient.connect(gw.ports.waveshare!);
    await Bun.sleep(300);
    expect([canno.closed, scd.closed, slcan.closed, ws.closed]).toEqual([false, false, false, false]);
    const h = await gw.http("/healthz");
    expect(h.status).toBe(200);
    const refused = (await gw.metric("clients_rejected_total", { reason: "host_connections" })) + (await gw.metric("clients_rejected_total", { reason: "host_handshakes" }));
    expect(refused).toBeGreaterThan(0);
    expect(await gw.metric("clients_rejected_total", { reason: "max_handshakes" })).toBe(0);
    for (const c of [canno, scd, slcan, ws]) c.close();
  }, 30_000);
});
