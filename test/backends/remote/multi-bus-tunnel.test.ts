/**
 * A remote bus as one bus of a multi-bus gateway (issue 19: "two can-servers join two sites' buses
 * over IP with routes as the filter"). Gateway B serves a virtual bus. Gateway A, from a
 * configuration file, has a local virtual bus and a bus "siteb" that is B's bus through
 * `backend = "cannelloni-client"`, and a route local → siteb with a filter. Independent cannelloni
 * clients on all three buses: only frames passing the filter cross to site B; frames from site B
 * reach A's siteb clients and never A's local bus (no route back).
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { dataFrame, formatFrame } from "../../../src/can/frame.ts";
import { CannelloniTestClient } from "../../helpers/cannelloni-client.ts";
import { startGatewayProcess } from "../../helpers/gateway-process.ts";

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function client(port: number): Promise<CannelloniTestClient> {
  const c = await CannelloniTestClient.connect(port);
  cleanups.push(() => c.close());
  await c.handshake();
  return c;
}

test("a cannelloni-client bus in a configuration file, fed by a filtered route; nothing comes back without a route", async () => {
  const siteB = await startGatewayProcess([]);
  cleanups.push(() => siteB.stop());
  const dir = mkdtempSync(path.join(os.tmpdir(), "can-server-tunnel-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "gateway.toml");
  writeFileSync(
    file,
    `[[bus]]
name = "local"
backend = "virtual"
listen = "127.0.0.1:0"

[[bus]]
name = "siteb"
backend = "cannelloni-client"
remote = "127.0.0.1:${siteB.ports.cannelloni}"
listen = "127.0.0.1:0"

[[route]]
from = "local"
to = "siteb"
filter = ["100/700"]
hop-limit = 1
`,
  );
  const siteA = await startGatewayProcess(["-config", file]);
  cleanups.push(() => siteA.stop());
  await siteA.waitFor("remote_up");

  const local = await client(siteA.ports["cannelloni@local"]!);
  const sitebAtA = await client(siteA.ports["cannelloni@siteb"]!);
  const atB = await client(siteB.ports.cannelloni!);
  await siteB.waitFor("client_ready", 5000, () => siteB.lines.filter((l) => l.msg === "client_ready").length >= 2);
  await Bun.sleep(100);

  local.send(dataFrame(0x123, [1]), dataFrame(0x223, [2]), dataFrame(0x1ff, [3]));
  const crossed = await atB.waitFrames(2);
  expect(crossed.map(formatFrame)).toEqual(["123#01", "1FF#03"]);
  // A's siteb clients see what the route put on that bus (it is their bus too).
  expect((await sitebAtA.waitFrames(2)).map(formatFrame)).toEqual(["123#01", "1FF#03"]);

  atB.send(dataFrame(0x321, [9]));
  expect((await sitebAtA.waitFrames(3)).map(formatFrame).at(-1)).toBe("321#09");
  await Bun.sleep(200);
  // No route back: A's local bus never sees site B's frame; site B never saw the filtered ones.
  expect(local.frames.map(formatFrame)).toEqual([]);
  expect(atB.frames.map(formatFrame)).toEqual(["123#01", "1FF#03"]);
}, 60_000);
