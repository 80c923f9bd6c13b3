/**
 * Debian's python3-canmatrix as a DBC oracle: frames in (JSON over stdin), its decoding out.
 * Shared by the oracle test and the DBC benchmark. The python side is canmatrix-decode.py.
 */
import { join } from "node:path";

/** Where Debian's python3-canmatrix installs its DBC files. */
export const CANMATRIX_DIR = "/usr/lib/python3/dist-packages/canmatrix";
export const J1939_DBC = join(CANMATRIX_DIR, "j1939.dbc");
export const CANMATRIX_TEST_DBC = join(CANMATRIX_DIR, "tests", "test_frame_decoding.dbc");
const SCRIPT = join(import.meta.dir, "canmatrix-decode.py");

export interface OracleFrame {
  readonly id: number;
  readonly extended: boolean;
  readonly data: readonly number[];
}

/** Per frame: signal name → [raw, physical] as canmatrix prints them, or canmatrix's error. */
export type OracleResult = { readonly signals: Record<string, [string, string]> } | { readonly error: string };

export async function canmatrixDecode(file: string, frames: readonly OracleFrame[]): Promise<{ frames: OracleResult[]; seconds: number }> {
  // Debian's python, not a pyenv shim: python3-canmatrix lives in /usr/lib/python3/dist-packages.
  const p = Bun.spawn(["/usr/bin/python3", SCRIPT], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  p.stdin.write(JSON.stringify({ file, frames }));
  await p.stdin.end();
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`canmatrix-decode.py exited ${code}: ${err.slice(-2000)}`);
  return JSON.parse(out) as { frames: OracleResult[]; seconds: number };
}

/** Reads canmatrix's number strings ("7", "1.5", "nan", "inf", "-inf"). */
export function pyNumber(s: string): number {
  if (s === "nan") return Number.NaN;
  if (s === "inf") return Number.POSITIVE_INFINITY;
  if (s === "-inf") return Number.NEGATIVE_INFINITY;
  return Number(s);
}
