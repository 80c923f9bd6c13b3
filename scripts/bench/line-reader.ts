/**
 * Reads a child process's stdout line by line with a deadline: how the benchmark drivers talk to
 * the gateway processes they start.
 */
export class LineReader {
  private buf = "";
  constructor(private readonly reader: { read(): Promise<{ value?: Uint8Array; done: boolean }> }) {}
  async next(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const nl = this.buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        return line;
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("gateway process did not answer");
      const r = await Promise.race([this.reader.read(), Bun.sleep(left).then(() => null)]);
      if (r === null) continue;
      if (r.done) throw new Error("gateway process exited");
      this.buf += new TextDecoder().decode(r.value);
    }
  }
}
