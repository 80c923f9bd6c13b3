/**
 * mDNS advertisement over real multicast, confined to two network namespaces this test creates
 * and joins with a veth pair (created inside the first namespace, so no interface ever appears in
 * the machine's own namespace and no packet reaches a real interface). The publisher (our
 * startMdns) runs in one namespace, an independent bonjour-service Browser in the other, both as
 * child processes via `ip netns exec`. The namespaces come from ../helpers/netns.ts, which holds
 * the safety rules and the cleanup. Needs root and iproute2; otherwise the test is skipped with
 * the reason printed.
 */
import { describe, expect, test } from "bun:test";
import { mdnsBusTxt, mdnsInstanceName, mdnsTxt } from "../../src/ops/mdns.ts";
import { NETNS_TAG, type NetnsEnd, netnsSkipReason, useNetnsPair } from "../helpers/netns.ts";

const BUN = process.execPath;

const skipReason = netnsSkipReason();
if (skipReason) console.warn(`test/ops/mdns.test.ts: skipping the namespace mDNS test (${skipReason})`);

/** Reads a child's stdout as JSON lines; waitFor() resolves with the first line matching. */
class JsonLines {
  readonly lines: Record<string, unknown>[] = [];
  private waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
  constructor(stream: ReadableStream<Uint8Array>) {
    void this.pump(stream);
  }
  private async pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const text = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let line: Record<string, unknown>;
        try {
          line = JSON.parse(text) as Record<string, unknown>;
        } catch {
          line = { raw: text };
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
      }
    }
  }
  waitFor(pred: (l: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>> {
    const hit = this.lines.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}; saw ${JSON.stringify(this.lines)}`)), ms);
      this.waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
    });
  }
}

describe("mdns naming and TXT", () => {
  test("instance name defaults to can-server-<hostname>", () => {
    expect(mdnsInstanceName("", "pi4")).toBe("can-server-pi4");
    expect(mdnsInstanceName("kitchen", "pi4")).toBe("kitchen");
  });
  test("TXT carries backend, version, commit and only the enabled listeners' ports", () => {
    const build = { version: "1.2.3", commit: "abc1234", date: "2026-01-01" };
    expect(mdnsTxt({ backend: "serial", build })).toEqual({ backend: "serial", version: "1.2.3", commit: "abc1234" });
    expect(mdnsTxt({ backend: "socketcan", build, wavesharePort: 20001, socketcandPort: 29536 })).toEqual({
      backend: "socketcan",
      version: "1.2.3",
      commit: "abc1234",
      waveshare_port: "20001",
      socketcand_port: "29536",
    });
  });
});

describe("mDNS TXT with several buses", () => {
  test("buses= lists them in order, port_<bus>= each bus's cannelloni port; one bus adds nothing", () => {
    expect(mdnsBusTxt([{ name: "can0", cannelloniPort: 20000 }])).toEqual({});
    expect(mdnsBusTxt([{ name: "can0", cannelloniPort: 20000 }, { name: "can1", cannelloniPort: 20010 }, { name: "remote" }])).toEqual({
      buses: "can0,can1,remote",
      port_can0: "20000",
      port_can1: "20010",
    });
  });
  test("buses= stays within a TXT string's 255 bytes", () => {
    const many = Array.from({ length: 20 }, (_, i) => ({ name: `bus-number-${String(i).padStart(4, "0")}` }));
    const txt = mdnsBusTxt(many);
    expect(Buffer.byteLength(`buses=${txt["buses"]}`)).toBeLessThanOrEqual(255);
    expect(txt["buses"]!.split(",")).toEqual(many.slice(0, txt["buses"]!.split(",").length).map((b) => b.name));
  });
});

describe.skipIf(skipReason !== null)("mdns advertisement inside private network namespaces", () => {
  const net = useNetnsPair({
    a: { ns: `csmdns-pub-${NETNS_TAG}`, ifname: `csmp${NETNS_TAG}`, cidr: "10.213.0.1/24" },
    b: { ns: `csmdns-brw-${NETNS_TAG}`, ifname: `csmb${NETNS_TAG}`, cidr: "10.213.0.2/24" },
    multicast: true,
  });
  const publisherSide = net.a;
  const browserSide = net.b;

  const spawnIn = (side: NetnsEnd, args: string[]): { proc: Bun.Subprocess<"ignore", "pipe", "inherit">; out: JsonLines } => {
    const proc = net.track(Bun.spawn(net.argvIn(side, [BUN, ...args]), { stdout: "pipe", stderr: "inherit", stdin: "ignore" }));
    return { proc, out: new JsonLines(proc.stdout) };
  };

  test(
    "a browser in the other namespace sees the service with its port, TXT and address, and sees it withdrawn on SIGTERM",
    async () => {
      const browser = spawnIn(browserSide, [`${import.meta.dir}/mdns-browser.ts`]);
      await browser.out.waitFor((l) => l["browsing"] === true, 5000, "browser start");

      // Two buses: the TXT lists them (buses=, port_<bus>=) in the one advertisement.
      const txt = { backend: "virtual", version: "9.8.7", commit: "deadbee", waveshare_port: "20001", ...mdnsBusTxt([{ name: "can0", cannelloniPort: 20000 }, { name: "can1", cannelloniPort: 20010 }]) };
      const publisher = spawnIn(publisherSide, [`${import.meta.dir}/mdns-publisher.ts`, "gw-under-test", "20000", "gw-host.local", JSON.stringify(txt)]);
      await publisher.out.waitFor((l) => l["msg"] === "mdns_started", 5000, "publisher mdns_started");

      const up = await browser.out.waitFor((l) => l["event"] === "up" && l["name"] === "gw-under-test", 8000, "browser 'up' event");
      expect(up["type"]).toBe("can-server");
      expect(up["protocol"]).toBe("tcp");
      expect(up["port"]).toBe(20000);
      expect(up["host"]).toBe("gw-host.local");
      expect(up["txt"]).toEqual(txt);
      expect(up["addresses"]).toContain("10.213.0.1");

      publisher.proc.kill("SIGTERM");
      await publisher.out.waitFor((l) => l["stopped"] === true, 5000, "publisher stop");
      expect(await publisher.proc.exited).toBe(0);
      // The goodbye (TTL 0) makes the browser drop the service at once, not after the record TTL.
      await browser.out.waitFor((l) => l["event"] === "down" && l["name"] === "gw-under-test", 5000, "browser 'down' event");
      expect(publisher.out.lines.some((l) => l["msg"] === "mdns_stopped")).toBe(true);
    },
    30_000,
  );
});
