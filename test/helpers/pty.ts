/**
 * Real kernel tty pairs for serial tests: socat joins two pseudo-terminals and exposes their
 * slave ends as symlinks (`a` for the gateway, `b` for the test playing the adapter). The pair
 * can be killed mid-traffic and recreated at the same paths to simulate unplugging and
 * re-plugging the adapter. Every pair lives in its own temporary directory and is killed in
 * close() (call it from afterEach/afterAll).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Subprocess } from "bun";

export interface PtyPair {
  readonly dir: string;
  /** The device the backend opens. */
  readonly deviceA: string;
  /** The peer end the test reads and writes (the "adapter"). */
  readonly deviceB: string;
  /** Whether socat is running. */
  readonly alive: boolean;
  /** Kills socat (the device vanishes: links removed, open fds hang up). */
  kill(): Promise<void>;
  /** Starts socat again at the same paths. */
  recreate(): Promise<void>;
  /** Kills socat and removes the directory. */
  close(): Promise<void>;
}

async function waitFor(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(5);
  }
}

export interface PtyPairOptions {
  /** Start socat right away (default true); false leaves the paths absent until recreate(). */
  readonly start?: boolean;
}

export async function createPtyPair(name = "pty", options: PtyPairOptions = {}): Promise<PtyPair> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `can-server-${name}-`));
  const deviceA = path.join(dir, "a");
  const deviceB = path.join(dir, "b");
  let proc: Subprocess<"ignore", "ignore", "pipe"> | null = null;

  const start = async (): Promise<void> => {
    // A killed socat may leave dangling links behind; the new ones must be fresh.
    for (const p of [deviceA, deviceB]) fs.rmSync(p, { force: true });
    proc = Bun.spawn(["socat", "-d", "-d", `pty,raw,echo=0,link=${deviceA}`, `pty,raw,echo=0,link=${deviceB}`], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    await waitFor(() => fs.existsSync(deviceA) && fs.existsSync(deviceB), 5000, `socat links in ${dir}`);
    // socat logs "starting data transfer loop" once both ptys are set up.
    const reader = proc.stderr.getReader();
    let log = "";
    const deadline = Date.now() + 5000;
    while (!log.includes("starting data transfer loop")) {
      const timeout = Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null);
      const r = await Promise.race([reader.read(), timeout]);
      if (r === null || r.done) break;
      log += new TextDecoder().decode(r.value);
    }
    reader.releaseLock();
  };

  const kill = async (): Promise<void> => {
    const p = proc;
    proc = null;
    if (!p) return;
    p.kill("SIGTERM");
    await p.exited;
  };

  if (options.start !== false) await start();
  return {
    dir,
    deviceA,
    deviceB,
    get alive() {
      return proc !== null;
    },
    kill,
    recreate: start,
    async close() {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Opens the adapter end for raw non-blocking I/O (the tty is already raw: socat's `raw`). */
export function openPeer(device: string): number {
  const c = fs.constants;
  return fs.openSync(device, c.O_RDWR | c.O_NOCTTY | c.O_NONBLOCK);
}

/**
 * Writes all of `bytes` to a non-blocking fd, waiting on EAGAIN. Bounded by `timeoutMs`.
 */
export async function writeAll(fd: number, bytes: Uint8Array, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let off = 0;
  while (off < bytes.length) {
    try {
      off += fs.writeSync(fd, bytes, off, bytes.length - off);
    } catch (e) {
      if (!(e instanceof Error && "code" in e && e.code === "EAGAIN")) throw e;
      if (Date.now() > deadline) throw new Error(`writeAll: ${bytes.length - off} bytes still pending after ${timeoutMs} ms`);
      await Bun.sleep(1);
    }
  }
}

/**
 * Reads from a non-blocking fd until `want` bytes arrived or `timeoutMs` passed; returns what arrived.
 */
export async function readBytes(fd: number, want: number, timeoutMs = 5000): Promise<Uint8Array> {
  const out = new Uint8Array(want);
  let got = 0;
  const deadline = Date.now() + timeoutMs;
  while (got < want && Date.now() < deadline) {
    try {
      const n = fs.readSync(fd, out, got, want - got, null);
      if (n === 0) break;
      got += n;
    } catch (e) {
      if (!(e instanceof Error && "code" in e && e.code === "EAGAIN")) throw e;
      await Bun.sleep(1);
    }
  }
  return out.subarray(0, got);
}

/**
 * Reads whatever a non-blocking fd holds now, handing each chunk (a view of `buf`, reused) to
 * `onChunk`; stops at EAGAIN, end of file or a pty pair that is gone (EIO).
 */
export function readAvailable(fd: number, buf: Uint8Array, onChunk: (chunk: Uint8Array) => void): void {
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch {
      return;
    }
    if (n <= 0) return;
    onChunk(buf.subarray(0, n));
  }
}

/** Reads and discards whatever is buffered on a non-blocking fd. */
export function drainPeer(fd: number): number {
  let total = 0;
  readAvailable(fd, new Uint8Array(65536), (chunk) => {
    total += chunk.length;
  });
  return total;
}

/** Waits until cond() holds, polling; throws with `what` after timeoutMs. */
export { waitFor };
