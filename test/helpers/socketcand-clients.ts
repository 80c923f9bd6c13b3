/**
 * socketcand clients for tests (docs/protocols.md §8): the real python-can 4.1 socketcand
 * interface driven through test/helpers/socketcand-python-client.py in a /usr/bin/python3
 * subprocess (python-line-client.ts); a raw text client over Bun.connect for handshake and
 * error-reply details (it parses `< … >` elements itself, independently of
 * src/protocols/socketcand); and a client in a separate python3 process that completes the
 * handshake and then never reads, for backpressure tests.
 */
import type { Socket, Subprocess } from "bun";
import { arbitrationId, isExtended, type CanFrame } from "../../src/can/frame.ts";
import { PythonLineClient } from "./python-line-client.ts";

const SCRIPT = new URL("./socketcand-python-client.py", import.meta.url).pathname;

/** How the python client prints a received message: `ID#DATA`, ID hex without padding. */
export function pyText(f: CanFrame): string {
  const data = Array.from(f.data, (b) => b.toString(16).padStart(2, "0")).join("").toUpperCase();
  return `${arbitrationId(f).toString(16).toUpperCase()}#${data}`;
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** python-can's `socketcand` Bus in a subprocess. */
export class PythonSocketcandClient extends PythonLineClient {
  /** Received messages as `ID#DATA` (see pyText). */
  readonly received: string[] = [];
  ready = false;
  private constructor(port: number, channel: string) {
    super([SCRIPT, String(port), channel], 2000);
  }

  /** Starts the client; resolves once python-can's Bus constructor has returned or raised. */
  static async start(port: number, channel = "can0", timeoutMs = 10_000): Promise<PythonSocketcandClient> {
    const c = new PythonSocketcandClient(port, channel);
    await c.started(timeoutMs, "python-can socketcand Bus");
    return c;
  }

  /** Sends a classic data frame through python-can's Bus.send. */
  send(f: CanFrame): void {
    const data = f.data.length === 0 ? "-" : Buffer.from(f.data).toString("hex");
    this.sendLine(`send ${arbitrationId(f).toString(16)} ${isExtended(f) ? 1 : 0} ${data}`);
  }

  async waitReceived(n: number, timeoutMs = 5000): Promise<string[]> {
    await this.until(() => this.received.length >= n, timeoutMs, `${n} messages in python-can (have ${this.received.length})`);
    return this.received.slice(0, n);
  }

  protected get isReady(): boolean {
    return this.ready;
  }

  protected onProtocolLine(line: string): void {
    if (line === "ready") this.ready = true;
    else if (line.startsWith("rx ")) {
      const [, id, data] = line.split(" ");
      this.received.push(`${id}#${data === "-" ? "" : data}`);
    }
  }
}

/** A socketcand client that sees the raw text: every `< … >` element the gateway sent, in order. */
export class RawSocketcandClient {
  text = "";
  closed = false;
  private socket!: Socket<undefined>;

  static async connect(port: number): Promise<RawSocketcandClient> {
    const c = new RawSocketcandClient();
    c.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_s, d) => {
          c.text += new TextDecoder("latin1").decode(d);
        },
        close: () => {
          c.closed = true;
        },
        error: () => {
          c.closed = true;
        },
      },
    });
    return c;
  }

  /** Elements received so far, trimmed of the surrounding `<`/`>` and spaces. */
  get elements(): string[] {
    return Array.from(this.text.matchAll(/<([^<>]*)>/g), (m) => m[1]!.trim());
  }

  /** Data frames received in raw mode, as candump text (8 id digits = extended). */
  get frames(): string[] {
    return Array.from(this.text.matchAll(/< frame ([0-9A-F]+) \d+\.\d{6} ([0-9A-F]*) >/g), (m) => `${m[1]}#${m[2]}`);
  }

  write(text: string): void {
    const bytes = new TextEncoder().encode(text);
    if (this.socket.write(bytes) !== bytes.length) throw new Error("short write on loopback");
  }

  /** Writes what the socket takes now (a flooder that does not wait): bytes accepted, <0 closed. */
  tryWrite(bytes: Uint8Array): number {
    return this.socket.write(bytes);
  }

  /** Stops reading: the gateway sees a client that never reads (TCP backpressure). */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  /** Waits until at least n elements have arrived and returns them. */
  async waitElements(n: number, timeoutMs = 3000): Promise<string[]> {
    await waitUntil(() => this.elements.length >= n, timeoutMs, `${n} elements (have ${JSON.stringify(this.elements)})`);
    return this.elements;
  }

  async waitFrames(n: number, timeoutMs = 5000): Promise<string[]> {
    await waitUntil(() => this.frames.length >= n, timeoutMs, `${n} frames (have ${this.frames.length})`);
    return this.frames;
  }

  async waitClosed(timeoutMs = 3000): Promise<void> {
    await waitUntil(() => this.closed, timeoutMs, "close");
  }

  /** `< hi >`, open the bus, raw mode: resolves after both `< ok >`. */
  async handshake(bus = "can0"): Promise<void> {
    await this.waitElements(1);
    this.write(`< open ${bus} >`);
    await this.waitElements(2);
    this.write("< rawmode >");
    await this.waitElements(3);
    const got = this.elements.slice(0, 3);
    if (got.join("|") !== "hi|ok|ok") throw new Error(`unexpected handshake ${JSON.stringify(got)}`);
  }

  close(): void {
    this.socket.end();
  }

  /** Vanishes without FIN: the connection is reset. */
  reset(): void {
    this.socket.terminate();
  }
}

const SLOW_SCRIPT = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
def expect(want):
    got = b""
    while len(got) < len(want):
        got += s.recv(len(want) - len(got))
    assert got == want, got
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    expect(b"< hi >")
    s.sendall(b"< open can0 >")
    expect(b"< ok >")
    s.sendall(b"< rawmode >")
    expect(b"< ok >")
except (OSError, AssertionError) as e:
    # Refused or reset by the gateway (e.g. a connection limit): say so on one line, no traceback.
    print("refused", e, flush=True)
    sys.exit(1)
print("ready", flush=True)
# argv[3]: bytes per second it reads (0: never reads); it lives argv[2] seconds.
rate = int(sys.argv[3]) if len(sys.argv) > 3 else 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    if rate > 0:
        s.settimeout(max(0.01, end - time.time()))
        try:
            if not s.recv(rate):
                break
        except (socket.timeout, OSError):
            break
    time.sleep(1 if rate > 0 else max(0, end - time.time()))
`;

export interface SlowSocketcandClient {
  proc: Subprocess<"ignore", "pipe", "inherit">;
  kill(): void;
}

/**
 * A socketcand client that completes raw-mode handshake on bus can0 and then never reads — or,
 * with `bytesPerSecond`, reads that many bytes a second (a 1-byte-per-second reader).
 */
export async function startSlowSocketcandClient(port: number, lifetimeSeconds = 20, bytesPerSecond = 0): Promise<SlowSocketcandClient> {
  const proc = Bun.spawn(["python3", "-c", SLOW_SCRIPT, String(port), String(lifetimeSeconds), String(bytesPerSecond)], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("slow socketcand client did not start");
  return { proc, kill: () => proc.kill() };
}
