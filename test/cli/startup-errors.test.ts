/**
 * Start-up errors that say what to do, from the real process (`bun src/main.ts …`):
 * - bad configuration exits 2 with exactly one line: conflicting listen addresses (caught while
 *   reading flags), `-backend replay` without `-replay-file`, `-replay-speed fast` (each printed
 *   twice with exit 1 before);
 * - a port in use names the process holding it (here: this test process), or, when the kernel
 *   hides it (the gateway runs as another user, via setpriv), how to find it;
 * - a privileged port without the capability names CAP_NET_BIND_SERVICE (the gateway runs as
 *   nobody with no capabilities, via setpriv; root only);
 * - `ready` is logged only when /ready answers 200: with a missing serial adapter the log says
 *   `listening` and `waiting_for_backend`, and /ready says 503.
 */
import { afterEach, describe, expect, test } from "bun:test";
import type { Subprocess, TCPSocketListener } from "bun";
import { realpathSync } from "node:fs";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const BUN = realpathSync(process.execPath);
const procs: Subprocess[] = [];
let holder: TCPSocketListener<undefined> | null = null;
let gw: GatewayProcess | null = null;
afterEach(async () => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  holder?.stop(true);
  holder = null;
  await gw?.stop();
  gw = null;
});

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) env[k] = v;
  return env;
}

/** Unprivileged and without capabilities, as the packaged unit runs it (root can drop to it). */
const AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"];
const canDrop = process.getuid?.() === 0 && Bun.spawnSync(["sh", "-c", "command -v setpriv"]).exitCode === 0;

async function run(args: string[], prefix: string[] = []): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn([...prefix, BUN, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: cleanEnv() });
  procs.push(p);
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr };
}

/** The line a user reads: the `can-server: …` line (the log line before it says the same). */
function userLine(stderr: string): string {
  return stderr.split("\n").find((l) => l.startsWith("can-server: ")) ?? "";
}

describe("bad configuration: exit 2, one line", () => {
  const cases: [string, string[], RegExp][] = [
    ["two protocols on one port", ["-backend", "virtual", "-listen", ":20000", "-waveshare-listen", ":20000"], /-listen :20000 and -waveshare-listen :20000 both listen on TCP port 20000/],
    ["a protocol and the HTTP endpoint on one port", ["-backend", "virtual", "-listen", "127.0.0.1:20000", "-metrics-addr", ":20000"], /-listen 127\.0\.0\.1:20000 and -metrics-addr :20000 both listen on TCP port 20000/],
    ["-backend replay without -replay-file", ["-backend", "replay"], /-backend replay needs -replay-file/],
    ["-replay-speed fast", ["-backend", "replay", "-replay-file", "/dev/null", "-replay-speed", "fast"], /invalid value "fast" for -replay-speed/],
    ["a -replay-file that does not exist", ["-backend", "replay", "-replay-file", "/nonexistent/night.log"], /-replay-file "\/nonexistent\/night.log" cannot be read: no such file/],
  ];
  for (const [name, args, want] of cases) {
    test(name, async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(want);
    });
  }

  test("the same port on different transports or different hosts is fine", async () => {
    gw = await startGatewayProcess(["-listen", "127.0.0.1:0", "-cannelloni-udp-listen", "127.0.0.1:20417", "-waveshare-listen", "127.0.0.2:20417"]);
    await gw.waitFor("ready");
  });
});

describe("a port that cannot be bound says why and what to do", () => {
  function holdPort(): number {
    holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    return holder.port;
  }

  test("in use: names the process holding it", async () => {
    const port = holdPort();
    const r = await run(["-backend", "virtual", "-listen", `127.0.0.1:${port}`]);
    expect(r.code).toBe(1);
    expect(userLine(r.stderr)).toBe(`can-server: cannot listen on 127.0.0.1:${port} for cannelloni: address in use by process ${process.pid} (bun); stop it (an old go-ampio-server?) or choose another port`);
  });

  test.skipIf(!canDrop)("in use, holder hidden from us (another user): says how to find it", async () => {
    const port = holdPort();
    const r = await run(["-backend", "virtual", "-listen", "127.0.0.1:20999", "-waveshare-listen", `127.0.0.1:${port}`], AS_NOBODY);
    expect(r.code).toBe(1);
    expect(userLine(r.stderr)).toBe(
      `can-server: cannot listen on 127.0.0.1:${port} for waveshare: address in use by another program (find it with: ss -ltnp 'sport = :${port}'); stop it or choose another TCP port`,
    );
  });

  test.skipIf(!canDrop)("a port below 1024 without the capability: names CAP_NET_BIND_SERVICE", async () => {
    const r = await run(["-backend", "virtual", "-listen", "127.0.0.1:20998", "-gvret-listen", "127.0.0.1:23"], AS_NOBODY);
    expect(r.code).toBe(1);
    const line = userLine(r.stderr);
    expect(line).toStartWith("can-server: cannot listen on 127.0.0.1:23 for gvret: permission denied: ports below 1024 need the CAP_NET_BIND_SERVICE capability");
    expect(line).toContain("AmbientCapabilities=CAP_NET_BIND_SERVICE");
    expect(line).toContain("or use a port of 1024 or above");
  });
});

describe("`ready` only when /ready says so", () => {
  test("a missing serial adapter: `listening` and `waiting_for_backend`, no `ready`, /ready 503", async () => {
    gw = await startGatewayProcess(["-backend", "serial", "-serial", "/dev/nonexistent-can-adapter"]);
    const waiting = await gw.waitFor("waiting_for_backend");
    expect(String(waiting.reason)).toContain("serial");
    await Bun.sleep(600);
    expect((await gw.http("/ready")).status).toBe(503);
    expect(gw.lines.some((l) => l.msg === "ready")).toBe(false);
  });

  test("a bus that is up: `listening`, then `ready` with the listeners", async () => {
    gw = await startGatewayProcess([]);
    const ready = await gw.waitFor("ready");
    expect(String(ready.listeners)).toMatch(/^cannelloni=\d+$/);
    expect((await gw.http("/ready")).status).toBe(200);
    expect(gw.lines.findIndex((l) => l.msg === "listening")).toBeLessThan(gw.lines.findIndex((l) => l.msg === "ready"));
  });
});
