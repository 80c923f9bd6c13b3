/**
 * The serial backend's tty layer (libc through ../libc.ts): opens a tty for the Ampio adapter and configures
 * it through libc (raw 8N1, baud rate, exclusive lock). The fd is opened with node:fs
 * `O_RDWR|O_NOCTTY|O_NONBLOCK` (its errors carry errno codes), then `tcgetattr`/`cfmakeraw`/
 * `tcsetattr` make the line raw, and the baud rate is set with the kernel's termios2 ioctls
 * (`TCGETS2`/`TCSETS2`, standard rates by their CBAUD code, any other rate with `BOTHER`) and read
 * back to verify. The rate goes through termios2 rather than `cfset[io]speed` because glibc 2.42
 * gave those functions new symbol versions that take numeric rates instead of the B-codes, and
 * dlsym binds the newest version: the kernel ABI is the one layout that is stable everywhere.
 * `TIOCEXCL` keeps a second gateway off the same adapter. Failures become SerialOpenError with
 * the errno name and a message that says what to do. Closing discards unsent output first
 * (`tcflush(TCOFLUSH)`): a UART's close() otherwise waits for it to drain, O_NONBLOCK or not.
 */
import fs from "node:fs";
import { errnoName, lastErrno as lastErrnoNumber, type Libc, libc as loadSharedLibc, LibcUnavailableError } from "../libc.ts";

// Kernel ABI, identical on x86_64 and aarch64 (asm-generic ioctls), measured per issue 3.
const TCGETS2 = 0x802c542a;
const TCSETS2 = 0x402c542b;
const TIOCEXCL = 0x540c;
const TIOCNXCL = 0x540d;
const TIOCOUTQ = 0x5411;
const TERMIOS2_SIZE = 44; // c_iflag@0 c_oflag@4 c_cflag@8 c_lflag@12 c_line@16 c_cc[19]@17 c_ispeed@36 c_ospeed@40
const T2_CFLAG = 8;
const T2_ISPEED = 36;
const T2_OSPEED = 40;
const CBAUD = 0o10017;
const CBAUDEX = 0o10000;
const BOTHER = 0o10000;
const CIBAUD_SHIFT = 16; // IBSHIFT: input rate code lives at CBAUD << 16
const CSIZE = 0o60;
const CS8 = 0o60;
const CSTOPB = 0o100;
const CREAD = 0o200;
const PARENB = 0o400;
const HUPCL = 0o2000;
const CLOCAL = 0o4000;
const CRTSCTS = 0o20000000000;

// glibc `struct termios` (60 bytes on x86_64 and aarch64): only c_cflag is touched by hand.
const TERMIOS_SIZE = 60;
const T_CFLAG = 8;
const TCSANOW = 0;
/** tcflush() queue selector: discard data written but not yet transmitted. */
const TCOFLUSH = 1;

const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = fs.constants.O_NONBLOCK;

/** Kernel B-codes of the standard rates (CBAUD field). Anything else uses BOTHER. */
const STANDARD_RATES: ReadonlyMap<number, number> = new Map([
  [50, 0o1], [75, 0o2], [110, 0o3], [134, 0o4], [150, 0o5], [200, 0o6], [300, 0o7], [600, 0o10],
  [1200, 0o11], [1800, 0o12], [2400, 0o13], [4800, 0o14], [9600, 0o15], [19200, 0o16], [38400, 0o17],
  [57600, 0o10001], [115200, 0o10002], [230400, 0o10003], [460800, 0o10004], [500000, 0o10005],
  [576000, 0o10006], [921600, 0o10007], [1000000, 0o10010], [1152000, 0o10011], [1500000, 0o10012],
  [2000000, 0o10013], [2500000, 0o10014], [3000000, 0o10015], [3500000, 0o10016], [4000000, 0o10017],
]);

let libc: Libc | null = null;

function loadLibc(): Libc {
  if (libc) return libc;
  try {
    libc = loadSharedLibc();
  } catch (e) {
    if (e instanceof LibcUnavailableError) throw new SerialOpenError("ENOSYS", "", e.message.replace("the C library", "the C library for serial I/O"));
    throw e;
  }
  return libc;
}

/**
 * Loads libc now; throws SerialOpenError (code ENOSYS) if this system has none usable, a
 * condition no retry can fix.
 */
export function loadSerialLibrary(): void {
  loadLibc();
}

/** The errno name of the last failed libc call (the C library is loaded: an fd exists). */
function failedErrno(): string {
  const n = lastErrnoNumber();
  return n === 0 ? "EIO" : errnoName(n);
}

/** A failure to open or configure the serial device; `code` is the errno name (ENOENT, EACCES, …). */
export class SerialOpenError extends Error {
  override readonly name = "SerialOpenError";
  constructor(
    readonly code: string,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

/** The message a person needs for each errno when opening or configuring `path`. */
export function describeSerialError(code: string, path: string, action: string, baud?: number): string {
  switch (code) {
    case "ENOENT":
      return `serial device ${path} does not exist (adapter unplugged or wrong -serial path?)`;
    case "ENODEV":
    case "ENXIO":
      return `serial device ${path} is not present (adapter unplugged?)`;
    case "EACCES":
    case "EPERM":
      return `permission denied opening ${path}: run as a user in the group that owns the device (usually 'dialout': usermod -aG dialout USER) or fix the udev rule`;
    case "EBUSY":
      return `serial device ${path} is busy: another process holds it exclusively (another gateway running?)`;
    case "ENOTTY":
      return `${path} is not a serial device (not a tty)`;
    case "EISDIR":
      return `${path} is a directory, not a serial device`;
    case "EINVAL":
      return baud !== undefined ? `baud rate ${baud} is not supported by ${path}` : `${action} ${path} failed: invalid argument`;
    case "EIO":
      return `I/O error on ${path} while trying to ${action} (adapter unplugged?)`;
    default:
      return `${action} ${path} failed: ${code}`;
  }
}

function fail(code: string, path: string, action: string, baud?: number): never {
  throw new SerialOpenError(code, path, describeSerialError(code, path, action, baud));
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Already gone; nothing to release.
  }
}

/**
 * Discards output written to the tty but not yet transmitted (`tcflush(fd, TCOFLUSH)`).
 * Returns null on success, else the errno name (EIO after a hang-up, ENOTTY for a non-tty,
 * EBADF for a closed fd). Never throws.
 */
export function discardPendingOutput(fd: number): string | null {
  if (!libc) return "ENOSYS"; // no fd can have been opened by openSerial without libc
  return libc.tcflush(fd, TCOFLUSH) === 0 ? null : failedErrno();
}

/** Bytes written to the tty but not yet transmitted (TIOCOUTQ); 0 if it cannot say. Never throws. */
export function pendingOutput(fd: number): number {
  if (!libc) return 0;
  const n = new Int32Array(1);
  return libc.ioctl(fd, TIOCOUTQ, n) === 0 ? n[0]! : 0;
}

/**
 * Discards unsent output, releases the exclusive lock and closes the tty. Never throws (a
 * vanished device has nothing left to release):
 * - The flush comes first because a real UART's close() waits for pending output to drain, up
 *   to the port's closing_wait (30 s by default), whatever O_NONBLOCK says: a stalled adapter
 *   would otherwise freeze the event loop in stop() or on reconnect. Only bytes the driver
 *   already handed to the hardware (FIFO, an in-flight USB transfer) are left to go out. The
 *   bytes are lost either way (the device is being let go); a failed flush (EIO after a
 *   hang-up) leaves nothing to drain. Returns its errno name (null on success) for diagnostics.
 * - The lock lives on the kernel's tty, not on the fd: a tty that outlives this open (a pty
 *   whose master stays open, a console) would otherwise stay locked against every later
 *   non-root open.
 */
export function closeSerial(fd: number): string | null {
  const flushError = discardPendingOutput(fd);
  if (libc) libc.ioctl(fd, TIOCNXCL, null); // fails harmlessly with EIO after a hang-up
  closeQuietly(fd);
  return flushError;
}

/** An open, configured, exclusively locked tty. The caller releases it with closeSerial(fd). */
export interface OpenedSerial {
  readonly fd: number;
  /** The rate the kernel reports after configuration. */
  readonly baud: number;
}

/**
 * Opens `path` non-blocking, configures raw 8N1 at `baud` and locks it exclusively.
 * Throws SerialOpenError (never leaves the fd open on failure).
 */
export function openSerial(path: string, baud: number): OpenedSerial {
  if (!Number.isInteger(baud) || baud <= 0) throw new SerialOpenError("EINVAL", path, `baud rate ${baud} is invalid (must be a positive integer)`);
  const c = loadLibc();
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | O_NONBLOCK);
  } catch (e) {
    const code = e instanceof Error && "code" in e && typeof e.code === "string" ? e.code : "EIO";
    fail(code, path, "open");
  }
  try {
    configure(c, fd, path, baud);
    const got = readBaud(c, fd, path);
    return { fd, baud: got };
  } catch (e) {
    closeSerial(fd);
    throw e;
  }
}

function configure(c: Libc, fd: number, path: string, baud: number): void {
  // Exclusive: further open()s of this tty fail with EBUSY (root excepted, a kernel rule).
  if (c.ioctl(fd, TIOCEXCL, null) !== 0) fail(failedErrno(), path, "lock (TIOCEXCL)");

  // Keep O_NONBLOCK whatever happened to the open flags: writes must never block the loop.
  const flags = c.fcntl(fd, F_GETFL, 0);
  if (flags < 0) fail(failedErrno(), path, "read flags of");
  if ((flags & O_NONBLOCK) === 0 && c.fcntl(fd, F_SETFL, flags | O_NONBLOCK) !== 0) fail(failedErrno(), path, "set O_NONBLOCK on");

  // Raw 8N1: no echo, no line editing, no signals, no CR/LF mapping, 8 data bits, no parity,
  // one stop bit, receiver on, modem lines ignored, no hardware flow control.
  const t = new Uint8Array(TERMIOS_SIZE);
  if (c.tcgetattr(fd, t) !== 0) fail(failedErrno(), path, "read terminal settings of");
  c.cfmakeraw(t);
  const tv = new DataView(t.buffer);
  let cflag = tv.getUint32(T_CFLAG, true);
  cflag = (cflag & ~(CSIZE | PARENB | CSTOPB | CRTSCTS | HUPCL)) | CS8 | CREAD | CLOCAL;
  tv.setUint32(T_CFLAG, cflag >>> 0, true);
  if (c.tcsetattr(fd, TCSANOW, t) !== 0) fail(failedErrno(), path, "apply raw mode to");

  // Rate through termios2 (see the module comment for why not cfsetospeed).
  const t2 = new Uint8Array(TERMIOS2_SIZE);
  const v2 = new DataView(t2.buffer);
  if (c.ioctl(fd, TCGETS2, t2) !== 0) fail(failedErrno(), path, "read terminal settings (TCGETS2) of");
  const code = STANDARD_RATES.get(baud) ?? BOTHER;
  let c2 = v2.getUint32(T2_CFLAG, true);
  c2 &= ~(CBAUD | (CBAUD << CIBAUD_SHIFT));
  c2 |= code; // input rate code left 0 = same as output
  v2.setUint32(T2_CFLAG, c2 >>> 0, true);
  v2.setUint32(T2_ISPEED, baud, true);
  v2.setUint32(T2_OSPEED, baud, true);
  if (c.ioctl(fd, TCSETS2, t2) !== 0) {
    const err = failedErrno();
    fail(err, path, `set baud rate ${baud} on`, err === "EINVAL" ? baud : undefined);
  }
  const got = readBaud(c, fd, path);
  // Drivers round to what their divisor can do; more than 3 % off breaks UART framing.
  if (Math.abs(got - baud) > baud * 0.03) {
    throw new SerialOpenError("EINVAL", path, `baud rate ${baud} is not supported by ${path} (the driver set ${got})`);
  }
}

function readBaud(c: Libc, fd: number, path: string): number {
  const t2 = new Uint8Array(TERMIOS2_SIZE);
  if (c.ioctl(fd, TCGETS2, t2) !== 0) fail(failedErrno(), path, "read terminal settings (TCGETS2) of");
  const v2 = new DataView(t2.buffer);
  const cflag = v2.getUint32(T2_CFLAG, true);
  if ((cflag & CBAUD) === BOTHER) return v2.getUint32(T2_OSPEED, true);
  const code = cflag & CBAUD;
  for (const [rate, c2] of STANDARD_RATES) if (c2 === code) return rate;
  // CBAUDEX without a known code, or B0 (hang up): report what the struct says.
  return (code & CBAUDEX) !== 0 || code === 0 ? v2.getUint32(T2_OSPEED, true) : 0;
}

/** Reads the tty's termios2 state, for tests and diagnostics: cflag, and the kernel's rates. */
export function serialSettings(fd: number): { cflag: number; lflag: number; ispeed: number; ospeed: number; nonblocking: boolean; baud: number } {
  const c = loadLibc();
  const t2 = new Uint8Array(TERMIOS2_SIZE);
  if (c.ioctl(fd, TCGETS2, t2) !== 0) fail(failedErrno(), `fd ${fd}`, "read terminal settings (TCGETS2) of");
  const v2 = new DataView(t2.buffer);
  const flags = c.fcntl(fd, F_GETFL, 0);
  return {
    cflag: v2.getUint32(T2_CFLAG, true),
    lflag: v2.getUint32(12, true),
    ispeed: v2.getUint32(T2_ISPEED, true),
    ospeed: v2.getUint32(T2_OSPEED, true),
    nonblocking: flags >= 0 && (flags & O_NONBLOCK) !== 0,
    baud: readBaud(c, fd, `fd ${fd}`),
  };
}
