/**
 * The README's configuration table, generated from the flag table so the docs cannot drift from
 * the code (test/cli/readme.test.ts checks README.md contains exactly this).
 */
import { FLAGS } from "./config.ts";

export function configTableMarkdown(): string {
  const rows = FLAGS.map((f) => {
    const def = f.def === "" ? "(empty)" : `\`${f.def}\``;
    const env = f.env ? `\`${f.env}\`` : "—";
    return `| \`-${f.name}\` | ${env} | ${def} | ${f.help.replaceAll("|", "\\|")}${f.isNew ? " *(new)*" : ""} |`;
  });
  return ["| flag | environment variable | default | meaning |", "|---|---|---|---|", ...rows].join("\n");
}

/** Replaces the table in README text (from its header row to its last row). */
export function withConfigTable(readme: string): string {
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => l.startsWith("| flag | environment variable |"));
  if (start < 0) throw new Error("README has no configuration table");
  let end = start + 2;
  while (end < lines.length && lines[end]!.startsWith("| `-")) end++;
  lines.splice(start, end - start, configTableMarkdown());
  return lines.join("\n");
}

// `bun src/cli/config-table.ts` prints the table; with --write it updates README.md in place.
if (import.meta.main) {
  if (process.argv.includes("--write")) {
    const path = new URL("../../README.md", import.meta.url);
    await Bun.write(path, withConfigTable(await Bun.file(path).text()));
  } else console.log(configTableMarkdown());
}
