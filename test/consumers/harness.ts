/**
 * Test parts for the consumers: a real Mosquitto broker (Debian's `mosquitto`, on a loopback port,
 * with its own config file in a temp dir; optional password file), `mosquitto_sub` and
 * `mosquitto_pub` as the independent MQTT client, and an in-process gateway on the virtual bus
 * with the consumers wired as main.ts wires them (src/consumers/consumers.ts).
 */
import type { Subprocess } from "bun";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { type Consumers, type ConsumerOverrides, createConsumers } from "../../src/consumers/consumers.ts";
import type { MqttBridge } from "../../src/consumers/mqtt/bridge.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import type { WallClock } from "../../src/can/clock.ts";
import { Stats } from "../../src/ops/stats.ts";

/** A free loopback TCP port (bound and released). */
export function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = l.port;
  l.stop(true);
  return p;
}

export async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** A TLS listener instead of the plain one: its certificate, the CA, the loopback addresses to listen on (one port). */
export interface MosquittoTls {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
  readonly hosts?: readonly string[];
}

/** The gateway's MQTT bridge (the test configured one). */
export function bridgeOf(gw: ConsumerGateway): MqttBridge {
  const b = gw.consumers.bridge();
  if (b === null) throw new Error("no bridge");
  return b;
}

export class Mosquitto {
  private proc: Subprocess<"ignore", "pipe", "pipe"> | null = null;
  private stderrText = "";
  readonly dir: string;
  readonly port: number;
  readonly url: string;

  constructor(opts: { users?: Record<string, string>; tls?: MosquittoTls } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), "can-server-mosquitto-"));
    chmodSync(this.dir, 0o755); // mosquitto started as root reads its files as user mosquitto
    this.port = freePort();
    this.url = `${opts.tls ? "mqtts" : "mqtt"}://127.0.0.1:${this.port}`;
    const lines = ["persistence false", "log_dest stderr", "log_type error", "log_type warning"];
    if (opts.tls) {
      const { ca, cert, key } = opts.tls;
      for (const h of opts.tls.hosts ?? ["127.0.0.1"]) lines.push(`listener ${this.port} ${h}`, `cafile ${ca}`, `certfile ${cert}`, `keyfile ${key}`);
    } else lines.push(`listener ${this.port} 127.0.0.1`);
    if (opts.users) {
      const pw = join(this.dir, "passwd");
      writeFileSync(pw, "");
      for (const [u, p] of Object.entries(opts.users)) {
        const r = Bun.spawnSync(["mosquitto_passwd", "-b", pw, u, p]);
        if (r.exitCode !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr.toString()}`);
      }
      lines.push("allow_anonymous false", `password_file ${pw}`);
    } else lines.push("allow_anonymous true");
    writeFileSync(join(this.dir, "mosquitto.conf"), lines.join("\n") + "\n");
  }

  /** The broker's URL with another host name for the same loopback port (e.g. "localhost"). */
  urlFor(host: string): string {
    return this.url.replace("127.0.0.1", host);
  }

  /** What the broker wrote to stderr since it was (re)started. */
  get stderr(): string {
    return this.stderrText;
  }

  /** Starts the broker and waits until it accepts connections. */
  async start(): Promise<void> {
    this.stderrText = "";
    const p = Bun.spawn(["mosquitto", "-c", join(this.dir, "mosquitto.conf")], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    this.proc = p;
    void (async () => {
      for await (const chunk of p.stderr) this.stderrText += new TextDecoder().decode(chunk);
    })();
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        const s = await Bun.connect({ hostname: "127.0.0.1", port: this.port, socket: { data() {} } });
        s.end();
        return;
      } catch {
        if (Date.now() > deadline || p.exitCode !== null) throw new Error(`mosquitto did not start (exit ${p.exitCode}): ${this.stderrText}`);
        await Bun.sleep(20);
      }
    }
  }

  /** SIGKILL (no goodbye to its clients, as a crash or a power cut). */
  async kill(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (p === null) return;
    p.kill("SIGKILL");
    await p.exited;
  }

  /** Freezes / thaws the broker process (a broker that stops reading). */
  pause(): void {
    this.proc?.kill("SIGSTOP");
  }
  resume(): void {
    this.proc?.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    this.resume();
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface MqttMessage {
  topic: string;
  payload: string;
  retained: boolean;
}

/** A `mosquitto_sub` process; every message with its retain flag. */
export class MqttSub {
  readonly messages: MqttMessage[] = [];
  private readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  private readonly done: Promise<void>;

  private constructor(port: number, topic: string, extra: string[]) {
    // %r = retain flag, %t = topic, %p = payload; one message per line.
    this.proc = Bun.spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p", String(port), "-t", topic, "-F", "%r %t %p", "-q", "1", ...extra], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    this.done = this.read();
  }

  static async start(port: number, topic: string, extra: string[] = []): Promise<MqttSub> {
    const s = new MqttSub(port, topic, extra);
    await Bun.sleep(150); // subscribed (mosquitto_sub has no "ready" signal)
    return s;
  }

  private async read(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.proc.stdout) {
      buf += dec.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^([01]) (\S+) ?(.*)$/.exec(line);
        if (m) this.messages.push({ retained: m[1] === "1", topic: m[2]!, payload: m[3]! });
      }
    }
  }

  on(topic: string): MqttMessage[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  async waitTopic(topic: string, timeoutMs = 5000, pred: (m: MqttMessage) => boolean = () => true): Promise<MqttMessage> {
    await waitFor(() => this.messages.some((m) => m.topic === topic && pred(m)), timeoutMs, `MQTT message on ${topic} (have ${this.messages.length} messages)`);
    return this.messages.find((m) => m.topic === topic && pred(m))!;
  }

  async stop(): Promise<void> {
    this.proc.kill();
    await this.proc.exited;
    await this.done.catch(() => {});
  }
}

/** One `mosquitto_pub` message; resolves with its exit code. */
export async function mqttPub(port: number, topic: string, payload: string | null, extra: string[] = []): Promise<number> {
  const body = payload === null ? ["-n"] : ["-m", payload];
  const p = Bun.spawn(["mosquitto_pub", "-h", "127.0.0.1", "-p", String(port), "-t", topic, ...body, ...extra], { stdout: "ignore", stderr: "pipe" });
  return await p.exited;
}

export interface ConsumerGateway {
  gateway: Gateway;
  backend: VirtualBackend;
  consumers: Consumers;
  stats: Stats;
  config: Config;
  lines: string[];
  events(): { msg: string; [k: string]: unknown }[];
  stop(): Promise<void>;
}

/** A gateway on the virtual bus (127.0.0.1, ephemeral ports) with the decoder and bridge as main.ts wires them. */
export async function startConsumerGateway(overrides: Partial<Config>, consumerOverrides: ConsumerOverrides = {}, clock?: WallClock): Promise<ConsumerGateway> {
  const config: Config = { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", ...overrides };
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const backend = new VirtualBackend({ stats, log, fd: config.fd });
  const consumers = createConsumers(config, log, { mqttBackoff: { initialMs: 50, maxMs: 400 }, ...consumerOverrides });
  const gateway = await startGateway(config, { stats, log, backend, initialFrames: consumers.initialFrames, clock });
  await consumers.start(gateway);
  let stopped = false;
  return {
    gateway,
    backend,
    consumers,
    stats,
    config,
    lines,
    events: () => lines.map((l) => JSON.parse(l) as { msg: string }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await consumers.stop();
      await gateway.shutdown(500);
    },
  };
}
