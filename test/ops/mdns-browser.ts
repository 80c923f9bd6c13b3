/**
 * Child process of test/ops/mdns.test.ts, run inside the test's own network namespace: an
 * independent DNS-SD browser (bonjour-service's Browser, not our publisher code) that prints one
 * JSON line per service that comes up or goes down for `_can-server._tcp`.
 */
import { Bonjour, type Service } from "bonjour-service";

const bonjour = new Bonjour({}, (err: Error) => process.stdout.write(JSON.stringify({ error: err.message }) + "\n"));
const show = (event: string, s: Service): void => {
  const txt = (s.txt ?? {}) as Record<string, unknown>;
  const text: Record<string, string> = {};
  for (const [k, v] of Object.entries(txt)) text[k] = v instanceof Uint8Array ? new TextDecoder().decode(v) : String(v);
  process.stdout.write(JSON.stringify({ event, name: s.name, type: s.type, protocol: s.protocol, port: s.port, host: s.host, addresses: s.addresses ?? [], txt: text }) + "\n");
};
const browser = bonjour.find({ type: "can-server", protocol: "tcp" });
browser.on("up", (s: Service) => show("up", s));
browser.on("down", (s: Service) => show("down", s));
process.stdout.write(JSON.stringify({ browsing: true }) + "\n");
process.once("SIGTERM", () => {
  browser.stop();
  bonjour.destroy(() => process.exit(0));
});
