/**
 * Two private network namespaces joined by a veth pair, for tests that need real broadcast or
 * multicast (mDNS, the socketcand beacon). The network-safety rule lives here: every command is
 * scoped to a namespace this helper created (`ip -n NS …`, `ip netns exec NS …`), the veth pair is
 * born inside the first namespace with its peer placed straight into the second, so no interface
 * ever appears in the machine's own namespace and no packet reaches a real interface. Cleanup
 * always runs: useNetnsPair() registers it as afterAll next to the set-up, a half-finished set-up
 * undoes itself, the namespaces are also deleted on process exit, and destroy() checks that no
 * namespace or veth of ours is left behind. Needs root and iproute2; netnsSkipReason() says why not.
 */
import { afterAll, beforeAll } from "bun:test";
import type { Subprocess } from "bun";

/** Distinguishes this test process's namespaces from a concurrent run's. */
export const NETNS_TAG = `${process.pid % 100000}`;

/** Runs a command to completion; never throws. */
export function run(cmd: string[]): { ok: boolean; out: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, out: r.stdout.toString() + r.stderr.toString() };
}

/** Why namespace tests cannot run here, or null when they can. */
export function netnsSkipReason(): string | null {
  if (process.getuid?.() !== 0) return "not root";
  if (!run(["ip", "netns", "list"]).ok) return "`ip netns` not available";
  return null;
}

/** One side of the pair: its namespace, its veth end (at most 15 characters) and address. */
export interface NetnsEnd {
  readonly ns: string;
  readonly ifname: string;
  /** Address with prefix length, e.g. "10.213.0.1/24". */
  readonly cidr: string;
}

export interface NetnsPairSpec {
  readonly a: NetnsEnd;
  readonly b: NetnsEnd;
  /** Subnet broadcast address given to both ends (for limited/subnet broadcast senders). */
  readonly broadcast?: string;
  /** Turns multicast on for both ends and routes 224.0.0.0/4 to them (no default route here). */
  readonly multicast?: boolean;
}

export class NetnsPair {
  private readonly children: Subprocess[] = [];
  private readonly created: string[] = [];
  private readonly onExit = (): void => this.deleteNamespaces();

  constructor(readonly spec: NetnsPairSpec) {
    for (const end of [spec.a, spec.b]) {
      if (end.ifname.length > 15) throw new Error(`interface name ${end.ifname} is longer than 15 characters`);
    }
  }

  get a(): NetnsEnd {
    return this.spec.a;
  }
  get b(): NetnsEnd {
    return this.spec.b;
  }

  /** Creates both namespaces and the veth pair; on any failure undoes what it did and throws. */
  create(): void {
    const { a, b, broadcast, multicast } = this.spec;
    const bcast = broadcast === undefined ? [] : ["broadcast", broadcast];
    const linkUp = multicast ? ["up", "multicast", "on"] : ["up"];
    process.on("exit", this.onExit);
    try {
      for (const end of [a, b]) {
        this.step(["ip", "netns", "add", end.ns]);
        this.created.push(end.ns);
      }
      // The veth pair is born inside a's namespace with its peer placed straight into b's.
      this.step(["ip", "-n", a.ns, "link", "add", a.ifname, "type", "veth", "peer", "name", b.ifname, "netns", b.ns]);
      for (const end of [a, b]) this.step(["ip", "-n", end.ns, "addr", "add", end.cidr, ...bcast, "dev", end.ifname]);
      for (const end of [a, b]) this.step(["ip", "-n", end.ns, "link", "set", "lo", "up"]);
      for (const end of [a, b]) this.step(["ip", "-n", end.ns, "link", "set", end.ifname, ...linkUp]);
      // Multicast needs a route; these namespaces have no default route.
      if (multicast) for (const end of [a, b]) this.step(["ip", "-n", end.ns, "route", "add", "224.0.0.0/4", "dev", end.ifname]);
    } catch (e) {
      this.deleteNamespaces();
      throw e;
    }
  }

  /** The argv that runs `argv` inside one of this pair's namespaces. */
  argvIn(end: NetnsEnd, argv: string[]): string[] {
    if (!this.created.includes(end.ns)) throw new Error(`namespace ${end.ns} was not created by this pair`);
    return ["ip", "netns", "exec", end.ns, ...argv];
  }

  /** Registers a child started in a namespace; destroy() kills it before deleting the namespace. */
  track<P extends Subprocess>(proc: P): P {
    this.children.push(proc);
    return proc;
  }

  /** Kills tracked children, deletes both namespaces (the veth pair goes with them), and throws if any is left. */
  async destroy(): Promise<void> {
    for (const c of this.children) c.kill("SIGKILL");
    await Promise.all(this.children.splice(0).map((c) => c.exited));
    this.deleteNamespaces();
    process.off("exit", this.onExit);
    const { a, b } = this.spec;
    const namespaces = run(["ip", "netns", "list"]).out.split("\n").map((l) => l.split(" ")[0]);
    const leftovers = [
      ...[a.ns, b.ns].filter((ns) => namespaces.includes(ns)),
      // Never created outside the namespaces, so must not exist in the machine's own one either.
      ...[a.ifname, b.ifname].filter((ifname) => run(["ip", "link", "show", "dev", ifname]).ok),
    ];
    if (leftovers.length > 0) throw new Error(`network namespace cleanup left behind: ${leftovers.join(", ")}`);
  }

  private step(cmd: string[]): void {
    const r = run(cmd);
    if (!r.ok) throw new Error(`${cmd.join(" ")} failed: ${r.out}`);
  }

  private deleteNamespaces(): void {
    for (const ns of this.created.splice(0)) run(["ip", "netns", "del", ns]);
  }
}

/**
 * Call inside a describe body: creates the pair in beforeAll and always destroys it in afterAll,
 * so set-up and cleanup cannot come apart.
 */
export function useNetnsPair(spec: NetnsPairSpec): NetnsPair {
  const pair = new NetnsPair(spec);
  beforeAll(() => pair.create());
  afterAll(() => pair.destroy());
  return pair;
}
