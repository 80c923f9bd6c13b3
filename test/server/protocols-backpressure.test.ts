/**
 * Backpressure for the slcan, GVRET and canlogserver listeners over real TCP: a client of each
 * that completes its opening and then never reads (a python3 process with a tiny receive buffer,
 * so the gateway's socket really stops draining) loses frames under the drop policy (counted,
 * `client_dropping` with its protocol) or is disconnected under kick, while a cannelloni client on
 * the same bus keeps receiving everything.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { flood, startTestGateway, type TestGateway } from "../helpers/gateway.ts";

const SCRIPT = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(bytes.fromhex(sys.argv[2]))
print("ready", flush=True)
time.sleep(20)
`;

const OPENINGS = {
  slcan: Buffer.from("O\r").toString("hex"),
  gvret: "e7e7f10cf106f107f101f109",
  canlogserver: "",
} as const;
type Proto = keyof typeof OPENINGS;

let gw: TestGateway | null = null;
const procs: Subprocess[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  for (const p of procs.splice(0)) p.kill();
  await gw?.stop();
  gw = null;
});

async function stuckClient(port: number, opening: string): Promise<void> {
  const proc = Bun.spawn(["/usr/bin/python3", "-c", SCRIPT, String(port), opening], { stdout: "pipe", stderr: "inherit" });
  procs.push(proc);
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("stuck client did not start");
}

async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

describe("a client that never reads, per new protocol", () => {
  for (const protocol of Object.keys(OPENINGS) as Proto[]) {
    for (const policy of ["drop", "kick"] as const) {
      test(`${protocol}, -hub-policy ${policy}: the stuck client is ${policy === "drop" ? "dropped for" : "kicked"}, a cannelloni client gets every frame`, async () => {
        gw = await startTestGateway({ slcanListen: "127.0.0.1:0", gvretListen: "127.0.0.1:0", canlogserverListen: "127.0.0.1:0", hubBuffer: 4096, hubPolicy: policy, clientReadTimeoutMs: 60_000 });
        const cnl = await CannelloniTestClient.connect(gw.port, { helloFirst: true });
        cleanups.push(() => cnl.close());
        await cnl.handshake({ helloFirst: true });
        await stuckClient(gw.gateway.port(protocol)!, OPENINGS[protocol]);
        await waitFor(() => gw!.gateway.hub.size === 2, "both attached");
        const event = policy === "drop" ? "client_dropping" : "client_kicked";
        const hit = (): boolean => gw!.events().some((e) => e.msg === event && e.protocol === protocol);
        const sent = await flood(gw.backend, 400_000, hit);
        await waitFor(hit, event);
        if (policy === "drop") expect(gw.stats.hubDroppedFrames).toBeGreaterThan(0);
        else expect(gw.stats.hubKickedClients).toBe(1);
        await cnl.waitFrames(sent, 20_000);
        expect(cnl.frames).toHaveLength(sent);
      }, 40_000);
    }
  }
});
