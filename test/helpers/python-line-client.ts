/**
 * What the python-can subprocess clients share (PythonSlcanClient in slcan-client.ts,
 * PythonSocketcandClient in socketcand-clients.ts): a /usr/bin/python3 script speaking the line
 * protocol of python_can_line_client.py — "ready …", "error …", "rx …", "sent N" on stdout,
 * "send …" and "quit" on stdin — with its stderr kept for failure messages. Parsing the "ready"
 * and "rx" lines stays in each client.
 */
import type { Subprocess } from "bun";

/** The interpreter that has Debian's python3-can (the pyenv python3 on PATH does not). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

/** Calls onLine for every complete line of a stream. */
export async function readLines(stream: ReadableStream<Uint8Array>, onLine: (l: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
}

export abstract class PythonLineClient {
  /** Lines python wrote that are not part of the line protocol (warnings, tracebacks). */
  readonly stderr: string[] = [];
  sent = 0;
  /** The Bus constructor raised this. */
  error: string | null = null;
  exited = false;

  protected readonly proc: Subprocess<"pipe", "pipe", "pipe">;

  /** `args`: the script and its arguments; `stopGraceMs`: how long stop() waits before killing. */
  protected constructor(
    args: readonly string[],
    private readonly stopGraceMs: number,
  ) {
    this.proc = Bun.spawn([SYSTEM_PYTHON, ...args], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
    void readLines(this.proc.stdout, (l) => this.onLine(l));
    void readLines(this.proc.stderr, (l) => this.stderr.push(l));
    void this.proc.exited.then(() => (this.exited = true));
  }

  /** True once the script has printed its "ready" line. */
  protected abstract get isReady(): boolean;

  /** Handles every other line: "ready …" and "rx …". */
  protected abstract onProtocolLine(line: string): void;

  /** Resolves once python-can's Bus constructor has returned or raised; kills and throws otherwise. */
  protected async started(timeoutMs: number, what: string): Promise<void> {
    try {
      await this.until(() => this.isReady || this.error !== null || this.exited, timeoutMs, what);
    } catch (e) {
      this.kill();
      throw e;
    }
    if (!this.isReady && this.error === null) {
      // Not a handshake failure: python itself failed (e.g. python3-can not installed).
      await Bun.sleep(50); // let stderr drain
      throw new Error(`python-can client exited: ${this.stderr.join("\n")}`);
    }
  }

  /** Writes one "send …" line. */
  protected sendLine(line: string): void {
    this.proc.stdin.write(line + "\n");
    this.proc.stdin.flush();
  }

  async waitSent(n: number, timeoutMs = 5000): Promise<void> {
    await this.until(() => this.sent >= n, timeoutMs, `python-can to send ${n} messages`);
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    try {
      this.proc.stdin.write("quit\n");
      this.proc.stdin.end();
    } catch {
      // already gone
    }
    const timer = setTimeout(() => this.kill(), this.stopGraceMs);
    await this.proc.exited;
    clearTimeout(timer);
  }

  kill(): void {
    if (!this.exited) this.proc.kill();
  }

  protected async until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; python stderr: ${this.stderr.join(" | ")}`);
      await Bun.sleep(10);
    }
  }

  private onLine(line: string): void {
    if (line.startsWith("error ")) this.error = line.slice(6);
    else if (line.startsWith("sent ")) this.sent = Number(line.slice(5));
    else this.onProtocolLine(line);
  }
}
