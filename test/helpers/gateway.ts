/**
 * Starts a real gateway (real listeners on 127.0.0.1, ephemeral ports) on the virtual bus, with
 * counters and log lines exposed for assertions; GatewayPerTest gives a test file one such gateway
 * per test and closes it, and every client the test opened, after each test.
 */
import { afterEach } from "bun:test";
import { VirtualBackend } from "../../src/backends/virtual/virtual-backend.ts";
import { dataFrame, formatFrame, type CanFrame } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { defaultConfig } from "../../src/cli/parse.ts";
import { startGateway, type Gateway } from "../../src/gateway.ts";
import type { WallClock } from "../../src/can/clock.ts";
import { memoryLogger } from "../../src/ops/log.ts";
import { Stats } from "../../src/ops/stats.ts";
import { CannelloniTestClient } from "./cannelloni-client.ts";
import { WaveshareTestClient } from "./waveshare-client.ts";

export interface TestGateway {
  gateway: Gateway;
  backend: VirtualBackend;
  stats: Stats;
  lines: string[];
  config: Config;
  port: number;
  /** Log events (msg field) seen so far. */
  events(): { msg: string; [k: string]: unknown }[];
  stop(): Promise<void>;
}

/** `clock`: the frame clock (a ManualClock steps it like NTP would); the system clock by default. */
export async function startTestGateway(overrides: Partial<Config> = {}, extra: { clock?: WallClock } = {}): Promise<TestGateway> {
  const config: Config = { ...defaultConfig(), backend: "virtual", listen: "127.0.0.1:0", ...overrides };
  const stats = new Stats();
  const { log, lines } = memoryLogger("debug");
  const backend = new VirtualBackend({ stats, log, fd: config.fd });
  const gateway = await startGateway(config, { stats, log, backend, clock: extra.clock });
  let stopped = false;
  return {
    gateway,
    backend,
    stats,
    lines,
    config,
    port: gateway.port("cannelloni")!,
    events: () => lines.map((l) => JSON.parse(l) as { msg: string }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await gateway.shutdown(500);
    },
  };
}

/**
 * Injects 8-byte frames in bursts of 2000 until `done()` or `count` frames; yields between bursts
 * so sockets can flush. Returns how many were injected (bounded, stops by itself).
 */
export async function flood(backend: VirtualBackend, count: number, done: () => boolean): Promise<number> {
  const payload = [1, 2, 3, 4, 5, 6, 7, 8];
  let sent = 0;
  while (sent < count && !done()) {
    for (let i = 0; i < 2000; i++) backend.inject(dataFrame(0x100 + (sent++ % 0x600), payload));
    await Bun.sleep(1);
  }
  return sent;
}

/** Polls `cond` every `stepMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000, stepMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(stepMs);
  }
}

/** Frames as candump text (`123#DEAD`), for comparing lists of frames. */
export const frameText = (fs: readonly CanFrame[]): string[] => fs.map(formatFrame);

/**
 * One gateway per test, started by the test with the listeners given here plus its own
 * overrides; after each test, every cleanup the test deferred runs (in order), then the gateway
 * stops. Create it at the top of a test file: it registers that afterEach.
 */
export class GatewayPerTest {
  private current: TestGateway | null = null;
  private readonly cleanups: (() => void | Promise<void>)[] = [];

  constructor(private readonly listeners: Partial<Config> = {}) {
    afterEach(async () => {
      for (const c of this.cleanups.splice(0)) await c();
      await this.current?.stop();
      this.current = null;
    });
  }

  async start(overrides: Partial<Config> = {}): Promise<TestGateway> {
    this.current = await startTestGateway({ ...this.listeners, ...overrides });
    return this.current;
  }

  /** The running gateway (start() first). */
  get gw(): TestGateway {
    if (!this.current) throw new Error("no gateway started in this test");
    return this.current;
  }

  /** Runs `fn` after the test, before the gateway stops. */
  defer(fn: () => void | Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Closes `client` after the test unless it is closed by then. */
  closeAfter<C extends { readonly closed: boolean; close(): void }>(client: C): C {
    this.defer(() => {
      if (!client.closed) client.close();
    });
    return client;
  }

  /** Waits until the hub has n receiving clients (handshakes and attach are asynchronous). */
  async attached(n: number, timeoutMs = 3000): Promise<void> {
    await waitFor(() => this.gw.gateway.hub.size === n, `${n} attached clients (have ${this.gw.gateway.hub.size})`, timeoutMs);
  }

  /** Every frame that reaches the bus from now on. */
  busRecorder(): CanFrame[] {
    const onBus: CanFrame[] = [];
    this.gw.backend.observe((f) => onBus.push(f));
    return onBus;
  }

  /** A cannelloni client that sends its hello first (as python-can-cannelloni), handshake done. */
  async cannelloni(): Promise<CannelloniTestClient> {
    const c = this.closeAfter(await CannelloniTestClient.connect(this.gw.port, { helloFirst: true }));
    await c.handshake({ helloFirst: true });
    return c;
  }

  /** A Waveshare client on the gateway's Waveshare listener. */
  async waveshare(): Promise<WaveshareTestClient> {
    return this.closeAfter(await WaveshareTestClient.connect(this.gw.gateway.port("waveshare")!));
  }
}
