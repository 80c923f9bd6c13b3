/**
 * The driver's side of a benchmark gateway process (gateway-harness.ts's `run`/`stats` lines on
 * stdin, answers on stdout): spawn it, read its lines with a deadline, ask, and stop it.
 */
import { LineReader } from "./line-reader.ts";

export class GatewayChild {
  readonly proc: Bun.Subprocess<"pipe", "pipe", "inherit">;
  private readonly lines: LineReader;

  constructor(argv: string[]) {
    this.proc = Bun.spawn(argv, { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    this.lines = new LineReader(this.proc.stdout.getReader());
  }

  /** The next line the process prints (its ports first, then answers). */
  next(timeoutMs?: number): Promise<string> {
    return this.lines.next(timeoutMs);
  }

  /** Sends one command line and returns the answer line. */
  ask(command: string, timeoutMs?: number): Promise<string> {
    this.proc.stdin.write(`${command}\n`);
    this.proc.stdin.flush();
    return this.lines.next(timeoutMs);
  }

  /** `stats`: the process's JSON counters line. */
  async stats<T>(): Promise<T> {
    return JSON.parse(await this.ask("stats")) as T;
  }

  /** Closes stdin (the process exits by itself) and kills it if it has not after 3 s. */
  async stop(): Promise<void> {
    this.proc.stdin.end();
    const exited = await Promise.race([this.proc.exited, Bun.sleep(3000).then(() => null)]);
    if (exited === null) this.proc.kill();
  }
}
