/** Job and frame input (pure): what the API, the configuration file and the state file accept. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatFrame } from "../../src/can/frame.ts";
import { frameFromJson, frameToJson, FrameJsonError } from "../../src/can/frame-json.ts";
import { JobInputError, parseJobInput, parseJobPatch } from "../../src/jobs/job-input.ts";
import { loadConfiguration, type Configuration } from "../../src/cli/config-file.ts";
import { printConfig } from "../../src/cli/print-config.ts";
import { ConfigError } from "../../src/cli/parse.ts";

describe("frames as JSON", () => {
  test("objects and candump text, round trip", () => {
    const cases: [unknown, string][] = [
      [{ id: 291, data: "0102" }, "123#0102"],
      [{ id: 305419896, ext: true, data: "" }, "12345678#"],
      [{ id: "0x7ff", data: "de.ad be" }, "7FF#DEADBE"],
      [{ id: 5, ext: true }, "00000005#"],
      [{ id: 1, rtr: true, dlc: 2 }, "001#R2"],
      [{ id: 1, fd: true, brs: true, data: "00".repeat(12) }, `001##1${"00".repeat(12)}`],
      ["123#R", "123#R"],
    ];
    for (const [input, text] of cases) {
      const f = frameFromJson(input);
      expect(formatFrame(f)).toBe(text);
      expect(formatFrame(frameFromJson(frameToJson(f)))).toBe(text);
    }
  });
  test("refusals name the field", () => {
    const bad: [unknown, string][] = [
      [{ id: 1, data: "0" }, "not hex"],
      [{ id: 1, data: "xx" }, "not hex"],
      [{ id: -1 }, "out of range"],
      [{ id: 0x20000000, ext: true }, "out of range"],
      [{ id: 1.5 }, "out of range"],
      [{ id: 0x800, ext: false }, "above 0x7FF"],
      [{ id: 1, data: "00".repeat(9) }, "at most 8"],
      [{ id: 1, fd: true, data: "00".repeat(9) }, "not a CAN FD length"],
      [{ id: 1, rtr: true, data: "00" }, "no data"],
      [{ id: 1, brs: true }, "need"],
      [{ id: 1, ext: "yes" }, "true or false"],
      [{ data: "00" }, "id must be"],
      ["12#00", "3 (standard) or 8"],
      [42, "must be an object"],
    ];
    for (const [input, msg] of bad) expect(() => frameFromJson(input)).toThrow(FrameJsonError), expect(() => frameFromJson(input)).toThrow(msg);
  });
});

describe("job input", () => {
  test("a periodic job, a counted sequence, a one-shot at a time", () => {
    expect(parseJobInput({ frame: { id: 1024, data: "aa" }, period_ms: 100 })).toMatchObject({ periodMs: 100, count: null, startAt: null, name: "" });
    const seq = parseJobInput({ frames: ["100#01", "100#02"], period_ms: 10, count: 4, name: "s" });
    expect(seq.frames.map(formatFrame)).toEqual(["100#01", "100#02"]);
    expect(parseJobInput({ frame: "001#", count: 1, start_at: "2030-01-01T00:00:00Z" }).startAt).toBe(Date.parse("2030-01-01T00:00:00Z"));
  });
  test("refusals", () => {
    for (const [v, msg] of [
      [{ frame: "100#01" }, "period_ms is needed"],
      [{ frame: "100#01", period_ms: 0 }, "period_ms must be"],
      [{ frame: "100#01", period_ms: 10, count: 0 }, "count must be"],
      [{ frame: "100#01", frames: ["100#01"], period_ms: 10 }, "not both"],
      [{ frames: [], period_ms: 10 }, "1..64"],
      [{ period_ms: 10 }, 'needs "frame"'],
      [{ frame: "100#01", period_ms: 10, start_at: "soon" }, "start_at"],
      [{ frame: "100#01", period_ms: 10, every: 3 }, "every is not a job field"],
      [{ frame: { id: 1, data: "x" }, period_ms: 10 }, "frame.data"],
    ] as [unknown, string][]) {
      expect(() => parseJobInput(v)).toThrow(JobInputError);
      expect(() => parseJobInput(v)).toThrow(msg);
    }
    expect(() => parseJobPatch({})).toThrow("nothing to change");
    expect(() => parseJobPatch({ start_at: 1 })).toThrow("cannot be changed");
    expect(parseJobPatch({ frame: "001#BB" }).frames!.map(formatFrame)).toEqual(["001#BB"]);
  });
});

describe("[[job]] tables", () => {
  const load = (text: string): unknown => {
    const dir = mkdtempSync(join(tmpdir(), "can-jobcfg-"));
    try {
      const p = join(dir, "c.toml");
      writeFileSync(p, text);
      return loadConfiguration(["-config", p], {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  test("read with the default bus", () => {
    const c = load('[[job]]\nname = "beat"\nframe = { id = 0x700, data = "05" }\nperiod_ms = 1000\n') as { jobs: { id: string; bus: string; spec: { periodMs: number } }[] };
    expect(c.jobs).toMatchObject([{ id: "beat", bus: "can0", spec: { periodMs: 1000 } }]);
  });
  test("-print-config writes them back so that -config reads the same jobs", () => {
    const text = '[[job]]\nname = "seq"\nframes = [{ id = 0x700, data = "05" }, "12345678#AA"]\nperiod_ms = 20\ncount = 7\nstart_at = "2030-01-01T00:00:00Z"\n[[job]]\nname = "beat"\nframe = "7FF#R"\nperiod_ms = 1000\n';
    const a = load(text) as Configuration;
    const printed = printConfig(a);
    expect(printed).toContain('[[job]]\nname = "seq"\nbus = "can0"\nframes = ["700#05", "12345678#AA"]\nperiod_ms = 20\ncount = 7\nstart_at = "2030-01-01T00:00:00.000Z"');
    const b = load(printed) as Configuration;
    const view = (c: Configuration) => c.jobs.map((j) => ({ ...j, spec: { ...j.spec, frames: j.spec.frames.map(formatFrame) } }));
    expect(view(b)).toEqual(view(a));
  });
  test("errors name the file, line and key", () => {
    const err = (text: string): string => {
      try {
        load(text);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(err('[[job]]\nframe = "001#"\nperiod_ms = 5\n')).toContain('every [[job]] needs name');
    expect(err('[[job]]\nname = "a"\nbus = "can7"\nframe = "001#"\nperiod_ms = 5\n')).toMatch(/line 3: key "bus" in \[\[job\]\] #1: no bus "can7"/);
    expect(err('[[job]]\nname = "a"\nframe = "001#"\nperiod_ms = 0\n')).toMatch(/line 4: key "period_ms" in \[\[job\]\] #1: period_ms must be/);
    expect(err('[[job]]\nname = "a"\nframe = "001#"\nperiod_ms = 5\n[[job]]\nname = "a"\nframe = "001#"\nperiod_ms = 5\n')).toContain("used twice");
  });
});
