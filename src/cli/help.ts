/**
 * `-help`: the flags grouped by topic (FLAG_GROUPS), each with its value's form, default and
 * environment variable; go-ampio-server's own flags marked once with `*`; examples at the end.
 * Generated from the flag table and the protocol registry, so it cannot drift from the code.
 */
import { PROTOCOLS, type AnyProtocolDescriptor } from "../protocols/registry.ts";
import { FLAG_GROUPS, FLAGS, type FlagGroup, type FlagSpec } from "./config.ts";

/** Text width -help wraps descriptions to (fits an 80-column terminal with room to spare). */
const WIDTH = 78;
const INDENT = "      ";

/** The drop-in marker: flags go-ampio-server had, with the same name, default and variable. */
export const DROP_IN_MARK = "*";

/** The value's form as -help shows it after the flag name ("" for a bool, which needs none). */
export function valueForm(f: FlagSpec): string {
  if (f.arg) return f.arg;
  switch (f.kind) {
    case "bool":
      return "";
    case "enum":
      return f.values!.join("|");
    case "int":
      return "N";
    case "duration":
      return "DURATION";
    case "addr":
      return f.defaultPort !== undefined ? "[HOST]:PORT|true" : "[HOST]:PORT";
    case "peers":
      return "HOST:PORT[,HOST:PORT...]";
    case "cidrs":
      return "CIDR[,CIDR...]";
    case "rate":
      return "auto|N";
    case "string":
      // A string flag must name its form (FlagSpec.arg); test/cli/help.test.ts checks every one does.
      return "TEXT";
  }
}

/** Word-wraps `text` to WIDTH columns, every line indented. */
function wrap(text: string, indent: string): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent.length + line.length + 1 + word.length > WIDTH) {
      out.push(indent + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(indent + line);
  return out;
}

/** Rows of cells as an aligned table (every column padded to its widest cell). */
export function alignedTable(rows: readonly (readonly string[])[], indent = "  "): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => (indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join("")).trimEnd());
}

function flagLines(f: FlagSpec): string[] {
  const form = valueForm(f);
  const head = `  -${f.name}${form ? ` ${form}` : ""}${f.isNew ? "" : `  ${DROP_IN_MARK}`}`;
  const def = f.def === "" ? '""' : f.def;
  return [head, ...wrap(f.help, INDENT), `${INDENT}default ${def}${f.env ? `; env ${f.env}` : ""}`];
}

/** Example command lines with what they do (test/cli/help.test.ts parses each one). */
export const EXAMPLES: readonly (readonly [string, string])[] = [
  [
    "No hardware: loop the demo log of a source checkout, dashboard at http://127.0.0.1:9100/",
    "can-server -backend replay -replay-file demo/ampio-demo.log -replay-loop -metrics-addr 127.0.0.1:9100",
  ],
  [
    "SocketCAN can0 for SavvyCAN (GVRET) and python-can (socketcand), only the LAN may connect",
    "can-server -can-if can0 -gvret-listen -socketcand-listen -allow 192.168.1.0/24",
  ],
  [
    "Ampio USB adapter, Waveshare clients (Home Assistant), MQTT bridge, recording to disk",
    "can-server -backend serial -serial /dev/ttyUSB0 -waveshare-listen -mqtt-url mqtt://localhost:1883 -record /var/lib/can-server",
  ],
];

/** The protocol table's last column: where the listener is unless its flag says otherwise. */
export function protocolDefault(p: AnyProtocolDescriptor): string {
  return p.required ? `always on, ${p.defaultAddress}` : `off (true = :${p.defaultPort})`;
}

export function usage(): string {
  const protocolRows = [
    ["protocol", "listen flag", "default"],
    ...PROTOCOLS.map((p) => [p.title, `-${p.flag}`, protocolDefault(p)]),
  ];
  const lines = [
    "Usage: can-server [flags]",
    "",
    "can-server bridges one CAN bus (SocketCAN, an Ampio or slcan USB adapter, a remote cannelloni or",
    "socketcand gateway, a virtual bus or a recorded log) to network clients over seven protocols,",
    "with a web dashboard, live capture, recording and replay, Ampio and DBC decoding and an MQTT",
    "bridge.",
    "",
    "Flags take -name value, -name=value or --name. A flag overrides its CAN_SERVER_* environment",
    `variable, which overrides the default. Flags marked ${DROP_IN_MARK} are go-ampio-server's, with the same name,`,
    "default and variable (can-server is a drop-in replacement); the others are can-server's own.",
    "",
    "Client protocols (all serve the same bus):",
    ...alignedTable(protocolRows),
  ];
  for (const [group, title] of Object.entries(FLAG_GROUPS) as [FlagGroup, string][]) {
    const flags = FLAGS.filter((f) => f.group === group);
    if (flags.length === 0) continue;
    lines.push("", `${title}:`);
    for (const f of flags) lines.push(...flagLines(f));
  }
  lines.push("", "Examples:");
  for (const [what, cmd] of EXAMPLES) lines.push(`  ${what}:`, `    ${cmd}`);
  lines.push("", "More: README.md and docs/ (installed in /usr/share/doc/can-server/ by the .deb).");
  return lines.join("\n") + "\n";
}
