/**
 * Version, commit and build date of this binary. scripts/build.sh injects them with
 * `bun build --define CAN_SERVER_VERSION='"…"'` (and _COMMIT, _DATE), the way go-ampio-server used
 * `-ldflags -X`; run from source, the version comes from package.json and commit/date read
 * "unknown". Feeds `-version`, `build_info{version,commit,date}` and the mDNS TXT record.
 */
import packageJson from "../../package.json" with { type: "json" };

// Replaced by literal strings at build time; undeclared (typeof → "undefined") when run from source.
declare const CAN_SERVER_VERSION: string;
declare const CAN_SERVER_COMMIT: string;
declare const CAN_SERVER_DATE: string;

export interface BuildInfo {
  version: string;
  commit: string;
  date: string;
}

export function buildInfo(): BuildInfo {
  return {
    version: typeof CAN_SERVER_VERSION === "string" ? CAN_SERVER_VERSION : packageJson.version,
    commit: typeof CAN_SERVER_COMMIT === "string" ? CAN_SERVER_COMMIT : "unknown",
    date: typeof CAN_SERVER_DATE === "string" ? CAN_SERVER_DATE : "unknown",
  };
}

/** The `-version` output: one line, like go-ampio-server's "can-server <version> (commit …, built …)". */
export function versionLine(info: BuildInfo = buildInfo()): string {
  return `can-server ${info.version} (commit ${info.commit}, built ${info.date})`;
}
