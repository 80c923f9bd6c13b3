/**
 * `-backend cannelloni-client` end to end: two gateway processes over loopback. B serves a
 * virtual bus on its cannelloni TCP listener; A's bus is B's bus, reached with
 * `-backend cannelloni-client -remote 127.0.0.1:PORT`. Real cannelloni clients on both sides
 * (test/helpers/cannelloni-client.ts, its codec independent of src/) see frames cross both ways,
 * A reports down when B is killed and up again (reconnected) when B comes back on the same port,
 * and frames cross again.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, formatFrame, remoteFrame } from "../../../src/can/frame.ts";
import { CannelloniTestClient } from "../../helpers/cannelloni-client.ts";
import { type GatewayProcess, startGatewayProcess } from "../../helpers/gateway-process.ts";

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(args: string[]): Promise<GatewayProcess> {
  const g = await startGatewayProcess(args);
  cleanups.push(() => g.stop());
  return g;
}

async function client(port: number): Promise<CannelloniTestClient> {
  const c = await CannelloniTestClient.connect(port);
  cleanups.push(() => c.close());
  await c.handshake();
  return c;
}

const names = (frames: readonly { canId: number }[]) => frames.map((f) => formatFrame(f as never));

describe("cannelloni-client tunnel between two gateway processes", () => {
  test("frames cross both ways; the tunnel survives the far end's restart", async () => {
    let far = await gateway([]);
    const farPort = far.ports.cannelloni!;
    const near = await gateway(["-backend", "cannelloni-client", "-remote", `127.0.0.1:${farPort}`]);
    await near.waitFor("remote_up");
    expect(await near.metric("backend_up")).toBe(1);

    const a = await client(near.ports.cannelloni!);
    let b = await client(farPort);
    const toFar = [dataFrame(0x123, [1, 2, 3]), dataFrame(0x1abcdef, [0xde, 0xad], true), remoteFrame(0x77, 0)];
    a.send(...toFar);
    expect(names(await b.waitFrames(3))).toEqual(names(toFar));
    const toNear = Array.from({ length: 50 }, (_, i) => dataFrame(0x200 + i, [i]));
    b.send(...toNear);
    expect(names(await a.waitFrames(50))).toEqual(names(toNear));

    // The far end goes away: the near gateway reports its bus down, then reconnects.
    b.close();
    await far.stop();
    await near.waitFor("remote_down");
    expect(await near.metric("backend_up")).toBe(0);
    far = await gateway(["-listen", `127.0.0.1:${farPort}`]);
    await near.waitFor("remote_up", 15_000, (l) => l.reconnects === 1);
    expect(await near.metric("backend_reconnects_total")).toBe(1);

    b = await client(farPort);
    a.frames.length = 0;
    a.send(dataFrame(0x321, [9]));
    expect(names(await b.waitFrames(1))).toEqual(names([dataFrame(0x321, [9])]));
    b.send(dataFrame(0x322, [8]));
    expect(names(await a.waitFrames(1))).toEqual(names([dataFrame(0x322, [8])]));
  }, 60_000);

  test("a remote that is not there: up never claimed, retried with backoff, bad -remote is exit 2", async () => {
    // A port nothing listens on: bind a listener, note its port, close it.
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const near = await gateway(["-backend", "cannelloni-client", "-remote", `127.0.0.1:${port}`]);
    const down = await near.waitFor("remote_unreachable");
    expect(String(down.reason)).toContain(`127.0.0.1:${port}`);
    expect(await near.metric("backend_up")).toBe(0);
    const ready = await near.http("/ready");
    expect(ready.status).toBe(503);

    const bad = Bun.spawnSync([process.execPath, new URL("../../../src/main.ts", import.meta.url).pathname, "-backend", "cannelloni-client", "-remote", "nohostport"], { stderr: "pipe" });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.toString()).toContain("-remote");
  }, 30_000);

  test("socketcand-client through the gateway: -remote-bus opens the far gateway's socketcand bus, frames both ways", async () => {
    const far = await gateway(["-socketcand-listen", "127.0.0.1:0", "-socketcand-bus", "site0"]);
    const near = await gateway(["-backend", "socketcand-client", "-remote", `127.0.0.1:${far.ports.socketcand}`, "-remote-bus", "site0"]);
    await near.waitFor("remote_up");
    const a = await client(near.ports.cannelloni!);
    const b = await client(far.ports.cannelloni!);
    await far.waitFor("client_ready", 5000, () => far.lines.filter((l) => l.msg === "client_ready").length >= 2);
    await near.waitFor("client_ready");
    a.send(dataFrame(0x7ff, [1, 2, 3, 4, 5, 6, 7, 8]), dataFrame(0x1fffffff, [], true));
    expect(names(await b.waitFrames(2))).toEqual(names([dataFrame(0x7ff, [1, 2, 3, 4, 5, 6, 7, 8]), dataFrame(0x1fffffff, [], true)]));
    b.send(dataFrame(0x5, [0xff]));
    expect(names(await a.waitFrames(1))).toEqual(names([dataFrame(0x5, [0xff])]));
    // A wrong bus name is refused by the far end and said so.
    const wrong = await gateway(["-backend", "socketcand-client", "-remote", `127.0.0.1:${far.ports.socketcand}`, "-remote-bus", "nosuch"]);
    const down = await wrong.waitFor("remote_unreachable");
    expect(String(down.reason)).toContain("nosuch");
  }, 60_000);
});
