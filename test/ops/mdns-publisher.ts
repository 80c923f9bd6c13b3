/**
 * Child process of test/ops/mdns.test.ts, run inside the test's own network namespace
 * (`ip netns exec`): publishes the advertisement with startMdns(), prints each log line as JSON
 * on stdout, and on SIGTERM withdraws it and prints {"stopped":true}.
 * Usage: bun mdns-publisher.ts <name> <port> <host> <txt-json>
 */
import { startMdns } from "../../src/ops/mdns.ts";
import { createLogger } from "../../src/ops/log.ts";

const [name = "", port = "0", host = "test-host.local", txt = "{}"] = process.argv.slice(2);
const log = createLogger("json", "debug", (line) => process.stdout.write(line + "\n"));
const ad = startMdns({ name, port: Number(port), host, txt: JSON.parse(txt) as Record<string, string>, log });
process.once("SIGTERM", () => {
  void ad.stop().then(() => {
    process.stdout.write(JSON.stringify({ stopped: true }) + "\n");
    process.exit(0);
  });
});
