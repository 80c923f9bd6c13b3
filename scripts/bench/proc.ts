/**
 * Per-process figures read from /proc, for every benchmark that measures a process it started:
 * private memory (RssAnon) and file-backed memory (RssFile: mostly the binary's own mapped pages,
 * shared with the page cache) reported apart, because VmRSS adds them up and misleads; CPU time in
 * clock ticks; and the number of threads.
 */
import { readdirSync, readFileSync } from "node:fs";

export const CLK_TCK = 100;

export interface ProcMemory {
  /** VmRSS, KiB. */
  rssKiB: number;
  /** RssAnon (private: heap, stacks, JIT code), KiB. */
  anonKiB: number;
  /** RssFile (mapped files: the executable, libraries), KiB. */
  fileKiB: number;
  threads: number;
}

export function procMemory(pid: number): ProcMemory {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return {
    rssKiB: kib("VmRSS"),
    anonKiB: kib("RssAnon"),
    fileKiB: kib("RssFile"),
    threads: Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? NaN),
  };
}

/** utime + stime of a process (all its threads), in clock ticks. */
export function procCpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]);
}

/** Voluntary + involuntary context switches of every thread of a process (wake-ups). */
export function procWakeups(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      total += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0);
      total += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(s)?.[1] ?? 0);
    } catch {
      // thread ended
    }
  }
  return total;
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** "load 1.23 (2 cores), N busy processes" — how loaded the machine was, for the tables. */
export function machineLoad(): string {
  const load = readFileSync("/proc/loadavg", "utf8").split(" ");
  return `load average ${load[0]} / ${load[1]} / ${load[2]}`;
}
