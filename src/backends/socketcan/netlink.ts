/**
 * Asks the kernel for one interface's link facts over rtnetlink (RTM_GETLINK on a NETLINK_ROUTE
 * socket, as `ip -details -statistics link show IFACE` does) and parses the answer with
 * link-info.ts: the CAN controller's state, bit timing and error counters. The request builder is
 * pure; the socket is bun:ffi through ../libc.ts. The kernel answers a getlink request while
 * send() runs (rtnetlink handles it in the sender's context), so the reply is read without
 * blocking: the main thread never waits on the kernel here.
 */
import { describeErrno, errnoName, lastErrno, libc } from "../libc.ts";
import { LinkInfoError, parseLinkMessage, RTM_NEWLINK, type LinkInfo } from "./link-info.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const RTM_GETLINK = 18;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const ENODEV = 19;
const IFLA_IFNAME = 3;
const IFLA_EXT_MASK = 29;
const RTEXT_FILTER_VF = 1;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const IFNAMSIZ = 16;
/** One RTM_NEWLINK of a CAN interface is about 1 KiB; room for a large one (many VFs) too. */
const REPLY_BUFFER = 32 * 1024;

/**
 * The RTM_GETLINK request for `iface` by name (nlmsghdr, ifinfomsg with index 0, IFLA_IFNAME,
 * IFLA_EXT_MASK = RTEXT_FILTER_VF as iproute2 sends it), little-endian.
 */
export function getLinkRequest(iface: string, seq: number): Uint8Array {
  const name = new TextEncoder().encode(iface);
  if (name.length === 0 || name.length >= IFNAMSIZ) throw new RangeError(`interface name "${iface}" is invalid (1..15 bytes)`);
  const nameAttr = 4 + name.length + 1;
  const len = 16 + 16 + ((nameAttr + 3) & ~3) + 8;
  const req = new Uint8Array(len);
  const v = new DataView(req.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, RTM_GETLINK, true);
  v.setUint16(6, NLM_F_REQUEST, true);
  v.setUint32(8, seq >>> 0, true);
  // pid 0: addressed to the kernel. ifinfomsg: family AF_UNSPEC, index 0 = look up by name.
  let p = 32;
  v.setUint16(p, nameAttr, true);
  v.setUint16(p + 2, IFLA_IFNAME, true);
  req.set(name, p + 4);
  p += (nameAttr + 3) & ~3;
  v.setUint16(p, 8, true);
  v.setUint16(p + 2, IFLA_EXT_MASK, true);
  v.setUint32(p + 4, RTEXT_FILTER_VF, true);
  return req;
}

/**
 * Finds the answer to request `seq` in the bytes of one netlink read: the RTM_NEWLINK parsed, or
 * a LinkInfoError (the kernel's error reply, e.g. ENODEV for a vanished interface). Null when
 * none of the messages answers `seq` (a stale reply to an earlier request).
 */
export function linkReply(bytes: Uint8Array, seq: number): LinkInfo | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  while (p + 16 <= bytes.byteLength) {
    const len = view.getUint32(p, true);
    if (len < 16 || p + len > bytes.byteLength) throw new LinkInfoError(`netlink message of ${len} bytes at byte ${p}, ${bytes.byteLength - p} present`);
    const type = view.getUint16(p + 4, true);
    if (view.getUint32(p + 8, true) === seq >>> 0) {
      if (type === NLMSG_ERROR && len >= 20) {
        const errno = -view.getInt32(p + 16, true);
        throw new LinkInfoError(errno === ENODEV ? "no such interface (ENODEV)" : `the kernel answered ${errnoName(errno)}`);
      }
      if (type === RTM_NEWLINK || type === NLMSG_ERROR) return parseLinkMessage(bytes.subarray(p, p + len));
    }
    p += (len + 3) & ~3;
  }
  return null;
}

/** A NETLINK_ROUTE socket for reading link facts; open once, ask as often as needed. */
export class LinkInfoReader {
  private fd: number;
  private seq = 0;
  private readonly buf = new Uint8Array(REPLY_BUFFER);

  constructor() {
    const c = libc();
    this.fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (this.fd < 0) throw new LinkInfoError(`cannot open a netlink socket: ${describeErrno(lastErrno())}`);
  }

  /** The link facts of `iface`; throws LinkInfoError (no such interface, no answer, bad answer). */
  read(iface: string): LinkInfo {
    if (this.fd < 0) throw new LinkInfoError("netlink socket closed");
    const c = libc();
    // Replies left over from an earlier request that timed out or was not read: drop them.
    while (Number(c.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT)) > 0);
    const seq = (this.seq = (this.seq + 1) >>> 0 || 1);
    const req = getLinkRequest(iface, seq);
    if (Number(c.send(this.fd, req, req.length, 0)) !== req.length) throw new LinkInfoError(`netlink request failed: ${describeErrno(lastErrno())}`);
    for (let tries = 0; tries < 4; tries++) {
      const n = Number(c.recv(this.fd, this.buf, this.buf.length, MSG_DONTWAIT | MSG_TRUNC));
      if (n < 0) break;
      if (n > this.buf.length) throw new LinkInfoError(`netlink reply of ${n} bytes is larger than ${this.buf.length}`);
      const info = linkReply(this.buf.subarray(0, n), seq);
      if (info !== null) return info;
    }
    throw new LinkInfoError(`no netlink answer for ${iface}`);
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}

/** One look at `iface` with a socket of its own (start-up: the bus's bit rate). */
export function readLinkInfo(iface: string): LinkInfo {
  const r = new LinkInfoReader();
  try {
    return r.read(iface);
  } finally {
    r.close();
  }
}
