/**
 * Captures the kernel's RTM_NEWLINK reply for one interface, byte for byte, as the fixtures of
 * test/backends/socketcan/netlink-link.test.ts (test/fixtures/netlink/*.hex). It sends the request
 * `ip -details link show IFACE` sends (RTM_GETLINK by IFLA_IFNAME, IFLA_EXT_MASK =
 * RTEXT_FILTER_VF) on a NETLINK_ROUTE socket and writes the reply as hex, 32 bytes a line.
 * Run inside the SocketCAN VM by scripts/capture-netlink.sh (a real kernel, real drivers).
 *   bun scripts/netlink-capture.ts IFACE OUT.hex
 */
import { libc, lastErrno, describeErrno } from "../src/backends/libc.ts";
import { getLinkRequest } from "../src/backends/socketcan/netlink.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const NETLINK_ROUTE = 0;

const [iface, out] = process.argv.slice(2);
if (!iface || !out) {
  console.error("usage: bun scripts/netlink-capture.ts IFACE OUT.hex");
  process.exit(2);
}
const c = libc();
const fd = c.socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
if (fd < 0) throw new Error(`socket: ${describeErrno(lastErrno())}`);
// The request the gateway itself sends (src/backends/socketcan/netlink.ts), sequence number 1.
const req = getLinkRequest(iface, 1);
const len = req.length;
if (Number(c.send(fd, req, len, 0)) !== len) throw new Error(`send: ${describeErrno(lastErrno())}`);
const buf = new Uint8Array(65536);
const n = Number(c.recv(fd, buf, buf.length, 0));
if (n < 0) throw new Error(`recv: ${describeErrno(lastErrno())}`);
c.close(fd);
const reply = buf.subarray(0, n);
const lines: string[] = [];
for (let i = 0; i < reply.length; i += 32) lines.push(Buffer.from(reply.subarray(i, i + 32)).toString("hex"));
await Bun.write(out, `${lines.join("\n")}\n`);
console.log(`${iface}: ${n} bytes -> ${out}`);
