/**
 * GVRET discovery (-gvret-discovery). Over real UDP on loopback, unicast to a receiver (a fixed
 * interface table stands in for the machine's interfaces, so nothing is broadcast here): the
 * 4-byte datagram, once per interval per subnet. And real broadcast ONLY between two network
 * namespaces this test creates (../helpers/netns.ts): the whole gateway (src/main.ts
 * -gvret-listen :23 -gvret-discovery) runs in one; in the other a receiver does what SavvyCAN
 * does — listens on 17222, connects to the sender on TCP 23, validates and receives a bus frame.
 * Needs root and iproute2; otherwise that part is skipped with the reason printed.
 */
import { afterEach, describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import type { NetworkInterfaceInfo } from "node:os";
import { startGvretDiscovery, type GvretDiscovery } from "../../src/ops/gvret-discovery.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { NETNS_TAG, netnsSkipReason, useNetnsPair } from "../helpers/netns.ts";

const TABLE: NodeJS.Dict<NetworkInterfaceInfo[]> = {
  lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", mac: "00:00:00:00:00:00", internal: true, cidr: null }],
  eth0: [{ address: "192.168.1.10", netmask: "255.255.255.0", family: "IPv4", mac: "02:00:00:00:00:01", internal: false, cidr: null }],
};

describe("GVRET discovery over loopback (unicast target, no broadcast)", () => {
  let d: GvretDiscovery | null = null;
  let r: dgram.Socket | null = null;
  afterEach(async () => {
    await d?.stop();
    d = null;
    await new Promise<void>((res) => (r ? r.close(() => res()) : res()));
    r = null;
  });

  test("sends 1C EF AC ED per subnet every interval; warns when the listener is not on port 23; stop() closes", async () => {
    const got: string[] = [];
    r = dgram.createSocket("udp4");
    r.on("message", (m) => got.push(m.toString("hex")));
    await new Promise<void>((res) => r!.bind(0, "127.0.0.1", () => res()));
    const { log, lines } = memoryLogger();
    d = startGvretDiscovery({ port: 2323, listenHost: "0.0.0.0", log, intervalMs: 50, target: { address: "127.0.0.1", port: r.address().port }, interfaces: () => TABLE });
    const deadline = Date.now() + 3000;
    while (got.length < 3 && Date.now() < deadline) await Bun.sleep(10);
    expect(got.slice(0, 3)).toEqual(["1cefaced", "1cefaced", "1cefaced"]);
    await d.stop();
    d = null;
    const events = lines.map((l) => JSON.parse(l) as { msg: string; targets?: string });
    expect(events.find((e) => e.msg === "gvret_discovery_targets")?.targets).toBe("eth0:192.168.1.10->192.168.1.255");
    expect(events.some((e) => e.msg === "gvret_discovery_port")).toBe(true);
    expect(events.some((e) => e.msg === "gvret_discovery_stopped")).toBe(true);
  });
});

const skipReason = netnsSkipReason();
if (skipReason) console.warn(`test/ops/gvret-discovery.test.ts: skipping the namespace broadcast test (${skipReason})`);

describe.skipIf(skipReason !== null)("GVRET discovery broadcast between private network namespaces", () => {
  const net = useNetnsPair({
    a: { ns: `csgvr-gw-${NETNS_TAG}`, ifname: `csgg${NETNS_TAG}`, cidr: "10.215.0.1/24" },
    b: { ns: `csgvr-cl-${NETNS_TAG}`, ifname: `csgc${NETNS_TAG}`, cidr: "10.215.0.2/24" },
    broadcast: "10.215.0.255",
  });

  test(
    "a SavvyCAN-like receiver hears the datagram, connects to its sender on TCP 23, validates and gets bus frames",
    async () => {
      const gw = net.track(
        Bun.spawn(
          net.argvIn(net.a, [
            process.execPath, `${import.meta.dir}/../../src/main.ts`,
            "-backend", "virtual", "-virtual-demo", "-listen", ":20000", "-gvret-listen", "-gvret-discovery",
            "-log-format", "json", "-log-level", "debug",
          ]),
          { stdout: "ignore", stderr: "pipe", stdin: "ignore" },
        ),
      );
      const gwLog = new Response(gw.stderr).text();
      const receiver = net.track(
        Bun.spawn(net.argvIn(net.b, [process.execPath, `${import.meta.dir}/gvret-discovery-receiver.ts`, "15000"]), { stdout: "pipe", stderr: "pipe", stdin: "ignore" }),
      );
      const [out, err] = await Promise.all([new Response(receiver.stdout).text(), new Response(receiver.stderr).text()]);
      expect(await receiver.exited, `receiver stderr: ${err}`).toBe(0);
      const result = JSON.parse(out) as { payload: string; sender: string; connected: boolean; frames: number; error?: string };
      expect(result).toEqual({ payload: "1cefaced", sender: "10.215.0.1", connected: true, frames: 1 });
      gw.kill("SIGTERM");
      expect(await gw.exited).toBe(0);
      const logText = await gwLog;
      expect(logText).toContain(`"msg":"gvret_discovery_targets","targets":"${net.a.ifname}:10.215.0.1->10.215.0.255"`);
      expect(logText).not.toContain("gvret_discovery_port"); // the bare flag means port 23
      expect(logText).toContain('"msg":"gvret_discovery_stopped"');
    },
    40_000,
  );
});
