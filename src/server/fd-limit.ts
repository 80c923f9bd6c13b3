/**
 * How many connections this process can hold before accept() would fail with EMFILE: the soft
 * RLIMIT_NOFILE (read from /proc/self/limits, Linux) minus the descriptors already open and a
 * reserve for the HTTP endpoint, log files, the device and reconnects. The listener refuses
 * connections beyond that cleanly, so the kernel's accept never hits the limit (where the
 * runtime would retry accept in a tight loop) and /healthz stays reachable.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Descriptors kept free for everything that is not a client connection. */
export const FD_RESERVE = 64;

/** The soft open-files limit, or null where /proc cannot say. */
export function softFdLimit(limitsText?: string): number | null {
  let text = limitsText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/limits", "utf8");
    } catch {
      return null;
    }
  }
  const m = /^Max open files\s+(\S+)/m.exec(text);
  if (!m) return null;
  if (m[1] === "unlimited") return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

function openFds(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/** Connections that fit under the fd limit (0 = unknown, no cap). Never below 1. */
export function connectionCapacity(limit = softFdLimit(), open = openFds(), reserve = FD_RESERVE): number {
  if (limit === null) return 0;
  return Math.max(1, limit - open - reserve);
}
