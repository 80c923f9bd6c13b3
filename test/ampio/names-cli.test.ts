/** -ampio-names as a user meets it: a bad or missing file is one clear line and exit 2; a good one is logged. */
import { afterEach, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;
const procs: Subprocess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
});

function env(): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CAN_SERVER_")) e[k] = v;
  return e;
}

async function run(args: string[]): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn([process.execPath, MAIN, "-backend", "virtual", "-listen", "127.0.0.1:0", ...args], { stdout: "pipe", stderr: "pipe", env: env() });
  procs.push(p);
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  return { code, stderr };
}

const dir = mkdtempSync(join(tmpdir(), "can-server-names-cli-"));

test("a missing names file: one line naming it, exit 2", async () => {
  const r = await run(["-ampio-names", join(dir, "missing.toml")]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toContain("-ampio-names");
  expect(r.stderr).toContain("missing.toml: cannot read");
});

test("a names file with a mistake: one line saying where, exit 2", async () => {
  const f = join(dir, "bad.toml");
  writeFileSync(f, '[[module]]\nid = "1D4C"\n[module.channels]\n"kitchen" = "Light"\n');
  const r = await run(["-ampio-names", f]);
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toContain('bad.toml: module 1 (1D4C) channel kitchen: "kitchen" is not a value name');
});

test("-mqtt-ampio without -mqtt-url, and with -ampio-decode false: exit 2", async () => {
  const a = await run(["-mqtt-ampio"]);
  expect(a.code).toBe(2);
  expect(a.stderr).toContain("-mqtt-ampio need -mqtt-url");
  const b = await run(["-mqtt-url", "mqtt://127.0.0.1:1", "-mqtt-ampio", "-ampio-decode", "false"]);
  expect(b.code).toBe(2);
  expect(b.stderr.trim().split("\n")).toHaveLength(1);
  expect(b.stderr).toContain("-ampio-decode false");
});
