/** `-replay-speed` text → time scale (2 = twice as fast), or null when it is not one. Pure. */
export function replaySpeedValue(text: string): number | null {
  const t = text.trim();
  const n = Number(t);
  if (t === "" || !Number.isFinite(n) || n <= 0 || n > 10_000) return null;
  return n;
}

export const REPLAY_SPEED_HELP = "a number above 0 and at most 10000 (e.g. 1, 2, 0.5)";
