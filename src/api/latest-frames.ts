/**
 * The latest frame per id of one bus, and its load: a hub client ("api") per bus, attached while
 * the HTTP API runs. It keeps no queue (enqueue only updates a bounded map: at most MAX_IDS ids,
 * the rest counted), so it can never slow the hub.
 */
import type { CanFrame, StampedFrame } from "../can/frame.ts";
import type { Hub, HubClient } from "../hub/hub.ts";
import { frameBits } from "../web/bus.ts";

export const MAX_IDS = 4096;

export interface LatestEntry {
  frame: StampedFrame;
  count: number;
}

export class LatestFrames implements HubClient {
  readonly protocol = "api";
  readonly remote = "api";
  readonly receiving = true;
  readonly queued = 0;
  dropped = 0;
  readonly ids = new Map<number, LatestEntry>();
  /** Frames of ids beyond MAX_IDS (not kept). */
  overflow = 0;
  frames = 0;
  bits = 0;
  /** Bits per second and frames per second over the last sample interval. */
  bitRate = 0;
  frameRate = 0;
  private sampleBits = 0;
  private sampleFrames = 0;
  private sampleAt = performance.now();

  constructor(
    readonly id: number,
    private readonly hub: Hub,
  ) {
    hub.attach(this);
  }

  accepts(_frame: CanFrame): boolean {
    return true;
  }

  enqueue(frame: StampedFrame): boolean {
    this.frames++;
    this.bits += frameBits(frame);
    const key = frame.canId >>> 0;
    const e = this.ids.get(key);
    if (e) {
      e.frame = frame;
      e.count++;
    } else if (this.ids.size < MAX_IDS) this.ids.set(key, { frame, count: 1 });
    else this.overflow++;
    return true;
  }

  kick(_reason: string): void {}

  /** Updates the rates (called once a second). */
  sample(now = performance.now()): void {
    const dt = (now - this.sampleAt) / 1000;
    if (dt <= 0) return;
    this.bitRate = (this.bits - this.sampleBits) / dt;
    this.frameRate = (this.frames - this.sampleFrames) / dt;
    this.sampleBits = this.bits;
    this.sampleFrames = this.frames;
    this.sampleAt = now;
  }

  detach(): void {
    this.hub.detach(this);
  }
}
