/**
 * The SocketCAN backend's socket layer: raw CAN sockets through libc (socket, bind, setsockopt,
 * ioctl, send, recvmmsg, close; the C library and errno names come from ../libc.ts) and errno
 * turned into clear errors. Both the main
 * thread (open, transmit, close) and the receive worker (recvmmsg) use it. Layouts are the 64-bit
 * Linux ones (amd64, arm64; Bun has no 32-bit build): docs/protocols.md §1.
 */
import { ptr } from "bun:ffi";
import { describeErrno, ERRNO, lastErrno, libc as loadLibc } from "../libc.ts";

export { describeErrno, ERRNO, lastErrno };

export const AF_CAN = 29;
export const SOCK_RAW = 3;
export const CAN_RAW = 1;
export const SOL_CAN_RAW = 101;
/** Loop sent frames back to the sockets on this host (on by default; set explicitly with RECV_OWN_MSGS). */
export const CAN_RAW_LOOPBACK = 3;
/** Also deliver a socket's own sent frames back to it (default off): the transmit confirmation. */
export const CAN_RAW_RECV_OWN_MSGS = 4;
export const CAN_RAW_FD_FRAMES = 5;
/** Which error-frame classes (can_id bits, linux/can/error.h) the socket receives; none by default. */
export const CAN_RAW_ERR_FILTER = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RCVBUFFORCE = 33;
const SO_RCVTIMEO = 20;
/** getsockopt: the socket's u32[SK_MEMINFO_VARS] memory counters (Linux 3.17+). */
const SO_MEMINFO = 55;
const SK_MEMINFO_VARS = 9;
/** Index of sk_drops in SO_MEMINFO: datagrams the kernel dropped because the buffer was full. */
const SK_MEMINFO_DROPS = 8;
const SIOCGIFFLAGS = 0x8913;
const SIOCGIFMTU = 0x8921;
const MSG_DONTWAIT = 0x40;
/**
 * recvmsg msg_flags on a CAN_RAW socket (kernel Documentation/networking/can.rst, "Returned
 * Message Flags"): MSG_DONTROUTE, the frame was sent from this host; MSG_CONFIRM, it was sent
 * through the very socket it is received on (needs CAN_RAW_RECV_OWN_MSGS): the transmit
 * confirmation, docs/protocols.md §1.
 */
export const MSG_DONTROUTE = 0x4;
export const MSG_CONFIRM = 0x800;
/** recvmmsg: block for the first datagram only, then take what is already queued. */
export const MSG_WAITFORONE = 0x10000;
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
const IFNAMSIZ = 16;
/** struct ifreq: ifr_name[16] + a 24-byte union. */
const IFREQ_SIZE = 40;
const SOCKADDR_CAN_SIZE = 24;

/** `struct can_frame` / `struct canfd_frame` sizes: a read returns exactly one of them. */
export const CAN_MTU = 16;
export const CANFD_MTU = 72;
/** struct mmsghdr on 64-bit Linux: msghdr (56 bytes) + msg_len u32 + padding. */
export const MMSGHDR_SIZE = 64;
/** offsetof(struct msghdr, msg_flags) on 64-bit Linux (name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40). */
export const MSGHDR_FLAGS_OFFSET = 48;
export const IOVEC_SIZE = 16;

/** Opened when this module loads (here and in the receive worker), as before the shared module. */
const libc = (() => {
  try {
    return loadLibc();
  } catch (e) {
    throw new Error(`cannot load the C library for SocketCAN: ${e instanceof Error ? e.message : String(e)}`);
  }
})();

/**
 * A failed socket operation. `errno` is the raw value; `fatal` marks conditions no retry can fix
 * (the kernel has no SocketCAN, or lacks a requested feature).
 */
export class SocketCanError extends Error {
  override readonly name = "SocketCanError";
  constructor(
    message: string,
    readonly errno: number,
    readonly fatal = false,
  ) {
    super(message);
  }
}

function cString(s: string): Uint8Array {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

function ifreq(iface: string): Uint8Array {
  const req = new Uint8Array(IFREQ_SIZE);
  req.set(new TextEncoder().encode(iface).subarray(0, IFNAMSIZ - 1));
  return req;
}

function setIntOption(fd: number, level: number, option: number, value: number): number {
  const v = new Int32Array([value]);
  return libc.setsockopt(fd, level, option, v, 4) === 0 ? 0 : lastErrno();
}

function getIntOption(fd: number, level: number, option: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  return libc.getsockopt(fd, level, option, v, len) === 0 ? v[0]! : -1;
}

export interface OpenOptions {
  /** Receive CAN FD frames too (CAN_RAW_FD_FRAMES). */
  readonly fd: boolean;
  /** Requested kernel receive buffer in bytes (SO_RCVBUFFORCE, falling back to SO_RCVBUF). */
  readonly rcvBufBytes: number;
  /** Blocking receives return EAGAIN after this long, so a reader thread can notice a stop request. */
  readonly rcvTimeoutMs: number;
  /** Ask for the socket's own transmitted frames back (CAN_RAW_RECV_OWN_MSGS): transmit confirmations. */
  readonly recvOwnMsgs: boolean;
  /** Error-frame classes to receive (CAN_RAW_ERR_FILTER; error-frames.ts CAN_ERR_MASK = all), 0 = none. */
  readonly errMask?: number;
}

export interface OpenSocket {
  readonly fd: number;
  readonly ifindex: number;
  /** The receive buffer the kernel granted (bytes, as getsockopt reports it). */
  readonly rcvBufBytes: number;
  /**
   * 0 when the socket receives its own transmitted frames (marked MSG_CONFIRM), else why not:
   * the errno of the failed setsockopt, or -1 when it was not asked for.
   */
  readonly recvOwnMsgsErrno: number;
  /** 0 when error frames were subscribed to (or none asked), else the errno of the refusal. */
  readonly errFilterErrno: number;
}

/**
 * Opens a CAN_RAW socket bound to `iface`. Throws SocketCanError with a message naming the
 * interface; `fatal` is set when this kernel cannot do SocketCAN (or CAN FD) at all.
 */
export function openCanSocket(iface: string, options: OpenOptions): OpenSocket {
  if (iface === "" || iface.length >= IFNAMSIZ) {
    throw new SocketCanError(`CAN interface name "${iface}" is invalid (1..15 characters)`, ERRNO.EINVAL, true);
  }
  const fd = libc.socket(AF_CAN, SOCK_RAW | SOCK_CLOEXEC, CAN_RAW);
  if (fd < 0) {
    const e = lastErrno();
    if (e === ERRNO.EAFNOSUPPORT) {
      throw new SocketCanError(
        `this kernel has no SocketCAN (AF_CAN): cannot open ${iface}; load the can and can-raw modules or use another backend (${describeErrno(e)})`,
        e,
        true,
      );
    }
    throw new SocketCanError(`cannot create a CAN socket for ${iface}: ${describeErrno(e)}`, e);
  }
  try {
    const ifindex = libc.if_nametoindex(cString(iface));
    if (ifindex === 0) {
      const e = lastErrno();
      throw new SocketCanError(`CAN interface ${iface} does not exist: ${describeErrno(e || ERRNO.ENODEV)}`, e || ERRNO.ENODEV);
    }
    if (options.fd) {
      const e = setIntOption(fd, SOL_CAN_RAW, CAN_RAW_FD_FRAMES, 1);
      if (e !== 0) {
        throw new SocketCanError(`this kernel cannot enable CAN FD (CAN_RAW_FD_FRAMES) on ${iface}: ${describeErrno(e)}`, e, true);
      }
    }
    // Not fatal: without it the backend reports a frame sent when the kernel took it (the caller logs which).
    let recvOwnMsgsErrno = -1;
    if (options.recvOwnMsgs) {
      recvOwnMsgsErrno = setIntOption(fd, SOL_CAN_RAW, CAN_RAW_LOOPBACK, 1);
      if (recvOwnMsgsErrno === 0) recvOwnMsgsErrno = setIntOption(fd, SOL_CAN_RAW, CAN_RAW_RECV_OWN_MSGS, 1);
    }
    const errFilterErrno = options.errMask ? setIntOption(fd, SOL_CAN_RAW, CAN_RAW_ERR_FILTER, options.errMask) : 0;
    // SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it SO_RCVBUF is capped by net.core.rmem_max.
    if (setIntOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, options.rcvBufBytes) !== 0) {
      setIntOption(fd, SOL_SOCKET, SO_RCVBUF, options.rcvBufBytes);
    }
    const timeout = new BigInt64Array([BigInt(Math.floor(options.rcvTimeoutMs / 1000)), BigInt((options.rcvTimeoutMs % 1000) * 1000)]);
    if (libc.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, 16) !== 0) {
      const e = lastErrno();
      throw new SocketCanError(`cannot set a receive timeout on ${iface}: ${describeErrno(e)}`, e, true);
    }
    const addr = new Uint8Array(SOCKADDR_CAN_SIZE);
    const view = new DataView(addr.buffer);
    view.setUint16(0, AF_CAN, true);
    view.setInt32(4, ifindex, true);
    if (libc.bind(fd, addr, SOCKADDR_CAN_SIZE) !== 0) {
      const e = lastErrno();
      if (e === ERRNO.ENODEV) throw new SocketCanError(`CAN interface ${iface} does not exist: ${describeErrno(e)}`, e);
      throw new SocketCanError(`cannot bind to CAN interface ${iface}: ${describeErrno(e)}`, e);
    }
    return { fd, ifindex, rcvBufBytes: getIntOption(fd, SOL_SOCKET, SO_RCVBUF), recvOwnMsgsErrno, errFilterErrno };
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

/** Interface flags (IFF_UP, IFF_RUNNING, …) through any socket; throws if the interface is gone. */
export function interfaceFlags(fd: number, iface: string): number {
  const req = ifreq(iface);
  if (libc.ioctl(fd, SIOCGIFFLAGS, req) !== 0) {
    const e = lastErrno();
    throw new SocketCanError(`cannot read the state of CAN interface ${iface}: ${describeErrno(e)}`, e);
  }
  return req[16]! | (req[17]! << 8);
}

/**
 * How many frames the kernel has dropped for this socket so far because its receive buffer was
 * full (cumulative, wrapping at 2^32). -1 if the kernel cannot say (no SO_MEMINFO).
 */
export function socketDrops(fd: number): number {
  meminfoLen[0] = meminfo.byteLength;
  if (libc.getsockopt(fd, SOL_SOCKET, SO_MEMINFO, meminfo, meminfoLen) !== 0 || meminfoLen[0]! <= SK_MEMINFO_DROPS * 4) return -1;
  return meminfo[SK_MEMINFO_DROPS]!;
}
/** Reused by socketDrops (read on every receive wake-up; each thread has its own module copy). */
const meminfo = new Uint32Array(SK_MEMINFO_VARS);
const meminfoLen = new Uint32Array(1);

/** Interface MTU: 16 = classic CAN only, 72 = CAN FD capable. -1 if it cannot be read. */
export function interfaceMtu(fd: number, iface: string): number {
  const req = ifreq(iface);
  if (libc.ioctl(fd, SIOCGIFMTU, req) !== 0) return -1;
  return new DataView(req.buffer).getInt32(16, true);
}

/**
 * Writes one frame struct without blocking. Returns 0 on success, else the errno
 * (EAGAIN/ENOBUFS when the device's queue is full).
 */
export function sendFrame(fd: number, struct: Uint8Array, length: number): number {
  const n = Number(libc.send(fd, struct, length, MSG_DONTWAIT));
  if (n === length) return 0;
  return n < 0 ? lastErrno() : ERRNO.EMSGSIZE;
}

/**
 * recvmmsg(fd, msgvec, vlen, flags, NULL): blocks (up to the socket's receive timeout) for the
 * first frame. Returns the number of messages received, or -errno.
 */
export function receiveBatch(fd: number, msgvec: Uint8Array, byteOffset: number, vlen: number, flags: number): number {
  const n = libc.recvmmsg(fd, ptr(msgvec, byteOffset), vlen, flags, null);
  return n >= 0 ? n : -lastErrno();
}

export function closeSocket(fd: number): void {
  libc.close(fd);
}

/** The address of a buffer, for building iovec/mmsghdr arrays that point into it. */
export function addressOf(bytes: Uint8Array, offset = 0): number {
  return ptr(bytes, offset);
}

/** Whether this kernel offers AF_CAN at all (a probe socket, closed at once). */
export function kernelHasSocketCan(): boolean {
  const fd = libc.socket(AF_CAN, SOCK_RAW | SOCK_CLOEXEC, CAN_RAW);
  if (fd < 0) return false;
  libc.close(fd);
  return true;
}
