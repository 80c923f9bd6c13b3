/**
 * How many descriptors connections may hold before accept() would fail with EMFILE: the soft
 * RLIMIT_NOFILE (read from /proc/self/limits, Linux) minus the descriptors already open and a
 * reserve for log files, the device, the HTTP listener and reconnects. The admission layer
 * (src/net/admission.ts) spends this budget on TCP clients and HTTP connections alike and refuses
 * connections beyond it cleanly, so accept never hits the limit (where the runtime retries
 * accept in a tight loop) and /healthz stays reachable.
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

/** Established clients per CPU core when -max-clients is 0: fan-out to idle clients costs CPU per frame. */
export const CLIENTS_PER_CORE = 128;
/** The derived client limit is never below this (a single-core board still serves a household). */
export const MIN_DERIVED_CLIENTS = 64;

/**
 * -max-clients 0: a limit that follows the machine. The hub hands every bus frame to every
 * client, so the cost of a frame grows with the clients: thousands of idle clients on a busy
 * bus kept the event loop from answering /healthz for over a second. 128 per core (256 on a
 * two-core board, as the packaged unit sets) keeps the loop responsive at a saturated bus;
 * never more than the descriptor budget holds (0 = no budget known).
 */
export function derivedMaxClients(cores: number, fdBudget: number): number {
  const byCpu = Math.max(MIN_DERIVED_CLIENTS, CLIENTS_PER_CORE * Math.max(1, cores));
  return fdBudget > 0 ? Math.max(1, Math.min(byCpu, fdBudget)) : byCpu;
}
