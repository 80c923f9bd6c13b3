/**
 * TxRequests for backend tests, recording what the backend reported: each request counts its
 * sent()/lost() calls (the contract allows exactly one), and a TxLog keeps every request made so
 * a test can ask which frames were sent, which were lost and why. Also a BackendListener that
 * records frames, state changes and txReady() calls.
 */
import type { BackendListener, TxLoss, TxRequest } from "../../src/backends/backend.ts";
import type { CanFrame } from "../../src/can/frame.ts";

export type TxOutcome = "pending" | "sent" | TxLoss;

export class RecordedTx implements TxRequest {
  outcome: TxOutcome = "pending";
  /** sent() and lost() calls so far (more than one is a contract violation). */
  calls = 0;
  /** performance.now() of the first report. */
  reportedAt = 0;

  constructor(
    readonly frame: CanFrame,
    readonly expiresAt: number,
    private readonly onReport?: (req: RecordedTx) => void,
  ) {}

  sent(): void {
    this.record("sent");
  }

  lost(reason: TxLoss): void {
    this.record(reason);
  }

  private record(outcome: TxOutcome): void {
    this.calls++;
    if (this.calls > 1) return;
    this.outcome = outcome;
    this.reportedAt = performance.now();
    this.onReport?.(this);
  }
}

/** Makes requests and remembers them. */
export class TxLog {
  readonly requests: RecordedTx[] = [];
  /** Requests in the order the backend reported them. */
  readonly reported: RecordedTx[] = [];

  /** A request for `frame` that expires `ttlMs` from now (default: a minute, i.e. never in a test). */
  request(frame: CanFrame, ttlMs = 60_000): RecordedTx {
    const r = new RecordedTx(frame, performance.now() + ttlMs, (req) => this.reported.push(req));
    this.requests.push(r);
    return r;
  }

  with(outcome: TxOutcome): RecordedTx[] {
    return this.requests.filter((r) => r.outcome === outcome);
  }

  /** Requests reported more than once (must stay empty). */
  overReported(): RecordedTx[] {
    return this.requests.filter((r) => r.calls > 1);
  }
}

export interface RecordingListener extends BackendListener {
  readonly frames: CanFrame[];
  readonly states: { up: boolean; reason: string }[];
  /** txReady() calls so far. */
  txReadyCalls: number;
}

export function recordingListener(onFrame?: (f: CanFrame) => void): RecordingListener {
  const l: RecordingListener = {
    frames: [],
    states: [],
    txReadyCalls: 0,
    frame: (f) => {
      l.frames.push(f);
      onFrame?.(f);
    },
    state: (up, reason) => l.states.push({ up, reason }),
    txReady: () => {
      l.txReadyCalls++;
    },
  };
  return l;
}
