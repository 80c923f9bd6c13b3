/**
 * What to tell an operator whose listen address cannot be bound. Bun's error says only "Failed
 * to listen at ::" (code EADDRINUSE or EACCES), the same for an old go-ampio-server still holding
 * the port and for a port below 1024 without the capability. This names the cause and what to do,
 * and for a port in use, which process holds it when the kernel lets us see: the listening
 * socket's inode from /proc/net/{tcp,tcp6,udp,udp6}, matched against the `socket:[inode]` links in
 * /proc/PID/fd (readable for our own user's processes, or all as root; under the packaged unit's
 * ProtectProc=invisible others are hidden, and then it says how to find out).
 */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** /proc/net/tcp state of a listening socket. */
const TCP_LISTEN = "0A";
/** /proc/net/udp state of a bound socket (TCP_CLOSE). */
const UDP_BOUND = "07";
/** Process directories looked at at most (a cheap bound on a failing start-up). */
const MAX_PIDS = 4096;

/** The inodes of sockets bound to `port` (listening, for TCP) in /proc/net, or [] if unreadable. */
export function socketInodes(port: number, transport: "tcp" | "udp", procRoot = "/proc"): string[] {
  const inodes: string[] = [];
  const want = transport === "tcp" ? TCP_LISTEN : UDP_BOUND;
  for (const table of transport === "tcp" ? ["tcp", "tcp6"] : ["udp", "udp6"]) {
    let text: string;
    try {
      text = readFileSync(`${procRoot}/net/${table}`, "latin1");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = f[1]!;
      const localPort = parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
      if (localPort === port && f[3] === want && f[9] !== "0") inodes.push(f[9]!);
    }
  }
  return inodes;
}

/** The process holding one of these socket inodes: "PID (name)", or null when none is visible. */
export function socketOwner(inodes: readonly string[], procRoot = "/proc"): string | null {
  if (inodes.length === 0) return null;
  const links = new Set(inodes.map((i) => `socket:[${i}]`));
  let pids: string[];
  try {
    pids = readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids.slice(0, MAX_PIDS)) {
    if (Number(pid) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`${procRoot}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!links.has(target)) continue;
      let name = "";
      try {
        name = readFileSync(`${procRoot}/${pid}/comm`, "latin1").trim();
      } catch {
        // gone meanwhile: the pid alone
      }
      return name ? `process ${pid} (${name})` : `process ${pid}`;
    }
  }
  return null;
}

/**
 * The message for a failed bind of `address` (as the flag gave it) by `what` (e.g. "cannelloni",
 * "cannelloni (UDP)"). `err` is Bun's error (its `code` decides).
 */
export function describeListenFailure(err: unknown, address: string, port: number, what: string, transport: "tcp" | "udp"): string {
  const code = (err as { code?: unknown } | null)?.code;
  const where = `cannot listen on ${address} for ${what}`;
  if (code === "EADDRINUSE") {
    const owner = socketOwner(socketInodes(port, transport));
    const proto = transport === "tcp" ? "TCP" : "UDP";
    return owner
      ? `${where}: address in use by ${owner}; stop it (an old go-ampio-server?) or choose another port`
      : `${where}: address in use by another program (find it with: ss -${transport === "tcp" ? "lt" : "lu"}np 'sport = :${port}'); stop it or choose another ${proto} port`;
  }
  if (code === "EACCES" || code === "EPERM") {
    return port > 0 && port < 1024
      ? `${where}: permission denied: ports below 1024 need the CAP_NET_BIND_SERVICE capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE and CapabilityBoundingSet=CAP_NET_BIND_SERVICE; else setcap cap_net_bind_service=+ep on the binary), or use a port of 1024 or above`
      : `${where}: permission denied (a security policy such as SELinux/AppArmor or a systemd SocketBind= rule forbids it)`;
  }
  if (code === "EADDRNOTAVAIL") return `${where}: the address is not one of this machine's (check the host part)`;
  const msg = err instanceof Error ? err.message : String(err);
  return `${where}: ${msg}`;
}
