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

if (import.meta.main) console.log(configTableMarkdown());
