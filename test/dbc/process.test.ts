/**
 * -dbc in the real process: a bad file or -dbc-metrics exits 2 with one line; frames a real
 * cannelloni client puts on the virtual bus show up decoded on GET /api/signals and as
 * dbc_signal_value gauges; GET /api/dbc is the catalogue; SIGHUP re-reads the file without
 * dropping the client, and a broken file on SIGHUP keeps the old one.
 */
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startGatewayProcess } from "../helpers/gateway-process.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const FIXTURE = join(import.meta.dir, "..", "fixtures", "dbc", "coverage.dbc");
const dir = mkdtempSync(join(tmpdir(), "dbc-proc-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) env[k] = v;
  const p = Bun.spawn([process.execPath, MAIN, "-backend", "virtual", ...args], { stdout: "pipe", stderr: "pipe", env });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr };
}

test("a bad -dbc file: one line naming file and line, exit 2", async () => {
  const bad = join(dir, "bad.dbc");
  writeFileSync(bad, 'VERSION ""\n\nBO_ 256 M: 8 X\n SG_ A : 0|8@1+ (1,0) [0|x] "" X\n');
  const r = await run(["-dbc", bad]);
  expect(r.code).toBe(2);
  expect(r.stderr).toBe(`can-server: configuration error: -dbc (CAN_SERVER_DBC): DBC file ${bad}:4: expected the maximum of signal A (a number), got 'x'\n`);
  const missing = await run(["-dbc", join(dir, "nope.dbc")]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toBe(`can-server: configuration error: -dbc (CAN_SERVER_DBC): cannot read DBC file ${join(dir, "nope.dbc")}: no such file\n`);
  const metrics = await run(["-dbc", FIXTURE, "-dbc-metrics", "Gearbox.Gear,Gearbox.Nope"]);
  expect(metrics.code).toBe(2);
  expect(metrics.stderr).toBe("can-server: configuration error: -dbc-metrics (CAN_SERVER_DBC_METRICS): Gearbox.Nope: message Gearbox has no signal Nope\n");
  const alone = await run(["-dbc-metrics", "Gearbox.Gear"]);
  expect(alone.code).toBe(2);
}, 30_000);

test("signals over HTTP and Prometheus; SIGHUP reloads without dropping clients", async () => {
  const file = join(dir, "live.dbc");
  copyFileSync(FIXTURE, file);
  const gw = await startGatewayProcess(["-dbc", file, "-dbc-metrics", "Gearbox.OilTemp,SimpleMux.P1Volt"]);
  try {
    expect((await gw.waitFor("dbc_loaded")).messages).toBe(10);
    const client = await CannelloniTestClient.connect(gw.ports.cannelloni!);
    await client.handshake();
    const signals = async () => JSON.parse((await gw.http("/api/signals")).body) as { bus: string; signals: { message: string; signal: string; value: number | string; valueName?: string; unit: string; rate: number; updated: string }[] };
    const waitSignal = async (key: string, want: unknown) => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const s = (await signals()).signals.find((x) => `${x.message}.${x.signal}` === key);
        if (s !== undefined && (s.valueName ?? s.value) === want) return s;
        if (Date.now() > deadline) throw new Error(`${key} never became ${String(want)}: ${JSON.stringify(s)}`);
        await Bun.sleep(20);
      }
    };
    client.send(dataFrame(0x106, [0b0110, 130]));
    const gear = await waitSignal("Gearbox.Gear", "N");
    expect(gear.unit).toBe("");
    expect(await waitSignal("Gearbox.OilTemp", 90)).toMatchObject({ unit: "degC" });
    client.send(dataFrame(0x106, [0b0111, 30]));
    await waitSignal("Gearbox.Gear", "D");
    // Two branches of a multiplexed message: both stay visible.
    client.send(dataFrame(0x200, [0x00, 0x10, 0x27, 1, 0, 0, 0, 9]), dataFrame(0x200, [0x01, 0x7d, 0, 0, 0, 0, 0, 9]));
    await waitSignal("SimpleMux.P1Volt", 12.5);
    await waitSignal("SimpleMux.P0Speed", 100);
    const all = await signals();
    expect(all.bus).toBe("can0");
    expect(all.signals.map((s) => `${s.message}.${s.signal}`).sort()).toEqual(["Gearbox.DoorState", "Gearbox.Gear", "Gearbox.OilTemp", "SimpleMux.Always", "SimpleMux.P0Flag", "SimpleMux.P0Speed", "SimpleMux.P1Current", "SimpleMux.P1Volt", "SimpleMux.Page"]);
    const only = JSON.parse((await gw.http("/api/signals?signals=Gearbox.OilTemp,SimpleMux.P1Volt")).body) as { signals: { signal: string }[] };
    expect(only.signals.map((s) => s.signal).sort()).toEqual(["OilTemp", "P1Volt"]);
    expect((await gw.http("/api/signals?message=Nope")).status).toBe(404);
    const matched = JSON.parse((await gw.http("/api/signals?match=GEAR&limit=2")).body) as { total: number; signals: { signal: string }[] };
    expect(matched.total).toBe(3);
    expect(matched.signals.map((s) => s.signal)).toEqual(["Gear", "DoorState"]);
    expect(await gw.metric("dbc_signal_value", { message: "Gearbox", signal: "OilTemp", unit: "degC", bus: "can0" })).toBe(-10);
    expect(await gw.metric("dbc_signal_value", { signal: "P1Volt" })).toBe(12.5);
    expect((await gw.http("/metrics")).body).not.toContain('signal="Gear"');

    const catalogue = JSON.parse((await gw.http("/api/dbc")).body) as { messages: { name: string; idHex: string; signals: { name: string; valueNames?: Record<string, string> }[] }[] };
    expect(catalogue.messages.length).toBe(10);
    expect(catalogue.messages.find((m) => m.name === "Gearbox")!.signals.find((s) => s.name === "Gear")!.valueNames).toEqual({ 0: "P", 1: "R", 2: "N", 3: "D" });
    expect(catalogue.messages.find((m) => m.name === "FdBig")!.idHex).toBe("18FECA15");

    // SIGHUP with a changed file: the new unit shows, the client is still connected and decoded.
    writeFileSync(file, readFileSync(FIXTURE, "utf8").replace('(1,-40) [-40|215] "degC"', '(1,-40) [-40|215] "°C"'));
    gw.proc.kill("SIGHUP");
    await gw.waitFor("dbc_reloaded");
    client.send(dataFrame(0x106, [0b0111, 31]));
    expect(await waitSignal("Gearbox.OilTemp", -9)).toMatchObject({ unit: "°C" });
    // A broken file on SIGHUP: logged, the previous DBC stays.
    writeFileSync(file, "BO_ 1 X: 8 Y\n SG_ Q : 0|8@1+ (1,0) [0|1]\n");
    gw.proc.kill("SIGHUP");
    const failed = await gw.waitFor("dbc_reload_failed");
    expect(String(failed.error)).toContain(`${file}:2: expected the quoted unit of signal Q`);
    client.send(dataFrame(0x106, [0b0111, 32]));
    await waitSignal("Gearbox.OilTemp", -8);
    expect(await gw.metric("dbc_reloads_total")).toBe(1);
    expect(await gw.metric("dbc_reload_failures_total")).toBe(1);
    expect(gw.proc.exitCode).toBeNull();
    client.close();
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 30_000);

test("several buses: each [[bus]] with its own dbc, /api/signals?bus=, a bad bus file exits 2 naming the bus", async () => {
  const other = join(dir, "other.dbc");
  writeFileSync(other, 'BO_ 262 Other: 2 X\n SG_ Whole : 0|16@1+ (1,0) [0|65535] "rpm" X\n');
  const file = join(dir, "buses.toml");
  const toml = (bDbc: string) =>
    `[[bus]]\nname = "body"\nbackend = "virtual"\nlisten = "127.0.0.1:0"\ndbc = "${FIXTURE}"\n\n[[bus]]\nname = "chassis"\nbackend = "virtual"\nlisten = "127.0.0.1:0"\ndbc = "${bDbc}"\n`;
  writeFileSync(file, toml(join(dir, "missing.dbc")));
  const bad = await run(["-config", file]);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toBe(`can-server: configuration error: bus chassis: dbc: cannot read DBC file ${join(dir, "missing.dbc")}: no such file\n`);

  writeFileSync(file, toml(other));
  const gw = await startGatewayProcess(["-config", file]);
  try {
    const body = await CannelloniTestClient.connect(gw.ports["cannelloni@body"]!);
    const chassis = await CannelloniTestClient.connect(gw.ports["cannelloni@chassis"]!);
    await body.handshake();
    await chassis.handshake();
    // The same id means different things on the two buses.
    body.send(dataFrame(0x106, [0b0110, 130]));
    chassis.send(dataFrame(0x106, [0x34, 0x12]));
    const get = async (q: string) => JSON.parse((await gw.http(`/api/signals${q}`)).body) as { bus: string; buses: string[]; signals: { message: string; signal: string; value: number }[]; error?: string };
    const deadline = Date.now() + 5000;
    while ((await get("?bus=chassis")).signals.length === 0 && Date.now() < deadline) await Bun.sleep(20);
    const c = await get("?bus=chassis");
    expect(c.bus).toBe("chassis");
    expect(c.buses).toEqual(["body", "chassis"]);
    expect(c.signals.map((s) => `${s.message}.${s.signal}=${s.value}`)).toEqual(["Other.Whole=4660"]);
    while ((await get("")).signals.length < 3 && Date.now() < deadline) await Bun.sleep(20);
    expect((await get("")).bus).toBe("body");
    expect((await get("?bus=body")).signals.map((s) => s.message)).toEqual(["Gearbox", "Gearbox", "Gearbox"]);
    const none = await gw.http("/api/signals?bus=nope");
    expect(none.status).toBe(404);
    expect(JSON.parse(none.body).error).toBe("no signals on bus 'nope' (buses with signals: body, chassis)");
    expect(JSON.parse((await gw.http("/api/dbc?bus=chassis")).body).messages.map((m: { name: string }) => m.name)).toEqual(["Other"]);
    body.close();
    chassis.close();
  } finally {
    expect(await gw.stop()).toBe(0);
  }
}, 30_000);
