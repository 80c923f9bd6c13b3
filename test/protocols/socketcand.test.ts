/**
 * socketcand raw mode (docs/protocols.md §8): the shared conformance suite run on the
 * client → gateway direction (python-can's `< send >` text through the command reader), parser
 * tests per command with the exact reply bytes, the `< frame >` encoder byte for byte, and a
 * cross-check that the installed python-can 4.1 (the real client, run as a subprocess) parses every
 * encoded frame at any read boundary. The session's events sink is a recorder: WireSessionEvents is
 * the interface the server layer implements.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { CAN_EFF_FLAG, CAN_ERR_FLAG, type CanFrame, dataFrame, fdFrame, formatFrame, remoteFrame } from "../../src/can/frame.ts";
import type { WireSessionEvents } from "../../src/protocols/protocol.ts";
import {
  CommandReader,
  encodeSocketcandFrames,
  parseSend,
  SOCKETCAND_MAX_COMMAND,
  socketcandTimestamp,
} from "../../src/protocols/socketcand/codec.ts";
import { socketcand } from "../../src/protocols/socketcand/protocol.ts";
import { startTestGateway, type TestGateway } from "../helpers/gateway.ts";
import { RawSocketcandClient } from "../helpers/socketcand-clients.ts";
import { Rng, randomChunks, runCodecConformance } from "./conformance.ts";
import { allAt, stamped } from "../helpers/stamped.ts";

const ascii = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** python-can 4.1's `convert_can_message_to_ascii_message`, except extended ids get 8 digits. */
function sendCommand(f: CanFrame): string {
  const ext = (f.canId & CAN_EFF_FLAG) !== 0;
  const id = (f.canId & 0x1fffffff).toString(16).toUpperCase();
  const bytes = Array.from(f.data, (b) => b.toString(16)).join(" ");
  return `< send ${ext ? id.padStart(8, "0") : id} ${f.len.toString(16).toUpperCase()} ${bytes} >`;
}

runCodecConformance({
  name: "socketcand send",
  encode: (frames) => ascii(frames.map(sendCommand).join("")),
  makeDecoder(onFrame) {
    const r = new CommandReader((body) => {
      const words = body.trim().split(/\s+/);
      const f = parseSend(words);
      if (typeof f !== "string") onFrame(f);
      return true;
    });
    return {
      push: (c) => {
        r.push(c);
        return null;
      },
      buffered: () => r.buffered,
      rejected: () => r.rejected,
    };
  },
  genFrame(rng: Rng) {
    const ext = rng.bool();
    return dataFrame(ext ? rng.int(0x20000000) : rng.int(0x800), rng.bytes(rng.int(9)), ext);
  },
  maxBuffered: SOCKETCAND_MAX_COMMAND,
  // A resynchronising codec: an over-long command (here with garbage around it) is skipped.
  malformed: ascii(` junk <${"x".repeat(SOCKETCAND_MAX_COMMAND + 1)}> more junk `),
});

describe("socketcand command reader", () => {
  function read(...chunks: string[]): { bodies: string[]; rejects: string[]; garbage: number; buffered: number } {
    const bodies: string[] = [];
    const rejects: string[] = [];
    const r = new CommandReader(
      (b) => {
        bodies.push(b);
        return true;
      },
      (reason) => rejects.push(reason),
    );
    for (const c of chunks) r.push(ascii(c));
    expect(r.rejected).toBe(rejects.length);
    return { bodies, rejects, garbage: r.garbage, buffered: r.buffered };
  }

  test("commands back to back and with whitespace between", () => {
    expect(read("< open can0 >< rawmode >\r\n < echo >\n")).toEqual({ bodies: [" open can0 ", " rawmode ", " echo "], rejects: [], garbage: 0, buffered: 0 });
  });

  test("command split in two chunks", () => {
    expect(read("< send 12", "3 1 ff >").bodies).toEqual([" send 123 1 ff "]);
  });

  test("'<' and '>' in their own chunks", () => {
    expect(read("<", " echo ", ">").bodies).toEqual([" echo "]);
  });

  test("garbage outside < … > is skipped silently, as socketcand's receive_command() does", () => {
    const r = read("< echo > hello < echo >", "GET / HTTP/1.1\r\n", "< echo >x");
    expect(r.bodies).toEqual([" echo ", " echo ", " echo "]);
    expect(r.rejects).toEqual([]);
    expect(r.garbage).toBe("hello".length + "GET/HTTP/1.1".length + 1);
  });

  test("a stray '>' outside an element is garbage; a '<' inside one is part of its body", () => {
    expect(read("> < echo >")).toMatchObject({ bodies: [" echo "], garbage: 1 });
    expect(read("< a < b >").bodies).toEqual([" a < b "]);
  });

  test("binary garbage before the first element is skipped", () => {
    const bodies: string[] = [];
    const r = new CommandReader((b) => {
      bodies.push(b);
      return true;
    });
    r.push(Uint8Array.from([0x00, 0xff, 0x80, 0x3e, 0x0d]));
    r.push(ascii("< echo >"));
    expect(bodies).toEqual([" echo "]);
    expect(r.garbage).toBe(4);
    expect(r.buffered).toBe(0);
  });

  test(`command of ${SOCKETCAND_MAX_COMMAND} bytes is fine, one more is skipped up to its '>' and reported once`, () => {
    expect(read(`<${" ".repeat(SOCKETCAND_MAX_COMMAND - 4)}echo>`).bodies.length).toBe(1);
    const r = read("<", "x".repeat(SOCKETCAND_MAX_COMMAND), "x", "xx > < echo >");
    expect(r.bodies).toEqual([" echo "]);
    expect(r.rejects).toEqual([`command longer than ${SOCKETCAND_MAX_COMMAND} bytes skipped`]);
    expect(r.buffered).toBe(0);
  });

  test("an over-long command in one chunk with commands around it", () => {
    const r = read(`< echo ><${"y".repeat(SOCKETCAND_MAX_COMMAND + 1)}>< send 1 0  >`);
    expect(r.bodies).toEqual([" echo ", " send 1 0  "]);
    expect(r.rejects).toHaveLength(1);
  });

  test("an endless command is cut off and reported once, nothing buffered; the next element after its '>' is read", () => {
    const rejects: string[] = [];
    const bodies: string[] = [];
    const r = new CommandReader(
      (b) => {
        bodies.push(b);
        return true;
      },
      (reason) => rejects.push(reason),
    );
    r.push(ascii("<"));
    let maxHeld = 0;
    for (let i = 0; i < 1000; i++) {
      r.push(ascii("a".repeat(64)));
      maxHeld = Math.max(maxHeld, r.buffered);
    }
    expect(rejects).toHaveLength(1);
    expect(maxHeld).toBeLessThanOrEqual(SOCKETCAND_MAX_COMMAND);
    expect(r.buffered).toBe(0);
    r.push(ascii("aaa>< echo >"));
    expect(bodies).toEqual([" echo "]);
  });

  test("handler returning false stops reading", () => {
    const bodies: string[] = [];
    const r = new CommandReader((b) => {
      bodies.push(b);
      return false;
    });
    r.push(ascii("< a >< b > garbage"));
    r.push(ascii("< c >"));
    expect(bodies).toEqual([" a "]);
  });
});

describe("socketcand send parser", () => {
  const p = (s: string) => parseSend(s.trim().split(/\s+/));

  test("python-can form: uppercase id, hex dlc, lowercase unpadded bytes", () => {
    expect(p("send 123 3 a 1b ff")).toEqual(dataFrame(0x123, [0x0a, 0x1b, 0xff]));
  });

  test("uppercase bytes", () => {
    expect(p("send 7FF 2 AB CD")).toEqual(dataFrame(0x7ff, [0xab, 0xcd]));
  });

  test("8 hex digits make an extended id even when small", () => {
    expect(p("send 00000123 0")).toEqual(dataFrame(0x123, [], true));
  });

  test("an id with 8 digits is extended, one with up to 3 standard (0x800 refused); 4..7 digits above 0x7FF extended (python-can 4.1)", () => {
    // socketcand: extended only with 8 digits; three digits are a standard id, and 0x800 is none
    expect(p("send 800 1 1")).toBe('id 800 is not a standard id (0..7FF); write an extended id with 8 hex digits');
    expect(p("send FFF 0")).toContain("not a standard id");
    // 4..7 digits above 0x7FF: extended, as python-can 4.1 writes them (`{id:X}`, unpadded)
    expect(p("send F001D4C 0")).toEqual(dataFrame(0x0f001d4c, [], true));
    expect(p("send 0800 0")).toEqual(dataFrame(0x800, [], true));
    expect(p("send 00000800 1 1")).toEqual(dataFrame(0x800, [1], true));
    expect(p("send 0123 0")).toEqual(dataFrame(0x123, []));
    expect((p("send 1ABCDE0F 0") as CanFrame).canId).toBe((CAN_EFF_FLAG | 0x1abcde0f) >>> 0);
  });

  test("zero data bytes (python-can writes two spaces)", () => {
    expect(p("send 1 0  ")).toEqual(dataFrame(0x1, []));
  });

  test("errors", () => {
    expect(p("send")).toBe("send needs an id and a dlc");
    expect(p("send xyz 1 1")).toContain("bad id");
    expect(p("send 123456789 0")).toContain("bad id");
    expect(p("send 20000000 0")).toContain("above 0x1FFFFFFF");
    expect(p("send 123 9 1 2 3 4 5 6 7 8 9")).toBe("dlc 9 above 8");
    expect(p("send 123 2 1")).toBe("dlc 2 but 1 data bytes");
    expect(p("send 123 1 100")).toContain("bad data byte");
    expect(p("send 123 1 zz")).toContain("bad data byte");
    expect(p("send 123 x")).toContain("bad dlc");
  });
});

describe("socketcand frame encoder", () => {
  const t = 1700000000123000; // µs

  test("timestamp SEC.USEC", () => {
    expect(socketcandTimestamp(t)).toBe("1700000000.123000");
    expect(socketcandTimestamp(5000)).toBe("0.005000");
    expect(socketcandTimestamp(1700000000999999)).toBe("1700000000.999999");
  });

  test("standard id %03X, extended %08X, data %02X without spaces", () => {
    const wire = encodeSocketcandFrames(allAt(t, [dataFrame(0x12, [0xab, 0x01]), dataFrame(0x1abcde0f, [0xff], true), dataFrame(0x5, [], true)]), 3);
    expect(text(wire)).toBe(
      " < frame 012 1700000000.123000 AB01 >" + " < frame 1ABCDE0F 1700000000.123000 FF >" + " < frame 00000005 1700000000.123000  >",
    );
  });

  test("no data keeps both spaces", () => {
    expect(text(encodeSocketcandFrames(allAt(t, [dataFrame(0x7ff, [])]), 1))).toBe(" < frame 7FF 1700000000.123000  >");
  });

  test("RTR, FD and error frames are skipped", () => {
    const err: CanFrame = { canId: CAN_ERR_FLAG | 4, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 };
    const wire = encodeSocketcandFrames(allAt(t, [remoteFrame(0x1, 2), fdFrame(0x2, [1]), err, dataFrame(0x3, [3])]), 4);
    expect(text(wire)).toBe(" < frame 003 1700000000.123000 03 >");
  });

  test("each frame carries its own arrival time", () => {
    const wire = encodeSocketcandFrames([stamped(dataFrame(1, [1]), t), stamped(dataFrame(2, [2]), t + 1), stamped(dataFrame(3, [3]), 2_000_000)], 3);
    expect(text(wire)).toBe(" < frame 001 1700000000.123000 01 >" + " < frame 002 1700000000.123001 02 >" + " < frame 003 2.000000 03 >");
  });

  test("only frames[0..count)", () => {
    expect(encodeSocketcandFrames(allAt(t, [dataFrame(1, [1]), dataFrame(2, [2])]), 0).length).toBe(0);
  });
});

interface Recorded {
  log: string[];
  frames: CanFrame[];
  fails: [string, string][];
}

function recorder(): { events: WireSessionEvents; rec: Recorded } {
  const rec: Recorded = { log: [], frames: [], fails: [] };
  const events: WireSessionEvents = {
    frame: (f) => {
      rec.frames.push(f);
      rec.log.push("frame");
    },
    reply: (b) => rec.log.push(text(b)),
    ready: () => rec.log.push("ready"),
    rejected: (reason) => rec.log.push(`rejected ${reason}`),
    fail: (kind, reason) => {
      rec.fails.push([kind, reason]);
      rec.log.push(`fail ${kind}`);
    },
  };
  return { events, rec };
}

describe("socketcand session", () => {
  const opts = { fd: false, busName: "can0" };
  function opened(): { s: ReturnType<typeof socketcand.open>; rec: Recorded } {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.start();
    s.receive(ascii("< open can0 >"));
    s.receive(ascii("< rawmode >"));
    rec.log.length = 0;
    return { s, rec };
  }

  test("protocol identity", () => {
    expect(socketcand.name).toBe("socketcand");
    expect(socketcand.defaultPort).toBe(29536);
  });

  test("python-can handshake: exact replies, each its own reply, ready after the last < ok >", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.start();
    expect(rec.log).toEqual(["< hi >"]);
    s.receive(ascii("< open can0 >"));
    expect(rec.log).toEqual(["< hi >", "< ok >"]);
    s.receive(ascii("< rawmode >"));
    expect(rec.log).toEqual(["< hi >", "< ok >", "< ok >", "ready"]);
  });

  test("open and rawmode in one chunk", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.start();
    s.receive(ascii("< open can0 >< rawmode >< send 123 1 ff >"));
    expect(rec.log).toEqual(["< hi >", "< ok >", "< ok >", "ready", "frame"]);
    expect(rec.frames).toEqual([dataFrame(0x123, [0xff])]);
  });

  test("wrong bus name: error reply, then handshake failure, nothing after", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.start();
    s.receive(ascii("< open vcan9 >< rawmode >"));
    s.receive(ascii("< rawmode >"));
    expect(rec.log).toEqual(["< hi >", "< error could not open bus vcan9 >", "fail handshake"]);
  });

  test("echo works in every mode", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.receive(ascii("< echo >"));
    expect(rec.log).toEqual(["< echo >"]);
    const o = opened();
    o.s.receive(ascii("< echo >"));
    expect(o.rec.log).toEqual(["< echo >"]);
  });

  test("rawmode before open is answered with an error, session continues", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.receive(ascii("< rawmode >< open can0 >< rawmode >"));
    expect(rec.log).toEqual(["< error no bus open >", "< ok >", "< ok >", "ready"]);
  });

  test("send before rawmode is answered with an error", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.receive(ascii("< open can0 >< send 1 0  >"));
    expect(rec.log).toEqual(["< ok >", "< error send is only supported in raw mode >"]);
  });

  test("second open and second rawmode", () => {
    const { s, rec } = opened();
    s.receive(ascii("< open can0 >< rawmode >"));
    expect(rec.log).toEqual(["< error bus already open >", "< ok >"]);
  });

  test("known but unsupported commands get an error and the session continues", () => {
    const { s, rec } = opened();
    for (const c of ["add 1 0 123 0", "update 1 0 123 0", "delete 123", "subscribe 0 0 123", "unsubscribe 123", "filter 0 0 123 0", "isotpmode", "bcmmode", "controlmode", "statistics 1000", "isotpconf 1 2", "sendpdu 1 2"]) {
      s.receive(ascii(`< ${c} >`));
    }
    s.receive(ascii("< send 123 0  >"));
    expect(rec.log).toEqual([
      "< error command not supported: add >",
      "< error command not supported: update >",
      "< error command not supported: delete >",
      "< error command not supported: subscribe >",
      "< error command not supported: unsubscribe >",
      "< error command not supported: filter >",
      "< error command not supported: isotpmode >",
      "< error command not supported: bcmmode >",
      "< error command not supported: controlmode >",
      "< error command not supported: statistics >",
      "< error command not supported: isotpconf >",
      "< error command not supported: sendpdu >",
      "frame",
    ]);
    expect(rec.fails).toEqual([]);
  });

  test("unknown and empty commands get an error; the name is sanitised", () => {
    const { s, rec } = opened();
    s.receive(ascii("< frobnicate >< >< a<b >"));
    expect(rec.log).toEqual(["< error unknown command: frobnicate >", "< error empty command >", "< error unknown command: a?b >"]);
  });

  test("bad send is answered with an error and the session continues", () => {
    const { s, rec } = opened();
    s.receive(ascii("< send 123 9 1 2 3 4 5 6 7 8 9 >< send 123 2 1 >< send 124 1 7 >"));
    expect(rec.log).toEqual([
      "rejected dlc 9 above 8",
      "< error dlc 9 above 8 >",
      "rejected dlc 2 but 1 data bytes",
      "< error dlc 2 but 1 data bytes >",
      "frame",
    ]);
    expect(rec.frames).toEqual([dataFrame(0x124, [7])]);
  });

  test("garbage outside < … > is skipped: no reply, no failure, no count; frames around it arrive", () => {
    const { s, rec } = opened();
    s.receive(ascii("< send 1 0 > GET / HTTP/1.1\r\n"));
    s.receive(ascii("< send 2 0 >"));
    expect(rec.log).toEqual(["frame", "frame"]);
    expect(rec.frames).toEqual([dataFrame(0x1, []), dataFrame(0x2, [])]);
  });

  test("garbage before the handshake does not break it", () => {
    const { events, rec } = recorder();
    const s = socketcand.open(events, opts);
    s.start();
    s.receive(ascii("\x00\x01junk< open can0 >junk>"));
    s.receive(ascii("< rawmode >"));
    expect(rec.log).toEqual(["< hi >", "< ok >", "< ok >", "ready"]);
  });

  test("over-long command: rejected (counted) once, answered with an error, session continues", () => {
    const { s, rec } = opened();
    s.receive(ascii(`< ${"x".repeat(600)}`));
    s.receive(ascii(`${"x".repeat(600)} >< send 3 1 aa >`));
    const reason = `command longer than ${SOCKETCAND_MAX_COMMAND} bytes skipped`;
    expect(rec.log).toEqual([`rejected ${reason}`, `< error ${reason} >`, "frame"]);
    expect(rec.fails).toEqual([]);
    expect(rec.frames).toEqual([dataFrame(0x3, [0xaa])]);
  });

  test("accepts classic data frames only", () => {
    const { s } = opened();
    expect(s.accepts(dataFrame(0x1, [1]))).toBe(true);
    expect(s.accepts(remoteFrame(0x1, 1))).toBe(false);
    expect(s.accepts(fdFrame(0x1, [1]))).toBe(false);
    expect(s.accepts({ canId: CAN_ERR_FLAG, len: 8, data: new Uint8Array(8), fd: false, fdFlags: 0 })).toBe(false);
  });

  test("encode writes the frame's arrival time, not the time of encoding", () => {
    const { s } = opened();
    const out = text(s.encode([stamped(dataFrame(0x1, [1]), 1_234_567_890_000_001)], 1));
    expect(out).toBe(" < frame 001 1234567890.000001 01 >");
  });
});

// The installed python-can (Debian python3-can 4.1) is the real client; run its receive loop over
// our bytes cut at random read boundaries. Without the separator before each element it loses one
// frame per boundary (its buffer slice skips one character).
const PYTHON = "/usr/bin/python3";
const PY_SCRIPT = String.raw`
import sys, json, random, select, logging
from collections import deque
logging.disable(logging.CRITICAL)
import can.interfaces.socketcand.socketcand as m
data = sys.stdin.buffer.read()
out = []
for seed in range(int(sys.argv[1])):
    rng = random.Random(seed)
    chunks, p = [], 0
    while p < len(data):
        n = rng.randint(100, 1024); chunks.append(data[p:p+n]); p += n
    class Sock:
        def recv(self, n): return chunks.pop(0) if chunks else b""
    bus = m.SocketCanDaemonBus.__new__(m.SocketCanDaemonBus)
    bus._SocketCanDaemonBus__socket = Sock()
    bus._SocketCanDaemonBus__message_buffer = deque()
    bus._SocketCanDaemonBus__receive_buffer = ""
    m.select.select = lambda r, w, x, t: (r, [], [])
    got = []
    for _ in range(100000):
        if not chunks and not bus._SocketCanDaemonBus__message_buffer: break
        msg, _ = bus._recv_internal(0)
        if msg is not None: got.append([msg.arbitration_id, msg.data.hex()])
    out.append(got)
print(json.dumps(out))
`;

const havePythonCan = existsSync(PYTHON) && Bun.spawnSync([PYTHON, "-c", "import can.interfaces.socketcand"]).exitCode === 0;

describe("socketcand frames through python-can 4.1's parser", () => {
  test.skipIf(!havePythonCan)("every frame arrives, in order, at random read boundaries", () => {
    const rng = new Rng(2024);
    const frames = Array.from({ length: 300 }, () => {
      const ext = rng.bool();
      return dataFrame(ext ? rng.int(0x20000000) : rng.int(0x800), rng.bytes(rng.int(9)), ext);
    });
    const wire = encodeSocketcandFrames(allAt(1700000000123000, frames), frames.length);
    const proc = Bun.spawnSync([PYTHON, "-c", PY_SCRIPT, "10"], { stdin: wire, timeout: 30_000 });
    expect(proc.exitCode).toBe(0);
    const runs = JSON.parse(text(proc.stdout)) as [number, string][][];
    const want = frames.map((f): [number, string] => [f.canId & 0x1fffffff, Buffer.from(f.data).toString("hex")]);
    expect(runs.length).toBe(10);
    for (const got of runs) expect(got).toEqual(want);
  });
});

describe("SavvyCAN's send syntax (signed hex ids and bytes)", () => {
  test("extended id with bit 31 set, as SavvyCAN writes it", () => {
    const f = parseSend(["send", "80000123", "1", "5"]);
    expect(typeof f).not.toBe("string");
    expect(formatFrame(f as CanFrame)).toBe("00000123#05");
  });
  test("negative id (signed int with bit 31) and negative bytes", () => {
    // 0x80000123 as a signed 32-bit int is -0x7ffffedd
    const f = parseSend(["send", "-7ffffedd", "3", "-1", "-80", "ffffffffffffff81"]);
    expect(typeof f).not.toBe("string");
    expect(formatFrame(f as CanFrame)).toBe("00000123#FF8081");
  });
  test("still refused: ids with RTR/ERR bits, bytes out of range", () => {
    expect(typeof parseSend(["send", "c0000123", "0"])).toBe("string");
    expect(typeof parseSend(["send", "123", "1", "-81"])).toBe("string");
    expect(typeof parseSend(["send", "123", "1", "100"])).toBe("string");
    expect(typeof parseSend(["send", "123", "1", "0000000000000080"])).toBe("string");
  });
});

describe("socketcand framing tolerance over real TCP", () => {
  let gw: TestGateway | null = null;
  let client: RawSocketcandClient | null = null;
  afterEach(async () => {
    if (client && !client.closed) client.close();
    client = null;
    await gw?.stop();
    gw = null;
  });

  async function until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + 3000;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(5);
    }
  }

  test("garbage between elements is skipped, an over-long command is counted and answered; the session stays open", async () => {
    gw = await startTestGateway({ socketcandListen: "127.0.0.1:0" });
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    client = await RawSocketcandClient.connect(gw.gateway.port("socketcand")!);
    await client.handshake("can0");
    client.write("GET / HTTP/1.1\r\n< send 123 1 ff > junk\x00\x7f");
    client.write(`<${"x".repeat(SOCKETCAND_MAX_COMMAND + 100)}`);
    client.write(`${"x".repeat(100)}>< send 124 0  >`);
    await until(() => onBus.length === 2, "both frames on the bus");
    expect(onBus.map(formatFrame)).toEqual(["123#FF", "124#"]);
    await client.waitElements(4);
    expect(client.elements[3]).toBe(`error command longer than ${SOCKETCAND_MAX_COMMAND} bytes skipped`);
    expect(gw.stats.protocol("socketcand").malformed).toBe(1);
    expect(gw.stats.malformedFrames).toBe(1);
    expect(gw.events().filter((e) => e.msg === "protocol_violation")).toEqual([]);
    // Bus → client still flows (injected until one arrives: the socketcand start window is not
    // what this test is about).
    await until(() => {
      if (client!.frames.length === 0) gw!.backend.inject(dataFrame(0x20, [0x20]));
      return client!.frames.length > 0;
    }, "a bus frame at the client");
    expect(client.frames[0]).toBe("020#20");
    expect(client.closed).toBe(false);
  });

  test("`< send 800 0 >` is refused with an error (not sent as extended 0x800); `-1` is the byte FF, as socketcand reads it", async () => {
    gw = await startTestGateway({ socketcandListen: "127.0.0.1:0" });
    const onBus: CanFrame[] = [];
    gw.backend.observe((f) => onBus.push(f));
    client = await RawSocketcandClient.connect(gw.gateway.port("socketcand")!);
    await client.handshake("can0");
    client.write("< send 800 0 >< send FFF 1 1 >< send 00000800 1 -1 >< send 123 1 100 >");
    await until(() => onBus.length === 1 && gw!.stats.protocol("socketcand").malformed === 3, "one frame on the bus, three refused");
    await Bun.sleep(50);
    expect(onBus.map(formatFrame)).toEqual(["00000800#FF"]);
    const errors = (await client.waitElements(6)).filter((e) => e.startsWith("error"));
    expect(errors).toEqual([
      "error id 800 is not a standard id (0..7FF); write an extended id with 8 hex digits",
      "error id FFF is not a standard id (0..7FF); write an extended id with 8 hex digits",
      'error bad data byte "100"',
    ]);
    expect(client.closed).toBe(false);
  });
});
