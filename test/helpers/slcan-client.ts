/**
 * A real slcan-over-TCP client for tests and benchmarks (docs/protocols.md §6), over Bun.connect
 * on loopback. Encoder and decoder are written here independently of src/protocols/slcan from the
 * Lawicel command set, so a codec bug cannot hide by being on both ends of a test. The decoder
 * splits the stream at CR and BEL as python-can does; every answer (CR, BEL, a value line) goes
 * to `replies` in order, every frame line to `frames`; anything it cannot parse goes to
 * `problems` (a test failure). Also PythonSlcanClient: the real python-can `slcan` interface
 * (Debian's python3-can) in a /usr/bin/python3 subprocess, driven by slcan-python-client.py
 * (python-line-client.ts).
 */
import { CAN_EFF_FLAG, CAN_EFF_MASK, CAN_RTR_FLAG, CAN_SFF_MASK, CANFD_BRS, type CanFrame } from "../../src/can/frame.ts";
import { PythonLineClient } from "./python-line-client.ts";
import { TcpTestClient } from "./tcp-test-client.ts";

const FD_LENGTHS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];
const hex = (n: number, digits: number): string => n.toString(16).toUpperCase().padStart(digits, "0");

/** One frame as an slcan command line (without the CR). */
export function slcanLine(f: CanFrame): string {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const id = ext ? hex(f.canId & CAN_EFF_MASK, 8) : hex(f.canId & CAN_SFF_MASK, 3);
  const data = Array.from(f.data, (b) => hex(b, 2)).join("");
  if (f.fd) {
    const letter = (f.fdFlags & CANFD_BRS) !== 0 ? "b" : "d";
    return `${ext ? letter.toUpperCase() : letter}${id}${hex(FD_LENGTHS.indexOf(f.data.length), 1)}${data}`;
  }
  if ((f.canId & CAN_RTR_FLAG) !== 0) return `${ext ? "R" : "r"}${id}${f.len}`;
  return `${ext ? "T" : "t"}${id}${f.len}${data}`;
}

/** Parses a frame line the way a careful host would; null if it is not one. */
export function parseSlcanLine(line: string): { frame: CanFrame; timestamp: number | null } | null {
  const m = /^([tTrRdDbB])([0-9A-F]+)$/.exec(line);
  if (!m) return null;
  const kind = m[1]!;
  const ext = kind === kind.toUpperCase();
  const body = m[2]!;
  const idLen = ext ? 8 : 3;
  if (body.length < idLen + 1) return null;
  const id = parseInt(body.slice(0, idLen), 16);
  const code = parseInt(body[idLen]!, 16);
  const rest = body.slice(idLen + 1);
  const lower = kind.toLowerCase();
  const fd = lower === "d" || lower === "b";
  const rtr = lower === "r";
  const n = fd ? FD_LENGTHS[code]! : rtr ? 0 : code;
  if (!fd && code > 8) return null;
  const dataHex = rest.slice(0, n * 2);
  if (dataHex.length !== n * 2) return null;
  const tail = rest.slice(n * 2);
  if (tail !== "" && tail.length !== 4) return null;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = parseInt(dataHex.slice(i * 2, i * 2 + 2), 16);
  const canId = ((ext ? id | CAN_EFF_FLAG : id) | (rtr ? CAN_RTR_FLAG : 0)) >>> 0;
  return {
    frame: { canId, len: fd ? n : code, data, fd, fdFlags: lower === "b" ? CANFD_BRS : 0 },
    timestamp: tail === "" ? null : parseInt(tail, 16),
  };
}

export class SlcanTestClient extends TcpTestClient {
  /** Answers in order: "\r" (ok), "\x07" (error), or a value line such as "V1013". */
  readonly replies: string[] = [];
  /** Timestamps (Z1) of the frames, in order; null when none was sent. */
  readonly timestamps: (number | null)[] = [];
  readonly problems: string[] = [];
  private pending = "";

  static async connect(port: number, host = "127.0.0.1"): Promise<SlcanTestClient> {
    return new SlcanTestClient().connectTo(port, host);
  }

  /** Writes command lines, each ended with CR, in one write. */
  command(...lines: string[]): void {
    this.write(new TextEncoder().encode(lines.map((l) => l + "\r").join("")));
  }

  /** Sends frames as command lines in one write. */
  send(...frames: CanFrame[]): void {
    this.command(...frames.map(slcanLine));
  }

  /** Waits until `n` answers have arrived in total and returns them all. */
  async waitReplies(n: number, timeoutMs = 3000): Promise<string[]> {
    await this.until(() => this.replies.length >= n, timeoutMs, `${n} replies (have ${JSON.stringify(this.replies)})`);
    return this.replies.slice(0, n);
  }

  /** The python-can sequence: C, S<n>, O; resolves when all three are answered. */
  async open(bitrateCode = 6): Promise<void> {
    const before = this.replies.length;
    this.command("C", `S${bitrateCode}`, "O");
    await this.waitReplies(before + 3);
  }

  protected onData(data: Uint8Array): void {
    const arrived = this.arrivalTime();
    for (let i = 0; i < data.length; i++) {
      const ch = String.fromCharCode(data[i]!);
      if (ch === "\x07") {
        if (this.pending !== "") this.problems.push(`text before BEL: ${JSON.stringify(this.pending)}`);
        this.pending = "";
        this.replies.push("\x07");
      } else if (ch === "\r") {
        const line = this.pending;
        this.pending = "";
        if (line === "") this.replies.push("\r");
        else if (/^[tTrRdDbB]/.test(line)) {
          const parsed = parseSlcanLine(line);
          if (!parsed) this.problems.push(`unparsable frame line ${JSON.stringify(line)}`);
          else {
            this.addFrame(parsed.frame, arrived);
            this.timestamps.push(parsed.timestamp);
          }
        } else this.replies.push(line);
      } else this.pending += ch;
    }
    this.wake();
  }
}

const PY_SCRIPT = new URL("./slcan-python-client.py", import.meta.url).pathname;

/** A message as python-can reported it. */
export interface PyMessage {
  readonly id: number;
  readonly extended: boolean;
  readonly remote: boolean;
  readonly dlc: number;
  readonly data: Uint8Array;
}

/** python-can's `slcan` Bus on `socket://127.0.0.1:PORT` in a subprocess. */
export class PythonSlcanClient extends PythonLineClient {
  readonly received: PyMessage[] = [];
  /** Seconds python-can's Bus constructor took (its 2 s start-up pause included). */
  openSeconds: number | null = null;
  private constructor(port: number, bitrate: number) {
    super([PY_SCRIPT, String(port), String(bitrate)], 3000);
  }

  static async start(port: number, bitrate = 500000, timeoutMs = 15_000): Promise<PythonSlcanClient> {
    const c = new PythonSlcanClient(port, bitrate);
    await c.started(timeoutMs, "python-can slcan Bus");
    return c;
  }

  send(f: CanFrame): void {
    const ext = (f.canId & CAN_EFF_FLAG) !== 0;
    const rtr = (f.canId & CAN_RTR_FLAG) !== 0;
    const id = f.canId & (ext ? CAN_EFF_MASK : CAN_SFF_MASK);
    const data = f.data.length === 0 ? "-" : Buffer.from(f.data).toString("hex");
    this.sendLine(`send ${id.toString(16)} ${ext ? 1 : 0} ${rtr ? 1 : 0} ${f.len} ${data}`);
  }

  async waitReceived(n: number, timeoutMs = 5000): Promise<PyMessage[]> {
    await this.until(() => this.received.length >= n, timeoutMs, `${n} messages in python-can (have ${this.received.length})`);
    return this.received.slice(0, n);
  }

  protected get isReady(): boolean {
    return this.openSeconds !== null;
  }

  protected onProtocolLine(line: string): void {
    const w = line.split(" ");
    if (w[0] === "ready") this.openSeconds = Number(w[1]);
    else if (w[0] === "rx") {
      this.received.push({
        id: parseInt(w[1]!, 16),
        extended: w[2] === "1",
        remote: w[3] === "1",
        dlc: Number(w[4]),
        data: w[5] === "-" ? new Uint8Array(0) : Uint8Array.from(Buffer.from(w[5]!, "hex")),
      });
    }
  }
}
