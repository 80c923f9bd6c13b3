/**
 * The package descriptions (package.json, .deb control, systemd unit) say what the program does
 * today, and the packaged defaults file speaks only of variables that exist. scripts/release-test.sh
 * checks the same on the built packages.
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { FLAGS } from "../../src/cli/config.ts";
import { unnamedProtocols } from "./protocol-names.ts";

const read = (p: string): string => readFileSync(new URL(`../../${p}`, import.meta.url), "utf8");

test("the check itself: a description missing a protocol is caught", () => {
  expect(unnamedProtocols("cannelloni, Waveshare, socketcand")).toEqual(["slcan", "gvret", "canlogserver", "cannelloni-udp"]);
  expect(unnamedProtocols("cannelloni TCP/UDP, Waveshare, socketcand, slcan, GVRET, canlogserver")).toEqual([]);
});

test("package.json, the .deb control file and the unit's Description= name every client protocol", () => {
  const pkg = JSON.parse(read("package.json")) as { description: string };
  const control = read("packaging/deb/control.in");
  const unit = /^Description=(.*)$/m.exec(read("packaging/can-server.service"))![1]!;
  for (const [what, text] of [["package.json", pkg.description], ["control.in", control.slice(control.indexOf("Description:"))], ["unit", unit]] as const) {
    expect({ what, missing: unnamedProtocols(text) }).toEqual({ what, missing: [] });
  }
  for (const text of [pkg.description, control]) for (const feature of [/dashboard/i, /MQTT/, /record/i]) expect(text).toMatch(feature);
});

test("the defaults file mentions only real CAN_SERVER_* variables, and no stale read-deadline claim", () => {
  const defaults = read("packaging/can-server.default");
  const known = new Set([...FLAGS.flatMap((f) => (f.env ? [f.env] : [])), "CAN_SERVER_EXTRA_FLAGS"]);
  const named = [...new Set(defaults.match(/CAN_SERVER_[A-Z0-9_]+/g) ?? [])];
  expect(named.filter((v) => !known.has(v))).toEqual([]);
  expect(defaults).not.toMatch(/read deadline/i);
  expect(defaults).toMatch(/dashboard/);
});
