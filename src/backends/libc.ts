/**
 * The one place the backends open the C library (bun:ffi) and turn errno into names and text.
 * The serial tty layer (serial/ffi.ts) and the SocketCAN socket layer (socketcan/ffi.ts, also
 * loaded by its receive worker: each thread gets its own copy of this module) share it, so both
 * find glibc or musl the same way and name an errno the same way ("ENETDOWN (Network is down)").
 *
 * Every symbol a backend needs is bound in one dlopen: they all exist in glibc and musl alike.
 * ioctl and fcntl are variadic; their third argument is passed in the same register as a fixed
 * one on the x86_64 SysV and Linux aarch64 ABIs (Bun's only Linux targets), so a fixed signature
 * is safe there.
 */
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import os from "node:os";

/** Library names tried in order: glibc (x86_64 and aarch64 alike), then musl's loader names. */
const LIBC_CANDIDATES = ["libc.so.6", `libc.musl-${process.arch === "arm64" ? "aarch64" : "x86_64"}.so.1`, "libc.so"];

const SYMBOLS = {
  // termios (serial)
  tcgetattr: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  tcsetattr: { args: [FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  cfmakeraw: { args: [FFIType.ptr], returns: FFIType.void },
  // ioctl(fd, TCFLSH, queue) in glibc and musl alike; a fixed signature, unlike ioctl's.
  tcflush: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  fcntl: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  // sockets (SocketCAN)
  socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  bind: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  setsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  getsockopt: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  if_nametoindex: { args: [FFIType.ptr], returns: FFIType.u32 },
  send: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recv: { args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i64 },
  recvmmsg: { args: [FFIType.i32, FFIType.ptr, FFIType.u32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
  close: { args: [FFIType.i32], returns: FFIType.i32 },
  // both
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
} as const;

export type Libc = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

/** This system has no C library bun:ffi can load: no retry can fix it. */
export class LibcUnavailableError extends Error {
  override readonly name = "LibcUnavailableError";
}

let loaded: Libc | null = null;
let loadError: string | null = null;

/** The C library, opened on first use; throws LibcUnavailableError (every time) if there is none. */
export function libc(): Libc {
  if (loaded !== null) return loaded;
  if (loadError !== null) throw new LibcUnavailableError(loadError);
  const tried: string[] = [];
  for (const name of LIBC_CANDIDATES) {
    try {
      loaded = dlopen(name, SYMBOLS).symbols;
      return loaded;
    } catch (e) {
      tried.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  loadError = `cannot load the C library (${tried.join("; ")})`;
  throw new LibcUnavailableError(loadError);
}

/** Linux errno values the backends test for (identical on x86_64 and aarch64). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  ENETDOWN: 100,
  ENOBUFS: 105,
} as const;

/** errno → name: the names above first (EAGAIN, not EWOULDBLOCK), then the rest of the OS's table. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(ERRNO).map(([name, n]) => [n, name]));
for (const [name, n] of Object.entries(os.constants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);

/** errno of the last failed libc call on this thread (read right after the call); 0 if unknown. */
export function lastErrno(): number {
  const p = libc().__errno_location();
  return p === null ? 0 : read.i32(p as Pointer, 0);
}

/** "ENETDOWN", or "errno 4095" for a number this system has no name for. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** "ENETDOWN (Network is down)" */
export function describeErrno(errno: number): string {
  return `${errnoName(errno)} (${String(libc().strerror(errno))})`;
}
