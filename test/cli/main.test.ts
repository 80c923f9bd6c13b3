/**
 * The can-server process as a user runs it (`bun src/main.ts …`): exit codes for bad config,
 * -version and -help output, and a full life cycle on the virtual bus — clients exchange frames,
 * SIGTERM flushes, logs a summary and exits 0.
 */
import { afterEach, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { dataFrame, formatFrame } from "../../src/can/frame.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const procs: Subprocess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
});

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) env[k] = v;
  return { ...env, ...extra };
}

async function runToEnd(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: cleanEnv(env) });
  procs.push(p);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

test("bad flag: one clear line, exit code 2", async () => {
  const r = await runToEnd(["-hub-policy", "block"]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toContain("-hub-policy");
  expect(r.stderr).toContain("drop|kick");
});

type LogLine = { msg: string; [k: string]: unknown };

/** Starts the program with JSON logs; `lines` fills as it logs. */
function startLogged(args: string[], env: Record<string, string> = {}): { p: Subprocess<"ignore", "pipe", "pipe">; lines: LogLine[]; done: Promise<void> } {
  const p = Bun.spawn([process.execPath, MAIN, ...args, "-log-format", "json"], { stdout: "pipe", stderr: "pipe", env: cleanEnv(env) });
  procs.push(p);
  const lines: LogLine[] = [];
  const done = (async () => {
    let buf = "";
    const decoder = new TextDecoder();
    for await (const chunk of p.stderr) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)) as LogLine);
        buf = buf.slice(nl + 1);
      }
    }
  })();
  return { p, lines, done };
}

async function waitFor(lines: LogLine[], msg: string, ms = 10_000): Promise<LogLine> {
  const deadline = Date.now() + ms;
  for (;;) {
    const l = lines.find((x) => x.msg === msg);
    if (l) return l;
    if (Date.now() > deadline) throw new Error(`no ${msg} line within ${ms} ms; got ${lines.map((x) => x.msg).join(",")}`);
    await Bun.sleep(10);
  }
}

test("bad environment values (accepted by go-ampio-server): one config_warning each, defaults kept, gateway runs", async () => {
  const env = { CAN_SERVER_BAUD: "0", CAN_SERVER_HUB_BUFFER: "0", CAN_SERVER_MDNS_ENABLE: "enabled", CAN_SERVER_METRICS: "9100" };
  const { p, lines, done } = startLogged(["-backend", "virtual", "-listen", "127.0.0.1:0"], env);
  await waitFor(lines, "ready");
  const warnings = lines.filter((l) => l.msg === "config_warning");
  expect(warnings.map((w) => [w.level, w.variable, w.value, w.kept])).toEqual([
    ["warn", "CAN_SERVER_BAUD", "0", "115200"],
    ["warn", "CAN_SERVER_HUB_BUFFER", "0", "512"],
    ["warn", "CAN_SERVER_MDNS_ENABLE", "enabled", "false"],
    ["warn", "CAN_SERVER_METRICS", "9100", ""],
  ]);
  for (const w of warnings) expect(String(w.reason)).toContain(String(w.variable));
  // The warnings come first, before the gateway says it is starting.
  expect(lines.findIndex((l) => l.msg === "starting")).toBe(warnings.length);
  // The gateway really works with the defaults: a client connects and is served.
  const listen = await waitFor(lines, "tcp_listen");
  const client = await CannelloniTestClient.connect(Number(String(listen.addr).split(":").pop()));
  await client.handshake();
  await waitFor(lines, "client_ready");
  p.kill("SIGTERM");
  expect(await p.exited).toBe(0);
  await done;
  await client.waitClosed();
});

test("a bad environment value is reported in the text log format too", async () => {
  const p = Bun.spawn([process.execPath, MAIN, "-backend", "virtual", "-listen", "127.0.0.1:0"], {
    stdout: "pipe",
    stderr: "pipe",
    env: cleanEnv({ CAN_SERVER_HUB_POLICY: "block" }),
  });
  procs.push(p);
  let text = "";
  const decoder = new TextDecoder();
  const deadline = Date.now() + 10_000;
  const reader = p.stderr.getReader();
  while (!text.includes("msg=ready") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  expect(text).toMatch(/level=warn msg=config_warning variable=CAN_SERVER_HUB_POLICY value=block kept=drop reason=/);
  expect(text.match(/config_warning/g)).toHaveLength(1);
  p.kill("SIGTERM");
  expect(await p.exited).toBe(0);
});

test("environment values that would widen access still exit 2: listen address and allowlists", async () => {
  for (const [k, v] of [
    ["CAN_SERVER_LISTEN", "127.0.0.1"],
    ["CAN_SERVER_ALLOW", "192.168.1.0/33"],
    ["CAN_SERVER_TX_ALLOW", "hass"],
  ] as const) {
    const r = await runToEnd(["-backend", "virtual"], { [k]: v });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain(k);
  }
});

test("bad flags still exit 2 even where the same environment value only warns", async () => {
  const r = await runToEnd(["-hub-buffer", "0"], { CAN_SERVER_BAUD: "0" });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("-hub-buffer");
  expect(r.stderr).not.toContain("config_warning");
});

test("-help and -version are unchanged by a bad environment value", async () => {
  const clean = await runToEnd(["-help"]);
  const h = await runToEnd(["-help"], { CAN_SERVER_BAUD: "0" });
  expect(h.code).toBe(0);
  expect(h.stdout).toBe(clean.stdout);
  expect(h.stderr).toBe("");
  const v = await runToEnd(["-version"], { CAN_SERVER_MDNS_ENABLE: "enabled" });
  expect(v.code).toBe(0);
  expect(v.stderr).toBe("");
});

test("-version and -help", async () => {
  const v = await runToEnd(["-version"]);
  expect(v.code).toBe(0);
  expect(v.stdout).toMatch(/^can-server \d+\.\d+\.\d+ \(commit \S+, built \S+\)\n$/);
  const h = await runToEnd(["--help"]);
  expect(h.code).toBe(0);
  expect(h.stdout).toContain("CAN_SERVER_HUB_POLICY");
});

test("listen port in use: exit code 1 with a clear message", async () => {
  const blocker = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  try {
    const r = await runToEnd(["-backend", "virtual", "-listen", `127.0.0.1:${blocker.port}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`127.0.0.1:${blocker.port}`);
  } finally {
    blocker.stop(true);
  }
});

test("life cycle: start on the virtual bus, exchange frames, SIGTERM → summary and exit 0", async () => {
  const p = Bun.spawn([process.execPath, MAIN, "-backend", "virtual", "-listen", "127.0.0.1:0", "-log-format", "json"], {
    stdout: "pipe",
    stderr: "pipe",
    env: cleanEnv(),
  });
  procs.push(p);
  const lines: { msg: string; [k: string]: unknown }[] = [];
  let buf = "";
  const reader = p.stderr.getReader();
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += new TextDecoder().decode(value);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    }
  })();
  const deadline = Date.now() + 10_000;
  while (!lines.some((l) => l.msg === "ready") && Date.now() < deadline) await Bun.sleep(10);
  const listen = lines.find((l) => l.msg === "tcp_listen");
  expect(listen).toBeDefined();
  const port = Number(String(listen!.addr).split(":").pop());

  const a = await CannelloniTestClient.connect(port, { helloFirst: true });
  const b = await CannelloniTestClient.connect(port);
  await a.handshake({ helloFirst: true });
  await b.handshake();
  while (lines.filter((l) => l.msg === "client_ready").length < 2 && Date.now() < deadline) await Bun.sleep(10);
  a.send(dataFrame(0x123, [0xca, 0xfe]));
  expect((await b.waitFrames(1)).map(formatFrame)).toEqual(["123#CAFE"]);

  const t0 = Date.now();
  p.kill("SIGTERM");
  const code = await p.exited;
  await pump;
  expect(code).toBe(0);
  expect(Date.now() - t0).toBeLessThan(5000); // a bound against hanging, not a speed target
  await a.waitClosed();
  await b.waitClosed();
  const summary = lines.find((l) => l.msg === "shutdown_summary");
  expect(summary).toMatchObject({ accepted: 2, connected_at_shutdown: 2, aborted_at_deadline: 0 });
});
