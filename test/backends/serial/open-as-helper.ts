/**
 * Child process for the serial open tests that need an unprivileged user (root bypasses tty
 * permissions and TIOCEXCL): opens argv[2] at baud argv[3] with the real openSerial and prints
 * one JSON line, {"ok":true,"baud":N} or {"ok":false,"code":"EACCES","message":"…"}.
 */
import { openSerial, SerialOpenError } from "../../../src/backends/serial/ffi.ts";

const [path, baud] = [process.argv[2] ?? "", Number(process.argv[3] ?? "115200")];
try {
  const opened = openSerial(path, baud);
  console.log(JSON.stringify({ ok: true, baud: opened.baud }));
} catch (e) {
  const code = e instanceof SerialOpenError ? e.code : "unknown";
  console.log(JSON.stringify({ ok: false, code, message: e instanceof Error ? e.message : String(e) }));
}
