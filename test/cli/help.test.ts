/** -help: grouped by topic, every value's real form, drop-in flags marked once, examples that parse. */
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { FLAG_GROUPS, FLAGS } from "../../src/cli/config.ts";
import { DROP_IN_MARK, EXAMPLES, protocolDefault, usage, valueForm } from "../../src/cli/help.ts";
import { parseConfig } from "../../src/cli/parse.ts";
import { PROTOCOLS } from "../../src/protocols/registry.ts";

const help = usage();
const lines = help.split("\n");

test("-help has its topic groups, in order, each with its flags", () => {
  const titles = Object.values(FLAG_GROUPS);
  const at = titles.map((t) => lines.indexOf(`${t}:`));
  for (const [i, t] of titles.entries()) expect({ t, at: at[i]! >= 0 }).toEqual({ t, at: true });
  expect([...at].sort((a, b) => a - b)).toEqual(at);
  for (const t of ["Bus and backend", "Client protocols", "Transmit and security", "HTTP endpoint: dashboard", "Recording and replay", "Ampio", "MQTT", "Logging and operations"]) {
    expect(titles.some((x) => x.startsWith(t))).toBe(true);
  }
  // Every flag is listed once, under its own group's heading.
  for (const f of FLAGS) {
    const heads = lines.flatMap((l, i) => (l.startsWith(`  -${f.name} `) || l === `  -${f.name}` ? [i] : []));
    expect({ flag: f.name, count: heads.length }).toEqual({ flag: f.name, count: 1 });
    const group = lines.slice(0, heads[0]).findLast((l) => /^[A-Z].*:$/.test(l));
    expect({ flag: f.name, group }).toEqual({ flag: f.name, group: `${FLAG_GROUPS[f.group]}:` });
  }
});

test("-help shows each value's real form: no <kind> or unknown placeholders", () => {
  expect(help).not.toMatch(/<(string|rate|int|addr|duration|cidrs|peers|enum)>/);
  for (const f of FLAGS) {
    if (f.kind === "string") expect({ flag: f.name, arg: f.arg }).toEqual({ flag: f.name, arg: expect.stringMatching(/^[A-Z][A-Z|.\[\],:]*$/) });
    if (f.kind !== "bool") expect(valueForm(f)).not.toBe("TEXT");
  }
  expect(help).toContain("  -replay-speed FACTOR\n");
  expect(help).toContain("  -client-tx-burst auto|N\n");
  expect(help).toContain("  -metrics-addr [HOST]:PORT  *\n");
});

test("go-ampio-server's flags are marked once each, explained once at the top; no per-line 'new' notes", () => {
  expect(help).not.toContain("new in can-server");
  expect(help).toContain(`Flags marked ${DROP_IN_MARK} are go-ampio-server's`);
  const marked = lines.filter((l) => l.startsWith("  -") && l.endsWith(`  ${DROP_IN_MARK}`)).map((l) => l.trim().split(" ")[0]!.slice(1));
  expect(marked.sort()).toEqual(FLAGS.filter((f) => !f.isNew).map((f) => f.name).sort());
});

test("the protocol table is aligned: every column starts at the same place on every row", () => {
  const start = lines.indexOf("Client protocols (all serve the same bus):") + 1;
  const rows = lines.slice(start, start + 1 + PROTOCOLS.length);
  const flagCol = rows[0]!.indexOf("listen flag");
  const defCol = rows[0]!.indexOf("default");
  for (const [i, p] of PROTOCOLS.entries()) {
    const row = rows[i + 1]!;
    expect(row.indexOf(` -${p.flag} `) + 1).toBe(flagCol);
    expect(row.indexOf(protocolDefault(p))).toBe(defCol);
  }
});

test("the examples at the end are valid command lines", () => {
  expect(help).toContain("\nExamples:\n");
  for (const [, cmd] of EXAMPLES) {
    expect(help).toContain(`    ${cmd}\n`);
    const argv = cmd.split(" ").slice(1);
    expect(() => parseConfig(argv, {})).not.toThrow();
  }
});

test("nothing a user reads calls go-ampio-server 'the seed' (-help, src/, README, docs, packaging)", () => {
  expect(help.toLowerCase()).not.toContain("seed");
  // The project's name for go-ampio-server; other seeds (a protocol's "stan_json seed") are fine.
  const root = new URL("../../", import.meta.url).pathname;
  const files = ["README.md", ...["src", "docs", "packaging"].flatMap((d) => readdirSync(join(root, d), { recursive: true, encoding: "utf8" }).map((f) => join(d, f)))];
  const hits = files
    .filter((f) => /\.(ts|md|js|txt|html|css|service|default)$|control$|postinst$/.test(f) && statSync(join(root, f)).isFile())
    .flatMap((f) => readFileSync(join(root, f), "utf8").split("\n").flatMap((l, i) => (/\bthe seed\b|\bseed's\b/i.test(l) ? [`${f}:${i + 1}`] : [])));
  expect(hits).toEqual([]);
});
