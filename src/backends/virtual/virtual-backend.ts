/**
 * The built-in virtual bus: no hardware, so the gateway runs anywhere. Frames sent by clients are
 * "on the bus" (counted, visible to observers such as tests); other nodes are simulated by
 * inject(), and an optional demo source broadcasts Ampio-like state frames so a new user sees
 * traffic. Clients reach each other through the hub exactly as through a real bus.
 */
import { dataFrame, type CanFrame } from "../../can/frame.ts";
import type { Logger } from "../../ops/log.ts";
import type { Stats } from "../../ops/stats.ts";
import { commonTxRefusal, type Backend, type BackendListener, type SendResult, type TxRequest } from "../backend.ts";

export interface VirtualBackendOptions {
  readonly stats: Stats;
  readonly log: Logger;
  readonly fd: boolean;
  /** Emit demo frames. */
  readonly demo?: boolean;
  readonly demoIntervalMs?: number;
}

export type BusObserver = (frame: CanFrame) => void;

export class VirtualBackend implements Backend {
  readonly kind = "virtual" as const;
  readonly fdCapable: boolean;
  private listener: BackendListener | null = null;
  private readonly observers = new Set<BusObserver>();
  private demoTimer: ReturnType<typeof setInterval> | null = null;
  private demoStep = 0;

  constructor(private readonly opts: VirtualBackendOptions) {
    this.fdCapable = opts.fd;
  }

  get up(): boolean {
    return this.listener !== null;
  }

  get downReason(): string {
    return this.listener ? "" : "virtual bus stopped";
  }

  async start(listener: BackendListener): Promise<void> {
    this.listener = listener;
    this.opts.stats.backendUp = true;
    listener.state(true, "virtual bus started");
    if (this.opts.demo) {
      this.demoTimer = setInterval(() => this.inject(this.nextDemoFrame()), this.opts.demoIntervalMs ?? 500);
      this.opts.log.info("virtual_demo", { interval_ms: this.opts.demoIntervalMs ?? 500 });
    }
  }

  txRefusal(frame: CanFrame): string | null {
    return commonTxRefusal(frame, this.fdCapable);
  }

  /** A frame written to the bus by the gateway (from a client): on the bus at once. */
  send(req: TxRequest): SendResult {
    if (!this.listener) return "down";
    if (this.txRefusal(req.frame) !== null) return "unsupported";
    this.opts.stats.virtualTxFrames++;
    for (const o of this.observers) o(req.frame);
    req.sent();
    return "accepted";
  }

  /** Another node on the bus sends a frame: the gateway receives it. */
  inject(frame: CanFrame): void {
    if (!this.listener) return;
    if (frame.fd && !this.fdCapable) return;
    this.opts.stats.virtualRxFrames++;
    this.listener.frame(frame);
  }

  /** Watch frames the gateway transmits onto the virtual bus. Returns an unsubscribe function. */
  observe(o: BusObserver): () => void {
    this.observers.add(o);
    return () => this.observers.delete(o);
  }

  async stop(): Promise<void> {
    if (this.demoTimer) clearInterval(this.demoTimer);
    this.demoTimer = null;
    const l = this.listener;
    this.listener = null;
    this.opts.stats.backendUp = false;
    l?.state(false, "virtual bus stopped");
  }

  /**
   * Ampio modules broadcast their state periodically on extended ids (the module's address);
   * these demo frames are real Ampio state broadcasts (docs/ampio.md), so the decoder shows
   * sensible values: a temperature drifting around 21 °C (subtype 0x06: 1000 + tenths, LE),
   * binary inputs toggling (0x1B), and analog outputs ramping (0x0C).
   */
  private nextDemoFrame(): CanFrame {
    const step = this.demoStep++;
    const round = Math.floor(step / 3);
    switch (step % 3) {
      case 0: {
        const raw = 1000 + 210 + ((round * 3) % 21) - 10;
        return dataFrame(0x1d4c, [0xfe, 0x06, raw & 0xff, raw >> 8], true);
      }
      case 1:
        return dataFrame(0x2a31, [0xfe, 0x1b, 1 << (round % 8), 0, 0, 0, 0, 0], true);
      default:
        return dataFrame(0x0b07, [0xfe, 0x0c, (round * 10) % 256, 0, 0, 0, 0, 0], true);
    }
  }
}
