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
  const p = Bun.spawn(["bun", MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: cleanEnv(env) });
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

test("bad environment variable: exit code 2 naming the variable", async () => {
  const r = await runToEnd([], { CAN_SERVER_HUB_BUFFER: "lots" });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("CAN_SERVER_HUB_BUFFER");
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
  const p = Bun.spawn(["bun", MAIN, "-backend", "virtual", "-listen", "127.0.0.1:0", "-log-format", "json"], {
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
  expect(summary).toMatchObject({ accepted: 2, connectedAtShutdown: 2, abortedAtDeadline: 0 });
});
