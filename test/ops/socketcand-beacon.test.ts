/**
 * socketcand discovery beacon. Pure parts: the datagram text byte for byte (socketcand's
 * beacon.c format), how SavvyCAN's beacon reader turns it into its connection string, and which
 * interface addresses get a beacon. Socket parts: the sender over real UDP, unicast to a
 * loopback receiver (a fixed interface table stands in for the machine's interfaces, so nothing
 * is broadcast here); and real broadcast ONLY between two network namespaces this test creates
 * and joins with a veth pair (born inside the first namespace, so no interface or packet reaches
 * the machine's own network): the whole gateway (src/main.ts -socketcand-beacon) runs in one,
 * python-can's discovery and its real socketcand client (/usr/bin/python3) in the other (the
 * namespaces, their safety rules and cleanup come from ../helpers/netns.ts). Needs root,
 * iproute2 and python3-can; otherwise that part is skipped with the reason printed.
 */
import { afterEach, describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import type { NetworkInterfaceInfo } from "node:os";
import { memoryLogger } from "../../src/ops/log.ts";
import { beaconXml, startSocketcandBeacon, type SocketcandBeacon } from "../../src/ops/socketcand-beacon.ts";
import { broadcastTargets } from "../../src/ops/subnet-broadcast.ts";
import { NETNS_TAG, netnsSkipReason, run, useNetnsPair } from "../helpers/netns.ts";

const iface = (address: string, netmask: string, extra: Partial<NetworkInterfaceInfo> = {}): NetworkInterfaceInfo =>
  ({ address, netmask, family: "IPv4", mac: "02:00:00:00:00:01", internal: false, cidr: null, ...extra }) as NetworkInterfaceInfo;

const TABLE: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [iface("127.0.0.1", "255.0.0.0", { internal: true })],
  eth0: [
    iface("192.168.1.10", "255.255.255.0"),
    { address: "fe80::1", netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "02:00:00:00:00:01", internal: false, cidr: null, scopeid: 2 },
  ],
  wlan0: [iface("10.20.30.40", "255.255.240.0")],
  tun0: [iface("10.8.0.2", "255.255.255.255")],
};

describe("beaconXml", () => {
  test("socketcand's exact datagram: attributes, the newline after the start tag, URL, one Bus", () => {
    expect(beaconXml({ name: "pi4", description: "can-server", address: "192.168.1.10", port: 29536, busNames: ["can0"] })).toBe(
      '<CANBeacon name="pi4" type="SocketCAN" description="can-server">\n<URL>can://192.168.1.10:29536</URL><Bus name="can0"/></CANBeacon>',
    );
  });

  test("attribute values are escaped, so any host or bus name stays well-formed XML", () => {
    const xml = beaconXml({ name: `a&b<"c">'`, description: "x", address: "10.0.0.1", port: 1, busNames: ['bus"0'] });
    expect(xml).toContain('name="a&amp;b&lt;&quot;c&quot;&gt;&apos;"');
    expect(xml).toContain('<Bus name="bus&quot;0"/>');
  });

  test("SavvyCAN's reader (connectionwindow.cpp + socketcand.cpp, ported) gets bus, IP and port", () => {
    const xml = beaconXml({ name: "gw", description: "can-server", address: "192.168.1.10", port: 29536, busNames: ["vcan7"] });
    // connectionwindow.cpp: host = CANBeacon@name + " (" + URL text + ")"; bus list "a,b" + "@" + host.
    const name = /<CANBeacon name="([^"]*)"/.exec(xml)![1]!;
    const url = /<URL>([^<]*)<\/URL>/.exec(xml)![1]!;
    const buses = [...xml.matchAll(/<Bus name="([^"]*)"\/>/g)].map((m) => m[1]!);
    const portName = `${buses.join(",")}@${name} (${url})`;
    expect(portName).toBe("vcan7@gw (can://192.168.1.10:29536)");
    // socketcand.cpp: the URL must be last and end with ")"; the IP must be a literal.
    const hostCanIds = portName.slice(0, portName.indexOf("@")).split(",");
    const at = portName.indexOf("can://");
    const ipAndPort = portName.slice(at + 6, portName.length - 1);
    expect(hostCanIds).toEqual(["vcan7"]);
    expect(ipAndPort.slice(0, ipAndPort.indexOf(":"))).toBe("192.168.1.10");
    expect(Number(ipAndPort.slice(ipAndPort.lastIndexOf(":") + 1))).toBe(29536);
  });
});

describe("beaconXml with several buses", () => {
  test("one <Bus> per bus, in order; SavvyCAN's reader offers each as its own port", () => {
    const xml = beaconXml({ name: "gw", description: "can-server", address: "192.168.1.10", port: 29536, busNames: ["can0", "can1"] });
    expect(xml).toBe('<CANBeacon name="gw" type="SocketCAN" description="can-server">\n<URL>can://192.168.1.10:29536</URL><Bus name="can0"/><Bus name="can1"/></CANBeacon>');
    const buses = [...xml.matchAll(/<Bus name="([^"]*)"\/>/g)].map((m) => m[1]!);
    expect(buses).toEqual(["can0", "can1"]);
  });
});

describe("broadcastTargets", () => {
  test("a wildcard listener: every non-internal IPv4 address, to its subnet's broadcast address", () => {
    expect(broadcastTargets(TABLE, "0.0.0.0")).toEqual([
      { ifname: "eth0", address: "192.168.1.10", broadcast: "192.168.1.255" },
      { ifname: "wlan0", address: "10.20.30.40", broadcast: "10.20.31.255" },
    ]);
    expect(broadcastTargets(TABLE, "::")).toHaveLength(2);
  });
  test("a listener on one address: only that address", () => {
    expect(broadcastTargets(TABLE, "10.20.30.40")).toEqual([{ ifname: "wlan0", address: "10.20.30.40", broadcast: "10.20.31.255" }]);
  });
  test("loopback, IPv6, an absent address and /32 links get no beacon", () => {
    expect(broadcastTargets(TABLE, "127.0.0.1")).toEqual([]);
    expect(broadcastTargets(TABLE, "fe80::1")).toEqual([]);
    expect(broadcastTargets(TABLE, "192.168.99.1")).toEqual([]);
    expect(broadcastTargets(TABLE, "10.8.0.2")).toEqual([]);
    expect(broadcastTargets({}, "0.0.0.0")).toEqual([]);
  });
});

describe("startSocketcandBeacon over real UDP on loopback (unicast target, no broadcast)", () => {
  let beacon: SocketcandBeacon | null = null;
  let receiver: dgram.Socket | null = null;
  afterEach(async () => {
    await beacon?.stop();
    beacon = null;
    await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
    receiver = null;
  });

  const bindReceiver = (): Promise<{ port: number; next: (n: number) => Promise<string[]> }> =>
    new Promise((resolve) => {
      const got: string[] = [];
      const waiters: { n: number; resolve: (v: string[]) => void }[] = [];
      const r = dgram.createSocket("udp4");
      receiver = r;
      r.on("message", (msg) => {
        got.push(msg.toString("utf8"));
        for (const w of waiters.splice(0)) if (got.length >= w.n) w.resolve(got.slice(0, w.n));
        else waiters.push(w);
      });
      r.bind(0, "127.0.0.1", () =>
        resolve({
          port: r.address().port,
          next: (n) =>
            new Promise((res, rej) => {
              if (got.length >= n) return res(got.slice(0, n));
              const t = setTimeout(() => rej(new Error(`timed out waiting for ${n} datagrams, got ${got.length}`)), 5000);
              waiters.push({ n, resolve: (v) => (clearTimeout(t), res(v)) });
            }),
        }),
      );
    });

  test("sends one datagram per interface address each interval, with that address in the URL; stop() closes", async () => {
    const rx = await bindReceiver();
    const { log, lines } = memoryLogger();
    beacon = startSocketcandBeacon({
      port: 29536,
      busNames: ["can0"],
      name: "gw",
      intervalMs: 50,
      log,
      target: { address: "127.0.0.1", port: rx.port },
      interfaces: () => TABLE,
    });
    const got = await rx.next(4);
    const eth = beaconXml({ name: "gw", description: "can-server", address: "192.168.1.10", port: 29536, busNames: ["can0"] });
    const wlan = beaconXml({ name: "gw", description: "can-server", address: "10.20.30.40", port: 29536, busNames: ["can0"] });
    expect(got).toEqual([eth, wlan, eth, wlan]);
    await beacon.stop();
    await beacon.stop(); // idempotent
    beacon = null;
    const events = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(events).toContain("socketcand_beacon_started");
    expect(events).toContain("socketcand_beacon_targets");
    expect(events.filter((e) => e === "socketcand_beacon_stopped")).toHaveLength(1);
  });

  test("a failing interface read or an address-less host is logged, never thrown", async () => {
    const { log, lines } = memoryLogger();
    let calls = 0;
    const ticked = new Promise<void>((resolve) => {
      beacon = startSocketcandBeacon({
        port: 1,
        busNames: ["can0"],
        intervalMs: 20,
        log,
        target: { address: "127.0.0.1", port: 9 },
        interfaces: () => {
          calls++;
          if (calls === 2) resolve();
          if (calls === 1) throw new Error("boom");
          return {};
        },
      });
    });
    await ticked;
    await beacon!.stop();
    beacon = null;
    const text = lines.join("\n");
    expect(text).toContain('"msg":"socketcand_beacon_interfaces_error","error":"boom"');
    expect(text).toContain('"msg":"socketcand_beacon_no_address"');
  });
});

// ---------------------------------------------------------------------------------------------
// Real broadcast, inside private network namespaces only.

const PYTHON = "/usr/bin/python3";
const BUN = process.execPath;

function skipReasonHere(): string | null {
  const reason = netnsSkipReason();
  if (reason) return reason;
  if (!run([PYTHON, "-c", "import can.interfaces.socketcand"]).ok) return "python3-can not installed";
  return null;
}

const skipReason = skipReasonHere();
if (skipReason) console.warn(`test/ops/socketcand-beacon.test.ts: skipping the namespace broadcast test (${skipReason})`);

describe.skipIf(skipReason !== null)("beacon broadcast between private network namespaces", () => {
  const net = useNetnsPair({
    a: { ns: `csbcn-gw-${NETNS_TAG}`, ifname: `csbg${NETNS_TAG}`, cidr: "10.214.0.1/24" },
    b: { ns: `csbcn-cl-${NETNS_TAG}`, ifname: `csbc${NETNS_TAG}`, cidr: "10.214.0.2/24" },
    broadcast: "10.214.0.255",
  });
  const gatewaySide = net.a;
  const clientSide = net.b;

  test(
    "python-can's discovery finds the gateway's host, port and bus, and its socketcand client connects there",
    async () => {
      const gw = net.track(
        Bun.spawn(
          net.argvIn(gatewaySide, [
            BUN, `${import.meta.dir}/../../src/main.ts`,
            "-backend", "virtual", "-listen", ":20000", "-socketcand-listen", ":29536", "-socketcand-bus", "vcan7",
            "-socketcand-beacon", "-log-format", "json", "-log-level", "debug",
          ]),
          { stdout: "ignore", stderr: "pipe", stdin: "ignore" },
        ),
      );
      const gwLog = new Response(gw.stderr).text();

      const receiver = net.track(
        Bun.spawn(net.argvIn(clientSide, [PYTHON, `${import.meta.dir}/socketcand-beacon-receiver.py`, "10000"]), {
          stdout: "pipe",
          stderr: "pipe",
          stdin: "ignore",
        }),
      );
      const timer = setTimeout(() => receiver.kill("SIGKILL"), 20_000);
      const [out, err] = await Promise.all([new Response(receiver.stdout).text(), new Response(receiver.stderr).text()]);
      clearTimeout(timer);
      expect(await receiver.exited, `receiver stderr: ${err}`).toBe(0);
      const result = JSON.parse(out) as { detector: string; configs: unknown[]; raw: string | null; connected: boolean; error?: string };
      expect(result.configs).toEqual([{ interface: "socketcand", host: "10.214.0.1", port: 29536, channel: "vcan7" }]);
      if (result.raw !== null) expect(result.raw).toStartWith('<CANBeacon name="');
      expect(result.error).toBeUndefined();
      expect(result.connected).toBe(true);

      gw.kill("SIGTERM");
      expect(await gw.exited).toBe(0);
      const logText = await gwLog;
      expect(logText).toContain('"msg":"socketcand_beacon_targets","targets":"' + gatewaySide.ifname + ":10.214.0.1->10.214.0.255\"");
      expect(logText).toContain('"msg":"socketcand_beacon_stopped"');
      expect(logText).not.toContain("socketcand_beacon_send_error");
    },
    40_000,
  );
});
