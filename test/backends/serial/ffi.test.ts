/**
 * openSerial on real kernel ttys (socat pty pairs): raw 8N1, standard and non-standard baud
 * rates read back from the kernel through termios2, O_NONBLOCK kept, and the errors a person
 * meets in the field with their messages: missing device, not a tty, permission denied and a
 * busy (exclusively locked) device. The last two need an unprivileged process, because root
 * bypasses both tty permissions and TIOCEXCL: the test runs the real open in a child process as
 * user `nobody` (setpriv); if that is impossible here, those two tests fail with the reason.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { closeSerial, describeSerialError, openSerial, SerialOpenError, serialSettings } from "../../../src/backends/serial/ffi.ts";
import { createPtyPair, type PtyPair } from "../../helpers/pty.ts";

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
    // closeSerial released the lock: the next gateway may open it.
    expect((await openAsNobody(tty)).ok).toBe(true);
  });
});
