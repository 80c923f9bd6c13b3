/**
 * openSerial on real kernel ttys (socat pty pairs): raw 8N1, standard and non-standard baud
 * rates read back from the kernel through termios2, O_NONBLOCK kept, and the errors a person
 * meets in the field with their messages: missing device, not a tty, permission denied and a
 * busy (exclusively locked) device. The last two need an unprivileged process, because root
 * bypasses both tty permissions and TIOCEXCL: the test runs the real open in a child process as
 * user `nobody` (setpriv); if that is impossible here, those two tests fail with the reason.
 * closeSerial discards unsent output before closing (a UART's close() would wait for it to drain);
 * a pty has no transmitter to wait for, so there the flush is observed as bytes that never reach
 * the peer, against a control close without the flush that delivers every byte.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  closeSerial,
  describeSerialError,
  discardPendingOutput,
  loadSerialLibrary,
  openSerial,
  SerialOpenError,
  serialSettings,
} from "../../../src/backends/serial/ffi.ts";
import { createPtyPair, openPeer, type PtyPair } from "../../helpers/pty.ts";

// Linux termios bits (asm-generic).
const CSIZE = 0o60;
const CS8 = 0o60;
const PARENB = 0o400;
const CSTOPB = 0o100;
const CREAD = 0o200;
const CLOCAL = 0o4000;
const CBAUD = 0o10017;
const BOTHER = 0o10000;
const B9600 = 0o15;
const B115200 = 0o10002;
const ICANON = 0o2;
const ECHO = 0o10;
const ISIG = 0o1;

let pair: PtyPair;
const opened: number[] = [];

beforeAll(async () => {
  pair = await createPtyPair("ffi");
});
afterAll(async () => {
  for (const fd of opened) closeSerial(fd);
  await pair.close();
});

function openAndTrack(p: string, baud: number): number {
  const { fd } = openSerial(p, baud);
  opened.push(fd);
  return fd;
}

function closeTracked(fd: number): void {
  closeSerial(fd);
  opened.splice(opened.indexOf(fd), 1);
}

function expectOpenError(p: string, baud: number, code: string, message: RegExp): void {
  let err: unknown;
  try {
    const { fd } = openSerial(p, baud);
    closeSerial(fd);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SerialOpenError);
  expect((err as SerialOpenError).code).toBe(code);
  expect((err as SerialOpenError).message).toMatch(message);
}

describe("openSerial on a pty", () => {
  test("raw 8N1 at 115200, non-blocking", () => {
    const fd = openAndTrack(pair.deviceA, 115200);
    const s = serialSettings(fd);
    expect(s.cflag & CSIZE).toBe(CS8);
    expect(s.cflag & (PARENB | CSTOPB)).toBe(0);
    expect(s.cflag & (CREAD | CLOCAL)).toBe(CREAD | CLOCAL);
    expect(s.lflag & (ICANON | ECHO | ISIG)).toBe(0);
    expect(s.cflag & CBAUD).toBe(B115200);
    expect(s.baud).toBe(115200);
    expect(s.nonblocking).toBe(true);
    closeTracked(fd);
  });

  test("a standard rate uses its B-code, a non-standard one BOTHER with the exact rate", () => {
    let fd = openAndTrack(pair.deviceA, 9600);
    expect(serialSettings(fd).cflag & CBAUD).toBe(B9600);
    expect(serialSettings(fd).baud).toBe(9600);
    closeTracked(fd);
    fd = openAndTrack(pair.deviceA, 250_000);
    const s = serialSettings(fd);
    expect(s.cflag & CBAUD).toBe(BOTHER);
    expect(s.ospeed).toBe(250_000);
    expect(s.baud).toBe(250_000);
    closeTracked(fd);
  });

  test("reading through Bun.file(fd).stream() keeps O_NONBLOCK", async () => {
    const fd = openAndTrack(pair.deviceA, 115200);
    const reader = Bun.file(fd).stream().getReader();
    const pending = reader.read();
    await Bun.sleep(20);
    expect(serialSettings(fd).nonblocking).toBe(true);
    await reader.cancel();
    await pending.catch(() => undefined);
    closeTracked(fd);
  });
});

describe("openSerial errors", () => {
  test("missing device", () => {
    expectOpenError("/dev/does-not-exist-ttyUSB9", 115200, "ENOENT", /does not exist.*-serial/);
  });

  test("a regular file is not a tty", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "can-server-notty-"));
    const file = path.join(dir, "ttyFake");
    fs.writeFileSync(file, "x");
    try {
      expectOpenError(file, 115200, "ENOTTY", /not a serial device/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("baud 0 is refused before touching the device", () => {
    expectOpenError(pair.deviceA, 0, "EINVAL", /baud rate 0 is invalid/);
  });

  test("every errno a person meets has a message that says what to do", () => {
    expect(describeSerialError("EACCES", "/dev/ttyUSB0", "open")).toMatch(/dialout/);
    expect(describeSerialError("EBUSY", "/dev/ttyUSB0", "open")).toMatch(/busy.*another/);
    expect(describeSerialError("EINVAL", "/dev/ttyUSB0", "set baud rate on", 123)).toMatch(/baud rate 123 is not supported/);
  });
});

/** Runs the real openSerial as user nobody; returns its JSON verdict. */
async function openAsNobody(device: string): Promise<{ ok: boolean; code?: string; message?: string }> {
  const helper = path.join(import.meta.dir, "open-as-helper.ts");
  const proc = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, helper, device, "115200"], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: os.tmpdir() },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill(), 10_000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  clearTimeout(timer);
  await proc.exited;
  const line = out.trim().split("\n").pop() ?? "";
  if (!line.startsWith("{")) throw new Error(`helper as nobody printed no verdict (exit ${proc.exitCode}): ${out} ${err}`);
  return JSON.parse(line) as { ok: boolean; code?: string; message?: string };
}

describe("openSerial as an unprivileged user (root bypasses these checks)", () => {
  test("permission denied names the dialout group", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root to hand the tty to another user");
    const tty = fs.realpathSync(pair.deviceA);
    fs.chmodSync(tty, 0o600);
    const verdict = await openAsNobody(tty);
    expect(verdict.ok).toBe(false);
    expect(verdict.code).toBe("EACCES");
    expect(verdict.message).toMatch(/permission denied.*dialout/);
  });

  test("a device held by another gateway (TIOCEXCL) is busy", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root to hand the tty to another user");
    const tty = fs.realpathSync(pair.deviceA);
    fs.chmodSync(tty, 0o666);
    // Control: without our exclusive open (earlier tests closed theirs), nobody can open it.
    expect((await openAsNobody(tty)).ok).toBe(true);
    const fd = openAndTrack(pair.deviceA, 115200);
    const verdict = await openAsNobody(tty);
    expect(verdict.ok).toBe(false);
    expect(verdict.code).toBe("EBUSY");
    expect(verdict.message).toMatch(/busy/);
    closeTracked(fd);
    // closeSerial (flush, TIOCNXCL, close) released the lock: the next gateway may open it.
    expect((await openAsNobody(tty)).ok).toBe(true);
  });
});

/** errno name of a node:fs error, or null. */
function codeOf(e: unknown): string | null {
  return e instanceof Error && "code" in e && typeof e.code === "string" ? e.code : null;
}

/**
 * Writes to `fd` until the whole path to the peer is full and stays full: EAGAIN on five tries in
 * a row, 10 ms apart (socat stops reading once nobody reads the peer end). A pty slave's write room
 * is the space left in the master's input buffer, so at that point unsent bytes sit on our side of
 * the pair, where TCOFLUSH reaches them. Bounded to 4 MiB and 5 s. Returns the bytes accepted.
 */
async function fillUntilStalled(fd: number): Promise<number> {
  const chunk = new Uint8Array(4096).fill(0x55);
  const deadline = Date.now() + 5000;
  let written = 0;
  let refusals = 0;
  while (refusals < 5) {
    if (written > 4 << 20 || Date.now() > deadline) throw new Error(`the pty never stalled (${written} bytes accepted)`);
    try {
      written += fs.writeSync(fd, chunk);
      refusals = 0;
    } catch (e) {
      if (codeOf(e) !== "EAGAIN") throw e;
      refusals++;
      await Bun.sleep(10);
    }
  }
  return written;
}

/**
 * Counts the 0x55 bytes that reach the peer end of `p` from an earlier writer: reopens the device
 * end, sends one 0xAA marker behind them (retried while the full pair refuses it) and reads the
 * peer until the marker arrives. The pair keeps byte order, so everything that survived is in
 * front of the marker. Bounded to 5 s.
 */
async function bytesThatReachedThePeer(p: PtyPair): Promise<number> {
  const writer = openPeer(p.deviceA);
  const peer = openPeer(p.deviceB);
  try {
    const buf = new Uint8Array(65536);
    let markerSent = false;
    let got = 0;
    const deadline = Date.now() + 5000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`no marker after ${got} bytes in 5 s (marker sent: ${markerSent})`);
      if (!markerSent) {
        try {
          markerSent = fs.writeSync(writer, Uint8Array.of(0xaa)) === 1;
        } catch (e) {
          if (codeOf(e) !== "EAGAIN") throw e;
        }
      }
      let n = 0;
      try {
        n = fs.readSync(peer, buf, 0, buf.length, null);
      } catch (e) {
        if (codeOf(e) !== "EAGAIN") throw e;
      }
      const marker = buf.subarray(0, n).indexOf(0xaa);
      if (marker >= 0) return got + marker;
      got += n;
      if (n === 0) await Bun.sleep(2);
    }
  } finally {
    fs.closeSync(writer);
    fs.closeSync(peer);
  }
}

describe("closeSerial discards unsent output (a UART's close() would wait for it to drain)", () => {
  // The stall a UART shows (close() sleeping up to closing_wait) cannot happen on a pty: it has no
  // transmitter and its close() never waits. What a pty does show is the flush itself: bytes
  // written but not yet taken by the other side vanish instead of arriving after the close.
  let own: PtyPair | null = null;
  afterEach(async () => {
    await own?.close();
    own = null;
  });

  test("control: a plain close() of a stalled pty delivers every byte later", async () => {
    own = await createPtyPair("flush-control");
    const { fd } = openSerial(own.deviceA, 115200);
    const written = await fillUntilStalled(fd);
    fs.closeSync(fd); // no flush: shows the pty keeps unsent bytes, so the next test can fail
    expect(await bytesThatReachedThePeer(own)).toBe(written);
  });

  test("closeSerial of a stalled pty: the flush succeeds and the unsent bytes never arrive", async () => {
    own = await createPtyPair("flush");
    const { fd } = openSerial(own.deviceA, 115200);
    const written = await fillUntilStalled(fd);
    expect(closeSerial(fd)).toBeNull();
    const arrived = await bytesThatReachedThePeer(own);
    expect(arrived).toBeLessThan(written);
    expect(arrived).toBeGreaterThan(0); // what socat had already taken still arrives
  });

  test("flush errors are reported by name and never thrown", async () => {
    loadSerialLibrary();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "can-server-flush-"));
    try {
      const fileFd = fs.openSync(path.join(dir, "notatty"), "w");
      expect(discardPendingOutput(fileFd)).toBe("ENOTTY");
      expect(closeSerial(fileFd)).toBe("ENOTTY");
      expect(discardPendingOutput(fileFd)).toBe("EBADF"); // closeSerial did close it
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    // A device that vanished (socat killed: the tty is hung up) has nothing left to drain.
    own = await createPtyPair("flush-hangup");
    const { fd } = openSerial(own.deviceA, 115200);
    await own.kill();
    expect(closeSerial(fd)).toBe("EIO");
  });
});
