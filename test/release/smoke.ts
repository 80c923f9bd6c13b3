/**
 * End-to-end smoke test of a compiled can-server binary (scripts/release-test.sh runs it for the
 * x64 binary natively and for the arm64 one under qemu-aarch64-static -cpu cortex-a53):
 * starts it on the virtual bus with ephemeral ports on 127.0.0.1, checks -version, exchanges
 * frames between two cannelloni clients through the gateway (the virtual bus echoes client frames
 * to the other clients), scrapes /metrics, /ready and /healthz, loads the dashboard's embedded
 * files (page, uPlot, favicon) and checks the logged dashboard URL, then sends SIGTERM and requires
 * exit code 0 within a second. The cannelloni client here is a few lines written against the
 * spec, independent of src/protocols. Then the binary reads only the configuration it was given:
 * started in a directory holding a `.env` (CAN_SERVER_LISTEN=127.0.0.1:<free port> and more) and a
 * `bunfig.toml` with a preload script, it must behave exactly as without them (issue 9 item 8;
 * scripts/build.sh compiles with --no-compile-autoload-dotenv --no-compile-autoload-bunfig).
 * Prints one JSON line of measurements at the end.
 *
 * Usage: bun test/release/smoke.ts <binary> [expected-version] [-- runner args...]
 *   e.g. bun test/release/smoke.ts dist/can-server-linux-arm64/can-server 0.1.0 -- qemu-aarch64-static -cpu cortex-a53
 */
import type { Socket, Subprocess } from "bun";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const argv = process.argv.slice(2);
const dashdash = argv.indexOf("--");
const [binary, expectedVersion] = dashdash >= 0 ? argv.slice(0, dashdash) : argv;
const runner = dashdash >= 0 ? argv.slice(dashdash + 1) : [];
if (!binary) {
  console.error("usage: bun test/release/smoke.ts <binary> [expected-version] [-- runner args...]");
  process.exit(2);
}
const label = runner.length > 0 ? `${runner.join(" ")} ${binary}` : binary;
// Emulated start-up is slow (the whole runtime is translated); these bound hangs, they are not assertions on speed.
const STARTUP_TIMEOUT_MS = runner.length > 0 ? 60_000 : 15_000;
const STEP_TIMEOUT_MS = runner.length > 0 ? 20_000 : 5_000;
const EXIT_LIMIT_MS = 1000;

let child: Subprocess<"ignore", "pipe", "pipe"> | null = null;
const failures: string[] = [];
function check(ok: boolean, what: string): void {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}
function fatal(msg: string): never {
  console.log(`FAIL ${msg}`);
  child?.kill("SIGKILL");
  process.exit(1);
}
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e instanceof Error ? e : new Error(String(e)))),
    );
  });
}

// --- -version ---
{
  const r = Bun.spawnSync([...runner, binary, "-version"], { stdout: "pipe", stderr: "pipe", timeout: STEP_TIMEOUT_MS * 3 });
  const out = r.stdout.toString().trim();
  check(r.exitCode === 0 && /^can-server \S+ \(commit \S+, built \S+\)$/.test(out), `-version prints version, commit, date: ${JSON.stringify(out)}`);
  if (expectedVersion) check(out.startsWith(`can-server ${expectedVersion} `), `-version reports ${expectedVersion}`);
  check(!out.includes("commit unknown"), "-version carries the injected commit");
}

// --- start ---
const logLines: Record<string, unknown>[] = [];
const logWaiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = [];
function onLog(line: Record<string, unknown>): void {
  logLines.push(line);
  for (let i = logWaiters.length - 1; i >= 0; i--) {
    if (logWaiters[i]!.pred(line)) logWaiters.splice(i, 1)[0]!.resolve(line);
  }
}
function waitLog(pred: (l: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>> {
  const hit = logLines.find(pred);
  if (hit) return Promise.resolve(hit);
  return withTimeout(new Promise((resolve) => logWaiters.push({ pred, resolve })), ms, what);
}

const t0 = performance.now();
child = Bun.spawn(
  [...runner, binary, "-backend", "virtual", "-listen", "127.0.0.1:0", "-metrics-addr", "127.0.0.1:0", "-log-format", "json", "-mdns-enable", "false"],
  { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
);
const proc = child;
let stderrText = "";
void (async () => {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of proc.stderr) {
    const s = dec.decode(chunk, { stream: true });
    stderrText += s;
    buf += s;
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        onLog(JSON.parse(text) as Record<string, unknown>);
      } catch {
        onLog({ raw: text });
      }
    }
  }
})();
void (async () => {
  for await (const _ of proc.stdout);
})();

let ready: Record<string, unknown>;
let metricsListen: Record<string, unknown>;
try {
  ready = await waitLog((l) => l["msg"] === "ready", STARTUP_TIMEOUT_MS, "log line msg=ready");
  metricsListen = await waitLog((l) => l["msg"] === "metrics_listen", STEP_TIMEOUT_MS, "log line msg=metrics_listen");
} catch (e) {
  fatal(`${(e as Error).message}\n--- gateway output ---\n${stderrText}`);
}
const startupMs = performance.now() - t0;
const cnlPort = Number(/cannelloni=(\d+)/.exec(String(ready["listeners"]))?.[1]);
const httpPort = Number(/:(\d+)$/.exec(String(metricsListen["addr"]))?.[1]);
check(cnlPort > 0 && httpPort > 0, `bound ports reported (cannelloni ${cnlPort}, http ${httpPort})`);

// --- cannelloni exchange: A → gateway → B and B → gateway → A ---
const HELLO = "CANNELLONIv1";
interface TestFrame {
  id: number;
  data: number[];
}
class Client {
  private buf: number[] = [];
  private helloSeen = false;
  readonly frames: TestFrame[] = [];
  private wake: (() => void) | null = null;
  private constructor(private readonly socket: Socket<undefined>) {}
  static async connect(port: number): Promise<Client> {
    let client: Client | null = null;
    const pending: Uint8Array[] = [];
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data(_s, chunk) {
          if (client) client.feed(chunk);
          else pending.push(chunk);
        },
      },
    });
    client = new Client(socket);
    for (const c of pending) client.feed(c);
    socket.write(HELLO);
    return client;
  }
  private feed(chunk: Uint8Array): void {
    this.buf.push(...chunk);
    if (!this.helloSeen) {
      if (this.buf.length < HELLO.length) return;
      const hello = String.fromCharCode(...this.buf.slice(0, HELLO.length));
      if (hello !== HELLO) fatal(`bad server hello ${JSON.stringify(hello)}`);
      this.buf = this.buf.slice(HELLO.length);
      this.helloSeen = true;
    }
    // Classic frames only: id u32 BE, len u8, data.
    while (this.buf.length >= 5) {
      const len = this.buf[4]!;
      if (this.buf.length < 5 + len) break;
      const id = ((this.buf[0]! << 24) | (this.buf[1]! << 16) | (this.buf[2]! << 8) | this.buf[3]!) >>> 0;
      this.frames.push({ id, data: this.buf.slice(5, 5 + len) });
      this.buf = this.buf.slice(5 + len);
    }
    this.wake?.();
  }
  send(f: TestFrame): void {
    this.socket.write(Uint8Array.from([(f.id >>> 24) & 0xff, (f.id >>> 16) & 0xff, (f.id >>> 8) & 0xff, f.id & 0xff, f.data.length, ...f.data]));
  }
  async waitFrame(pred: (f: TestFrame) => boolean, ms: number, what: string): Promise<TestFrame> {
    const deadline = performance.now() + ms;
    for (;;) {
      const hit = this.frames.find(pred);
      if (hit) return hit;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await withTimeout(new Promise<void>((r) => (this.wake = r)), left, what).catch(() => {});
    }
  }
  close(): void {
    this.socket.end();
  }
}

const a = await Client.connect(cnlPort);
const b = await Client.connect(cnlPort);
// Both handshakes complete before frames flow (hub_active_clients counts sessions after the hello).
const httpGet = (path: string) => fetch(`http://127.0.0.1:${httpPort}${path}`);
const deadline = performance.now() + STEP_TIMEOUT_MS;
while (performance.now() < deadline) {
  const m = /^hub_active_clients (\d+)$/m.exec(await (await httpGet("/metrics")).text());
  if (m && Number(m[1]) >= 2) break;
  await Bun.sleep(20);
}
try {
  a.send({ id: 0x123, data: [0xde, 0xad, 0xbe, 0xef] });
  const got = await b.waitFrame((f) => f.id === 0x123, STEP_TIMEOUT_MS, "frame 0x123 at client B");
  check(JSON.stringify(got.data) === JSON.stringify([0xde, 0xad, 0xbe, 0xef]), "client A → gateway → client B carries id and data");
  b.send({ id: 0x80001234, data: [1, 2, 3, 4, 5, 6, 7, 8] });
  const back = await a.waitFrame((f) => f.id === 0x80001234, STEP_TIMEOUT_MS, "extended frame at client A");
  check(back.data.length === 8 && back.data[7] === 8, "client B → gateway → client A carries an extended 8-byte frame");
} catch (e) {
  check(false, (e as Error).message);
}

// --- HTTP ---
const metricsRes = await httpGet("/metrics");
const metrics = await metricsRes.text();
check(metricsRes.status === 200 && (metricsRes.headers.get("content-type") ?? "").startsWith("text/plain; version=0.0.4"), "/metrics 200 in the Prometheus text format");
const value = (series: string): number => Number(new RegExp(`^${series.replace(/[{}"=]/g, "\\$&")} (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
check(value("tcp_rx_frames_total") >= 2, `tcp_rx_frames_total counts the client frames (${value("tcp_rx_frames_total")})`);
check(value("tcp_tx_frames_total") >= 2, `tcp_tx_frames_total counts the delivered frames (${value("tcp_tx_frames_total")})`);
check(value("backend_up") === 1, "backend_up 1 on the virtual bus");
check(/^build_info\{version="[^"]+",commit="[^"]+",date="[^"]+"\} 1$/m.test(metrics), "build_info present");
if (expectedVersion) check(metrics.includes(`build_info{version="${expectedVersion}"`), `build_info version ${expectedVersion}`);
for (const name of ["serial_rx_frames_total", "socketcan_tx_frames_total", "hub_dropped_frames_total", "hub_queue_depth_avg", "malformed_frames_total"]) {
  check(new RegExp(`^# TYPE ${name} `, "m").test(metrics), `/metrics has ${name}`);
}
check(/^errors_total\{where="tcp_read"\} 0$/m.test(metrics), "errors_total{where} pre-registered");
const readyRes = await httpGet("/ready");
check(readyRes.status === 200 && (await readyRes.text()) === "ready\n", "/ready 200 'ready'");
const healthRes = await httpGet("/healthz");
check(healthRes.status === 200, "/healthz 200");
check((await httpGet("/nope")).status === 404, "unknown path 404");
// The dashboard's files are embedded in the release build (minified, bytecode): page, uPlot, favicon.
{
  const page = await httpGet("/");
  const html = await page.text();
  check(page.status === 200 && html.includes("<title>can-server</title>") && html.includes("/assets/uplot.js"), "dashboard page / served from the binary");
  const uplot = await httpGet("/assets/uplot.js");
  check(uplot.status === 200 && (await uplot.text()).includes("uPlot"), "uPlot served from the binary (/assets/uplot.js)");
  const icon = await httpGet("/favicon.svg");
  check(icon.status === 200 && icon.headers.get("content-type") === "image/svg+xml", "favicon served from the binary");
}
{
  const dash = logLines.find((l) => l["msg"] === "dashboard");
  check(dash !== undefined && String(dash["urls"]).startsWith(`http://127.0.0.1:${httpPort}/`), "start-up logs the dashboard URL");
}

// --- idle RSS (of the process we spawned: under qemu that is the emulator, translation cache included) ---
await Bun.sleep(500);
const status = await Bun.file(`/proc/${proc.pid}/status`).text().catch(() => "");
const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);

// --- SIGTERM → exit 0 within a second ---
const tTerm = performance.now();
proc.kill("SIGTERM");
const code = await Promise.race([proc.exited, Bun.sleep(STEP_TIMEOUT_MS).then(() => null)]);
const exitMs = performance.now() - tTerm;
if (code === null) proc.kill("SIGKILL");
check(code === 0, `exit code 0 after SIGTERM (got ${code})`);
check(exitMs <= EXIT_LIMIT_MS, `exited within ${EXIT_LIMIT_MS} ms of SIGTERM (${exitMs.toFixed(0)} ms)`);
a.close();
b.close();

// --- the binary reads only the configuration it was given: .env / bunfig.toml in its cwd ignored ---
async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}
async function configIsolation(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "can-server-cwd-"));
  try {
    const listenPort = await freePort();
    const wavesharePort = await freePort();
    const marker = join(dir, "preload-ran");
    // Every file name Bun's loader reads (.env, .env.production, .env.local) and its bunfig.
    const dotenv = `CAN_SERVER_LISTEN=127.0.0.1:${listenPort}\nCAN_SERVER_WAVESHARE_LISTEN=127.0.0.1:${wavesharePort}\nCAN_SERVER_LOG_FORMAT=json\n`;
    for (const name of [".env", ".env.production", ".env.local"]) writeFileSync(join(dir, name), dotenv);
    writeFileSync(join(dir, "bunfig.toml"), `preload = ["./preload.js"]\n`);
    writeFileSync(join(dir, "preload.js"), `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "1");\nconsole.error("PRELOAD RAN");\n`);
    // Readable by the unprivileged runner too, or the test could not fail under it.
    chmodSync(dir, 0o777);
    for (const name of [".env", ".env.production", ".env.local", "bunfig.toml", "preload.js"]) chmodSync(join(dir, name), 0o644);

    // No -listen or -log-format flag and no CAN_SERVER_* in the environment: only the .env could
    // move the listener or switch the logs to JSON. Without it the gateway logs text and listens
    // on the default :20000 (or, if another program holds that port, fails naming it): either
    // way it never touches the .env's port.
    const p = Bun.spawn([...runner, resolve(binary!), "-backend", "virtual", "-metrics-addr", "127.0.0.1:0", "-mdns-enable", "false"], {
      cwd: dir,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    });
    let text = "";
    const drained = (async () => {
      const dec = new TextDecoder();
      for await (const chunk of p.stderr) text += dec.decode(chunk, { stream: true });
    })();
    void (async () => {
      for await (const _ of p.stdout);
    })();
    const startDeadline = performance.now() + STARTUP_TIMEOUT_MS;
    let exited: number | null = null;
    void p.exited.then((c) => (exited = c));
    while (!/ msg=ready( |$)/m.test(text) && !text.includes('"msg":"ready"') && exited === null && performance.now() < startDeadline) await Bun.sleep(20);
    if (exited === null) p.kill("SIGTERM");
    const code = await Promise.race([p.exited, Bun.sleep(STEP_TIMEOUT_MS).then(() => null)]);
    if (code === null) p.kill("SIGKILL");
    await Promise.race([drained, Bun.sleep(1000)]);
    // logfmt (key=value or key="quoted"); JSON lines are read too, so a failure says what happened.
    const logfmt = (line: string): Record<string, string> =>
      Object.fromEntries(Array.from(line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g), (m) => [m[1]!, m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!]));
    const raw = text.split("\n").filter((l) => l !== "" && !l.startsWith("can-server: "));
    const parse = (l: string): Record<string, string> => {
      if (!l.startsWith("{")) return logfmt(l);
      try {
        return Object.fromEntries(Object.entries(JSON.parse(l) as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      } catch {
        return {};
      }
    };
    const lines = raw.map(parse);
    const startedOk = lines.some((l) => l["msg"] === "ready");
    check(raw.length > 0 && raw.every((l) => l.startsWith("time=")), "CAN_SERVER_LOG_FORMAT=json in ./.env is ignored (logs stay text, the default)");
    // On the raw text, so a line in any format counts (the metrics port is ephemeral: skipped).
    const mentionsPort = (port: number) => raw.some((l) => !l.includes("metrics_listen") && new RegExp(`:${port}(?!\\d)`).test(l));
    check(!mentionsPort(listenPort), `CAN_SERVER_LISTEN=127.0.0.1:${listenPort} in ./.env is ignored`);
    check(!mentionsPort(wavesharePort) && !raw.some((l) => l.includes("waveshare")), "CAN_SERVER_WAVESHARE_LISTEN in ./.env is ignored (no Waveshare listener)");
    const cnl = lines.find((l) => l["msg"] === "tcp_listen" && l["protocol"] === "cannelloni");
    const triedDefault = cnl !== undefined ? /:20000$/.test(cnl["addr"] ?? "") : !startedOk && text.includes(":20000");
    check(triedDefault, `the cannelloni listener is on the default :20000 (${cnl ? cnl["addr"] : startedOk ? "no tcp_listen line" : "start failed on it: port held by another program"})`);
    check(!existsSync(marker) && !text.includes("PRELOAD RAN"), "the preload script named by ./bunfig.toml does not run");
    if (startedOk) check(code === 0, `exit code 0 after SIGTERM in the .env directory (got ${code})`);
    if (failures.length > 0) console.log(`--- gateway output in the .env directory ---\n${text}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
await configIsolation();

console.log(JSON.stringify({ smoke: label, startupMs: Math.round(startupMs), idleRssKb: rssKb, exitMs: Math.round(exitMs), failures: failures.length }));
if (failures.length > 0) {
  console.log(`--- gateway output ---\n${stderrText}`);
  process.exit(1);
}
