/**
 * How benchmark results reach BENCHMARKS.md: one section per benchmark between
 * `<!-- bench:KEY:begin -->` / `<!-- bench:KEY:end -->` markers (replaced in place, or appended),
 * and the machine line every section starts with (CPU, memory, Bun version, date, load).
 */
import { arch, cpus, platform, totalmem } from "node:os";
import { machineLoad } from "./proc.ts";

export const BENCHMARKS = "BENCHMARKS.md";

export function machineLine(): string {
  return `${platform()}/${arch()}, ${cpus().length} × ${cpus()[0]?.model.trim() ?? "unknown CPU"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Bun ${Bun.version}`;
}

export const today = (): string => new Date().toISOString().slice(0, 10);

/** "Measured DATE on MACHINE (load average a / b / c at the start)." */
export function measuredLine(loadAtStart: string): string {
  return `Measured ${today()} on ${machineLine()}; ${loadAtStart} at the start (2 cores shared with other engineers' test runs).`;
}

export { machineLoad };

/** Replaces (or appends) the section between the KEY markers in BENCHMARKS.md. */
export async function writeSection(key: string, markdown: string): Promise<void> {
  const file = Bun.file(BENCHMARKS);
  let doc = (await file.exists()) ? await file.text() : "# Benchmarks\n\nNumbers are measurements, not targets; each section names its machine, command and date.\n";
  const begin = `<!-- bench:${key}:begin -->`;
  const end = `<!-- bench:${key}:end -->`;
  const block = `${begin}\n${markdown.trimEnd()}\n${end}`;
  if (doc.includes(begin) && doc.includes(end)) doc = doc.slice(0, doc.indexOf(begin)) + block + doc.slice(doc.indexOf(end) + end.length);
  else doc = doc.trimEnd() + "\n\n" + block + "\n";
  await Bun.write(BENCHMARKS, doc);
}

export const f3 = (n: number): string => (Number.isFinite(n) ? n.toFixed(3) : "-");
export const f2 = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : "-");
export const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
