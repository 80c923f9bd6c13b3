/**
 * socketcand on a gateway with two virtual buses (issue 19 item 2): `< open NAME >` selects any
 * bus by name, the session receives that bus only and sends to that bus only; an unknown name is
 * refused as socketcand does. With the REAL client, python-can 4.1's socketcand interface
 * (Debian python3-can, /usr/bin/python3) opening channel "can1", beside a raw client on can0.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, type CanFrame } from "../../src/can/frame.ts";
import { frameText, waitFor } from "../helpers/gateway.ts";
import { PythonSocketcandClient, RawSocketcandClient } from "../helpers/socketcand-clients.ts";
import { startTwoBuses, type TwoBuses } from "../helpers/two-buses.ts";

let tb: TwoBuses | null = null;
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await tb?.stop();
  tb = null;
});

/** Frames the gateway transmitted on a bus. */
function onBus(t: TwoBuses, bus: number): CanFrame[] {
  const frames: CanFrame[] = [];
  t.backends[bus]!.observe((f) => frames.push(f));
  return frames;
}

async function rawOpen(port: number, bus: string): Promise<RawSocketcandClient> {
  const c = await RawSocketcandClient.connect(port);
  cleanups.push(() => c.close());
  await c.waitElements(1);
  c.write(`< open ${bus} >`);
  await c.waitElements(2);
  c.write("< rawmode >");
  await c.waitElements(3);
  return c;
}

describe("socketcand with two buses", () => {
  test("python-can opens can1: it gets can1's frames only, its frames go to can1 only", async () => {
    tb = await startTwoBuses({ socketcandListen: "127.0.0.1:0" });
    const t = tb;
    const port = t.gateway.port("socketcand")!;
    const py = await PythonSocketcandClient.start(port, "can1");
    cleanups.push(() => py.stop());
    expect(py.error).toBeNull();
    const raw0 = await rawOpen(port, "can0");
    expect(raw0.elements).toEqual(["hi", "ok", "ok"]);
    await waitFor(() => t.gateway.buses[1]!.hub.size === 1 && t.gateway.buses[0]!.hub.size === 1, "one client on each bus");

    t.backends[0]!.inject(dataFrame(0x100, [0]));
    t.backends[1]!.inject(dataFrame(0x111, [1, 1]));
    t.backends[0]!.inject(dataFrame(0x102, [2]));
    t.backends[1]!.inject(dataFrame(0x113, [3]));
    expect(await py.waitReceived(2)).toEqual(["111#0101", "113#03"]);
    expect(await raw0.waitFrames(2)).toEqual(["100#00", "102#02"]);

    const on0 = onBus(t, 0);
    const on1 = onBus(t, 1);
    const before0 = on0.length;
    py.send(dataFrame(0x321, [0xaa, 0xbb]));
    await py.waitSent(1);
    await waitFor(() => on1.length === 1, "python-can's frame on can1");
    expect(frameText(on1)).toEqual(["321#AABB"]);
    await Bun.sleep(100);
    expect(on0.length).toBe(before0);
    // the raw client on can0 never sees it (no route), python-can does not get its own frame back
    expect(raw0.frames).toEqual(["100#00", "102#02"]);
    expect(py.received).toEqual(["111#0101", "113#03"]);
    // counted on the bus it selected
    expect(t.stats[1]!.protocol("socketcand")).toMatchObject({ clients: 1, rxFrames: 1, txFrames: 2 });
    expect(t.stats[0]!.protocol("socketcand")).toMatchObject({ clients: 1, rxFrames: 0, txFrames: 2 });
  });

  test("an unknown bus name: < error … >, the connection closes, the log names the buses served", async () => {
    tb = await startTwoBuses({ socketcandListen: "127.0.0.1:0" });
    const c = await RawSocketcandClient.connect(tb.gateway.port("socketcand")!);
    cleanups.push(() => c.close());
    await c.waitElements(1);
    c.write("< open can2 >");
    await c.waitElements(2);
    expect(c.elements[1]).toBe("error could not open bus can2");
    await waitFor(() => c.closed, "connection closed");
    expect(tb.lines.some((l) => l.includes("handshake_failed") && l.includes('serves \\"can0\\", \\"can1\\"'))).toBe(true);
  });
});
