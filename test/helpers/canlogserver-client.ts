/**
 * A canlogserver stream client for tests and benchmarks (docs/protocols.md §9), over Bun.connect
 * on loopback: it keeps the raw text and parses each `(SEC.USEC) IFACE FRAME` line itself, with a
 * parser written here from can-utils' lib.c syntax (independent of src/can/candump-log.ts).
 * Lines that do not parse go to `problems` (a test failure). Also runs Debian python3-can's
 * `can.io.CanutilsLogReader` over a captured text (canlogserverPythonRead).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CAN_EFF_FLAG, CAN_ERR_FLAG, CAN_RTR_FLAG, type CanFrame } from "../../src/can/frame.ts";
import { TcpTestClient } from "./tcp-test-client.ts";

export interface LogLine {
  readonly seconds: number;
  readonly micros: number;
  readonly iface: string;
  readonly frame: CanFrame;
}

/** Parses one log line; null if it is not one. */
export function parseLogLine(line: string): LogLine | null {
  const m = /^\((\d+)\.(\d{6})\) (\S+) ([0-9A-F]{3}|[0-9A-F]{8})#(#[0-9A-F])?(R\d?|(?:[0-9A-F]{2})*)$/.exec(line);
  if (!m) return null;
  const idText = m[4]!;
  const raw = parseInt(idText, 16) >>> 0;
  const fd = m[5] !== undefined;
  const body = m[6]!;
  let canId: number;
  if (idText.length === 8) canId = (raw & CAN_ERR_FLAG) !== 0 ? raw : (raw | CAN_EFF_FLAG) >>> 0;
  else canId = raw;
  if (body.startsWith("R")) {
    const dlc = body.length > 1 ? Number(body.slice(1)) : 0;
    return { seconds: Number(m[1]), micros: Number(m[2]), iface: m[3]!, frame: { canId: (canId | CAN_RTR_FLAG) >>> 0, len: dlc, data: new Uint8Array(0), fd: false, fdFlags: 0 } };
  }
  const data = Uint8Array.from(body.match(/../g) ?? [], (h) => parseInt(h, 16));
  const fdFlags = fd ? parseInt(m[5]!.slice(1), 16) & 0x03 : 0;
  return { seconds: Number(m[1]), micros: Number(m[2]), iface: m[3]!, frame: { canId, len: data.length, data, fd, fdFlags } };
}

export class CanlogserverTestClient extends TcpTestClient {
  text = "";
  readonly lines: LogLine[] = [];
  readonly problems: string[] = [];
  private pending = "";

  static async connect(port: number, host = "127.0.0.1"): Promise<CanlogserverTestClient> {
    return new CanlogserverTestClient().connectTo(port, host);
  }

  protected onData(data: Uint8Array): void {
    const arrived = this.arrivalTime();
    const s = new TextDecoder().decode(data);
    this.text += s;
    this.pending += s;
    let i: number;
    while ((i = this.pending.indexOf("\n")) >= 0) {
      const line = this.pending.slice(0, i);
      this.pending = this.pending.slice(i + 1);
      const parsed = parseLogLine(line);
      if (!parsed) this.problems.push(`unparsable line ${JSON.stringify(line)}`);
      else {
        this.lines.push(parsed);
        this.addFrame(parsed.frame, arrived);
      }
    }
    this.wake();
  }
}

/** A message as python-can's CanutilsLogReader produced it. */
export interface PyLogMessage {
  timestamp: number;
  channel: string;
  id: number;
  extended: boolean;
  remote: boolean;
  fd: boolean;
  brs: boolean;
  esi: boolean;
  error: boolean;
  dlc: number;
  data: string;
}

const READER = `
import json, sys
import can
out = []
for m in can.io.CanutilsLogReader(sys.argv[1]):
    out.append({"timestamp": m.timestamp, "channel": m.channel, "id": m.arbitration_id, "extended": m.is_extended_id,
                "remote": m.is_remote_frame, "fd": m.is_fd, "brs": m.bitrate_switch, "esi": m.error_state_indicator,
                "error": m.is_error_frame, "dlc": m.dlc, "data": bytes(m.data or b"").hex().upper()})
print(json.dumps(out))
`;

/** Runs Debian python3-can's CanutilsLogReader over `text` (written to a temporary .log file). */
export function canlogserverPythonRead(text: string): PyLogMessage[] {
  const dir = mkdtempSync(join(tmpdir(), "canlog-"));
  try {
    const file = join(dir, "stream.log");
    writeFileSync(file, text);
    const r = Bun.spawnSync(["/usr/bin/python3", "-c", READER, file], { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`CanutilsLogReader failed: ${r.stderr.toString()}`);
    return JSON.parse(r.stdout.toString()) as PyLogMessage[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
