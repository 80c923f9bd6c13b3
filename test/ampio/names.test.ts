/** The names file: TOML by hand, the Home Assistant Ampio integration's YAML, and clear one-line errors. */
import { describe, expect, test } from "bun:test";
import { NamesFileError, parseNames } from "../../src/ampio/names.ts";

describe("TOML", () => {
  test("modules by hex or numeric id, names, rooms, channels with kinds", () => {
    const n = parseNames(
      `
[[module]]
id = "1D4C"
name = "Living room"
room = "Ground floor"
type = 5
[module.channels]
"bout.1" = "Ceiling"
"aout.2" = { name = "Wall lamp", room = "Hall", kind = "dimmer" }
"heating.2" = "Bathroom floor"

[[module]]
id = 2823
name = "Blinds"
`,
      "house.toml",
    );
    expect(n.size).toBe(2);
    const m = n.module(0x1d4c)!;
    expect(m).toMatchObject({ name: "Living room", room: "Ground floor", type: 5 });
    expect(n.channel(0x1d4c, "bout.1")).toEqual({ name: "Ceiling" });
    expect(n.channel(0x1d4c, "aout.2")).toEqual({ name: "Wall lamp", room: "Hall", kind: "dimmer" });
    expect(n.channel(0x1d4c, "heating.2.target_temperature")).toEqual({ name: "Bathroom floor" }); // a zone's values share its name
    expect(n.module(2823)?.name).toBe("Blinds");
    expect(n.channel(0x1d4c, "bout.9")).toBeUndefined();
  });
});

describe("YAML: the devices: list of the Home Assistant Ampio integration (aioampio examples/config.yaml)", () => {
  test("can_id, name, area, model, pcb, sw_version and each entity's states", () => {
    const n = parseNames(
      `
outputs:
  - type: stdout
floors:
  - id: floor1
    name: Ground floor
devices:
  - can_id: 0x1879
    name: Salon
    model: 12
    pcb: 6
    sw_version: 10010
    area: Serwerownia
    lights:
      - id: light1
        name: LED Salon
        states: [rgb.1, binout.25]
        area: Salon
  - can_id: 0x1a1e
    name: Oświetlenie 1
    model: 4
    binary_sensors:
      - id: input1
        name: Mała łazienka L
        states: [ binout.1 ]
    covers:
      - id: cover1
        name: Roleta
        states: [bout.3]
`,
      "ampio.yaml",
    );
    expect(n.module(0x1879)).toMatchObject({ name: "Salon", room: "Serwerownia", type: 12, pcb: 6, softVersion: 10010 });
    expect(n.channel(0x1879, "binout.25")).toEqual({ name: "LED Salon", room: "Salon", kind: "light" });
    expect(n.channel(0x1879, "rgb.green")).toEqual({ name: "LED Salon", room: "Salon", kind: "light" }); // aioampio's rgb.1 names the colour
    expect(n.channel(0x1a1e, "binout.1")).toEqual({ name: "Mała łazienka L", kind: "binary_sensor" });
    expect(n.channel(0x1a1e, "bout.3")?.kind).toBe("cover");
  });
});

describe("bad files: one line that says where and what", () => {
  const bad: [string, string, RegExp][] = [
    ["x.toml", "[[module]]\nid = ", /x\.toml: not valid TOML/],
    ["x.yaml", "devices: [", /x\.yaml: not valid YAML/],
    ["x.txt", "", /unknown format/],
    ["x.toml", 'name = "x"', /no modules/],
    ["x.toml", '[[module]]\nid = "zz"', /module 1: id must be/],
    ["x.toml", '[[module]]\nid = "1D4C"\n[[module]]\nid = 7500', /module 2: module 1D4C is listed twice/],
    ["x.toml", '[[module]]\nid = "1D4C"\n[module.channels]\n"output 1" = "x"', /"output 1" is not a value name/],
    ["x.toml", '[[module]]\nid = "1D4C"\nname = ""', /name: must be a non-empty string/],
    ["x.toml", '[[module]]\nid = "1D4C"\ntype = 300', /type: must be an integer 0\.\.255/],
  ];
  for (const [file, text, re] of bad) {
    test(`${file}: ${JSON.stringify(text).slice(0, 40)}`, () => {
      let err: unknown;
      try {
        parseNames(text, file);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NamesFileError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).not.toContain("\n");
    });
  }
});
