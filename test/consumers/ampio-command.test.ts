/**
 * POST /api/ampio/command over real HTTP into a gateway on the virtual bus: the same frames as the
 * MQTT command topics, only with -web-tx and the token, -tx-allow applied to the browser's address,
 * every refusal answered with its reason and counted.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { dataFrame, formatFrame } from "../../src/can/frame.ts";
import type { HttpRoute } from "../../src/ops/http.ts";
import { type ConsumerGateway, startConsumerGateway, waitFor } from "./harness.ts";

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function setup(extra: Parameters<typeof startConsumerGateway>[0]): Promise<{ gw: ConsumerGateway; post: (body: unknown, headers?: Record<string, string>) => Promise<{ status: number; json: Record<string, unknown> }>; onBus: string[] }> {
  const gw = await startConsumerGateway({ ampioDecode: "true", ...extra });
  cleanup.push(() => gw.stop());
  const route = gw.consumers.routes["/api/ampio/command"] as HttpRoute;
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req, srv) => (await route(req, srv)) ?? new Response("", { status: 500 }) });
  cleanup.push(() => server.stop(true));
  const onBus: string[] = [];
  cleanup.push(gw.backend.observe((f) => onBus.push(formatFrame(f))));
  gw.backend.inject(dataFrame(0x1d4c, [0xfe, 0x1e, 0x00], true));
  gw.backend.inject(dataFrame(0x0b0a, [0xfe, 0x0c, 0x00, 0x00], true));
  await waitFor(() => gw.consumers.decoder!.inventory.size === 2, 5000, "modules heard");
  const post = async (body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await fetch(`http://127.0.0.1:${server.port}/api/ampio/command`, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
    return { status: r.status, json: (await r.json()) as Record<string, unknown> };
  };
  return { gw, post, onBus };
}

describe("POST /api/ampio/command", () => {
  test("with -web-tx and the token: the frames aioampio sends, on the bus", async () => {
    const { post, onBus } = await setup({ webTx: true, webToken: "s3cret" });
    const r = await post({ module: "1D4C", type: "o", channel: 3, value: 1, token: "s3cret" });
    expect(r).toEqual({ status: 200, json: { ok: true, command: "output 3 on", frames: ["0F000000#00001D4C15FF02"] } });
    await waitFor(() => onBus.length === 1, 5000, "the frame on the bus");
    expect(onBus).toEqual(["0F000000#00001D4C15FF02"]);
    const level = await post({ module: "B0A", type: "o", channel: 2, value: "128", token: "s3cret" });
    expect(level.json.frames).toEqual(["0F000000#00000B0A15800100"]);
    const flag = await post({ module: "1D4C", type: "f", channel: 3, value: "1", token: "s3cret" });
    expect(flag.json.frames).toEqual(["0F000000#00001D4C1600022B", "0F000000#00001D4C16012FF9", "0F000000#00001D4C16020102"]);
    await waitFor(() => onBus.length === 5, 5000, "all frames on the bus");
  });

  test("refusals: sending off, wrong token, outside -tx-allow, malformed, unknown module — nothing on the bus, counted", async () => {
    const off = await setup({});
    expect((await off.post({ module: "1D4C", type: "o", channel: 1, value: 1, token: "" })).json).toMatchObject({ ok: false, reason: "disabled" });
    const { gw, post, onBus } = await setup({ webTx: true, webToken: "s3cret" });
    const cases: [unknown, number, string][] = [
      [{ module: "1D4C", type: "o", channel: 1, value: 1, token: "guess" }, 403, "bad_token"],
      ["not json", 400, "malformed"],
      [{ module: "1D4C", type: "o", channel: 1, value: "on", token: "s3cret" }, 400, "malformed"],
      [{ module: "1D4C", type: "zz", channel: 1, value: 1, token: "s3cret" }, 400, "malformed"],
      [{ module: "ABCDE", type: "o", channel: 1, value: 1, token: "s3cret" }, 404, "unknown_module"],
    ];
    for (const [body, status, reason] of cases) {
      const r = await post(body);
      expect([r.status, r.json.reason]).toEqual([status, reason]);
    }
    // A page on another site posting with the right token (e.g. a guessed or leaked one): refused.
    const cross = await post({ module: "1D4C", type: "o", channel: 1, value: 1, token: "s3cret" }, { origin: "http://evil.example" });
    expect([cross.status, cross.json.reason]).toEqual([403, "foreign_origin"]);
    await Bun.sleep(100);
    expect(onBus).toEqual([]);
    expect(gw.events().filter((e) => e.msg === "ampio_command_refused").map((e) => e.reason).sort()).toEqual(["bad_token", "foreign_origin", "malformed", "unknown_module"]);
    const ro = await setup({ webTx: true, webToken: "s3cret", txAllow: ["10.0.0.0/8"] });
    expect(await ro.post({ module: "1D4C", type: "o", channel: 1, value: 1, token: "s3cret" })).toMatchObject({ status: 403, json: { reason: "read_only" } });
    expect(ro.onBus).toEqual([]);
  });

  test("/api/ampio/modules says whether the view may send", async () => {
    const { gw } = await setup({ webTx: true, webToken: "s3cret" });
    const route = gw.consumers.routes["/api/ampio/modules"] as HttpRoute;
    const body = (await (await route(new Request("http://x/api/ampio/modules"), undefined as never))!.json()) as { sending: boolean };
    expect(body.sending).toBe(true);
  });
});
