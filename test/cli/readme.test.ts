/** README.md must hold the configuration table generated from the flag table (docs stay true). */
import { expect, test } from "bun:test";
import { configTableMarkdown } from "../../src/cli/config-table.ts";

test("README configuration table matches the flags (regenerate: bun src/cli/config-table.ts)", async () => {
  const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
  expect(readme).toContain(configTableMarkdown());
});
