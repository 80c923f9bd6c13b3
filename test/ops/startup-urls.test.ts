/**
 * Start-up says where to look: a `dashboard` line with the URL at every address the HTTP endpoint
 * answers on, and the `ready` line names it too. The process test binds loopback only; the
 * wildcard cases use a given interface list (endpointUrls is pure).
 */
import { afterEach, expect, test } from "bun:test";
import type { NetworkInterfaceInfo } from "node:os";
import { endpointUrls } from "../../src/ops/endpoint-urls.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";

const ifaces: Record<string, NetworkInterfaceInfo[]> = {
  eth0: [
    { address: "192.168.1.20", netmask: "255.255.255.0", family: "IPv4", mac: "00:00:00:00:00:01", internal: false, cidr: "192.168.1.20/24" },
    { address: "fe80::1", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "00:00:00:00:00:01", internal: false, cidr: "fe80::1/64", scopeid: 2 },
    { address: "fd00::20", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "00:00:00:00:00:01", internal: false, cidr: "fd00::20/64", scopeid: 0 },
  ],
  lo: [
    { address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "00:00:00:00:00:00", internal: true, cidr: "127.0.0.1/8" },
    { address: "::1", netmask: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", family: "IPv6", mac: "00:00:00:00:00:00", internal: true, cidr: "::1/128", scopeid: 0 },
  ],
};

test("a specific address is the one URL; IPv6 in brackets", () => {
  expect(endpointUrls("127.0.0.1", 9100, ifaces)).toEqual(["http://127.0.0.1:9100/"]);
  expect(endpointUrls("::1", 9100, ifaces)).toEqual(["http://[::1]:9100/"]);
  expect(endpointUrls("gw.local", 80, ifaces)).toEqual(["http://gw.local:80/"]);
});

test(":9100 (every IPv4 interface) lists each IPv4 address, loopback first", () => {
  expect(endpointUrls("0.0.0.0", 9100, ifaces)).toEqual(["http://127.0.0.1:9100/", "http://192.168.1.20:9100/"]);
});

test("[::]:9100 lists IPv4 and IPv6 addresses, without link-local ones", () => {
  expect(endpointUrls("::", 9100, ifaces)).toEqual(["http://127.0.0.1:9100/", "http://[::1]:9100/", "http://192.168.1.20:9100/", "http://[fd00::20]:9100/"]);
});

test("no interfaces known: loopback still", () => {
  expect(endpointUrls("0.0.0.0", 9100, {})).toEqual(["http://127.0.0.1:9100/"]);
});

let gw: GatewayProcess | undefined;
afterEach(async () => {
  await gw?.stop();
  gw = undefined;
});

test("the start-up line names the dashboard, and the ready line carries its URL; the URL serves it", async () => {
  gw = await startGatewayProcess([]);
  const line = await gw.waitFor("dashboard");
  const url = `http://127.0.0.1:${gw.ports.http}/`;
  expect(line.urls).toBe(url);
  const ready = await gw.waitFor("ready");
  expect(ready.dashboard).toBe(url);
  // The dashboard line comes before ready: a user reading the log top-down sees it first.
  expect(gw.lines.findIndex((l) => l.msg === "dashboard")).toBeLessThan(gw.lines.findIndex((l) => l.msg === "ready"));
  const page = await fetch(url);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("<title>");
});
