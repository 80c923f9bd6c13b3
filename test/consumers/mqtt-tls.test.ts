/**
 * The MQTT bridge over TLS (mqtts://, -mqtt-ca) with real parts only: a throw-away CA and broker
 * certificates made by Debian's `openssl` in a temp dir, a real Mosquitto with a TLS listener on
 * 127.0.0.1, `mosquitto_sub --cafile` as the independent TLS subscriber, and the gateway both
 * in-process (as main.ts wires it) and as its own process (`bun src/main.ts`, for exit codes,
 * /healthz and the default CA list). Missing `openssl` or `mosquitto` fails the suite, loudly:
 * scripts/ensure-test-deps.sh installs them.
 *
 * Shown: a private CA given with -mqtt-ca is trusted and frames arrive over TLS; without it the
 * handshake fails verification, logged once with what to do, counted, retried with backoff while
 * the gateway keeps serving; a certificate for another name fails too; -mqtt-ca replaces the
 * default list (NODE_EXTRA_CA_CERTS no longer counts); a bad -mqtt-ca file is exit 2 naming it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { dataFrame } from "../../src/can/frame.ts";
import type { Config } from "../../src/cli/config.ts";
import { ConfigError, parseConfig } from "../../src/cli/parse.ts";
import { validateConsumerConfig } from "../../src/consumers/consumers.ts";
import { CannelloniTestClient } from "../helpers/cannelloni-client.ts";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.ts";
import { bridgeOf, type ConsumerGateway, Mosquitto, MqttSub, startConsumerGateway, waitFor } from "./harness.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url).pathname;

/** A tool the suite drives; absent = a failed suite with the install hint, never a silent skip. */
function requireTool(cmd: string, pkg: string): string {
  const p = Bun.which(cmd, { PATH: `${process.env.PATH ?? ""}:/usr/sbin:/sbin` });
  if (p === null) throw new Error(`${cmd} not found: the MQTT TLS tests need Debian's ${pkg} (scripts/ensure-test-deps.sh installs it)`);
  return p;
}

function run(cmd: string[], cwd: string): void {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (exit ${r.exitCode}): ${r.stderr.toString()}`);
}

/** Throw-away PKI: files in `dir`, all readable (mosquitto started as root reads them as user mosquitto). */
interface Pki {
  dir: string;
  /** The CA that issued both broker certificates. */
  ca: string;
  /** Certificate + key for IP:127.0.0.1 and DNS:localhost. */
  server: { cert: string; key: string };
  /** Certificate + key for DNS:other.example only (same CA). */
  other: { cert: string; key: string };
  /** An unrelated CA (issued nothing the brokers use). */
  strangerCa: string;
  /** stranger CA, comment text, then the real CA: a bundle like ca-certificates.crt. */
  bundle: string;
}

function makePki(openssl: string): Pki {
  const dir = mkdtempSync(join(tmpdir(), "can-server-mqtt-tls-"));
  chmodSync(dir, 0o755);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const selfSignedCa = (name: string, cn: string): void =>
    run(
      [openssl, "req", "-x509", ...ec, "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${cn}`,
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
      dir,
    );
  const leaf = (name: string, san: string): void => {
    run([openssl, "req", "-new", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`], dir);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n`);
    run([openssl, "x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`], dir);
    chmodSync(join(dir, `${name}.key`), 0o644);
  };
  selfSignedCa("ca", "can-server test CA");
  selfSignedCa("stranger", "unrelated test CA");
  leaf("server", "IP:127.0.0.1,DNS:localhost");
  leaf("other", "DNS:other.example");
  const bundle = join(dir, "bundle.pem");
  writeFileSync(bundle, `# CA bundle\n${readFileSync(join(dir, "stranger.pem"), "utf8")}\nunrelated CA above, ours below\n${readFileSync(join(dir, "ca.pem"), "utf8")}`);
  return {
    dir,
    ca: join(dir, "ca.pem"),
    server: { cert: join(dir, "server.pem"), key: join(dir, "server.key") },
    other: { cert: join(dir, "other.pem"), key: join(dir, "other.key") },
    strangerCa: join(dir, "stranger.pem"),
    bundle,
  };
}

/** Mosquitto (test/consumers/harness.ts) with one TLS listener on the loopback addresses `hosts` (same port), no plain one. */
function tlsMosquitto(pki: Pki, cert: { cert: string; key: string }, hosts: readonly string[] = ["127.0.0.1"]): Mosquitto {
  return new Mosquitto({ tls: { ca: pki.ca, cert: cert.cert, key: cert.key, hosts } });
}

let pki: Pki;
/** The broker most tests use: certificate for 127.0.0.1 and localhost. */
let broker: Mosquitto;
const cleanup: (() => Promise<void> | void)[] = [];

/** The loopback addresses "localhost" resolves to here (the broker listens on each). */
async function localhostAddresses(): Promise<string[]> {
  const all = await lookup("localhost", { all: true });
  const loop = all.map((a) => a.address).filter((a) => a === "127.0.0.1" || a === "::1");
  return [...new Set(["127.0.0.1", ...loop])];
}

beforeAll(async () => {
  requireTool("mosquitto", "mosquitto");
  requireTool("mosquitto_sub", "mosquitto-clients");
  pki = makePki(requireTool("openssl", "openssl"));
  broker = tlsMosquitto(pki, pki.server, await localhostAddresses());
  await broker.start();
});
afterAll(async () => {
  await broker?.stop();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** An in-process gateway, configuration checked as main.ts checks it (validateConsumerConfig). */
async function gateway(overrides: Partial<Config>): Promise<ConsumerGateway> {
  validateConsumerConfig({ ...parseConfig([], {}), ...overrides });
  const gw = await startConsumerGateway(overrides);
  cleanup.push(() => gw.stop());
  return gw;
}

/** mosquitto_sub over TLS, trusting the test CA. */
async function tlsSub(b: Mosquitto, topic: string): Promise<MqttSub> {
  const s = await MqttSub.start(b.port, topic, ["--cafile", pki.ca]);
  cleanup.push(() => s.stop());
  return s;
}

async function metric(gw: ConsumerGateway, name: string): Promise<number> {
  const reg = new Registry();
  await gw.consumers.registerMetrics(reg);
  const line = (await reg.metrics()).split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in the metrics`);
  return Number(line.split(" ")[1]);
}

async function gatewayProcess(args: string[], shellPrefix: string): Promise<GatewayProcess> {
  const gp = await startGatewayProcess(args, { shellPrefix });
  cleanup.push(async () => void (await gp.stop()));
  return gp;
}

const FRAME = dataFrame(0x123, [0xca, 0xfe]);

describe("mqtts:// with -mqtt-ca", () => {
  test("the bridge trusts the private CA, connects over TLS and a bus frame reaches a TLS subscriber", async () => {
    const s = await tlsSub(broker, "s1/#");
    const gw = await gateway({ mqttUrl: broker.url, mqttCa: pki.ca, mqttPrefix: "s1" });
    await waitFor(() => bridgeOf(gw).connected, 5000, "bridge connected over TLS");
    await s.waitTopic("s1/availability", 5000, (m) => m.payload === "online");
    gw.backend.inject(FRAME);
    const raw = await s.waitTopic("s1/raw/123");
    expect(JSON.parse(raw.payload)).toMatchObject({ id: 0x123, ext: false, len: 2, data: "CAFE" });
    const starting = gw.events().find((e) => e.msg === "mqtt_starting")!;
    expect(starting).toMatchObject({ broker: broker.url, tls: true, ca: `${pki.ca} (CN=can-server test CA)` });
    expect(gw.events().some((e) => e.msg === "mqtt_tls_failed" || e.msg === "mqtt_connect_failed")).toBe(false);
    expect(bridgeOf(gw).counters()).toMatchObject({ connectFailures: 0, tlsFailures: 0 });
  }, 15_000);

  test("a host name in the URL: SNI and the certificate's DNS name (mqtts://localhost)", async () => {
    const s = await tlsSub(broker, "s2/raw/#");
    const gw = await gateway({ mqttUrl: broker.urlFor("localhost"), mqttCa: pki.ca, mqttPrefix: "s2" });
    await waitFor(() => bridgeOf(gw).connected, 5000, "bridge connected to localhost");
    gw.backend.inject(FRAME);
    expect((await s.waitTopic("s2/raw/123")).payload).toContain('"data":"CAFE"');
  }, 15_000);

  test("a bundle with several certificates (an unrelated CA first); broker killed and restarted: reconnects over TLS", async () => {
    const own = tlsMosquitto(pki, pki.server);
    cleanup.push(() => own.stop());
    await own.start();
    const gw = await gateway({ mqttUrl: own.url, mqttCa: pki.bundle, mqttPrefix: "s3" });
    const b = bridgeOf(gw);
    await waitFor(() => b.connected, 5000, "bridge connected");
    expect(gw.events().find((e) => e.msg === "mqtt_starting")!.ca).toBe(`${pki.bundle} (CN=unrelated test CA and 1 more)`);

    await own.kill();
    await waitFor(() => !b.connected, 5000, "bridge notices the broker is gone");
    await waitFor(() => b.counters().connectFailures >= 3, 5000, "failed attempts while the broker is away");
    // Broker gone: one line for the burst, every attempt counted, none of them a TLS failure.
    expect(gw.events().filter((e) => e.msg === "mqtt_disconnected").length).toBe(1);
    expect(gw.events().filter((e) => e.msg === "mqtt_connect_failed").length).toBe(1);
    expect(String(gw.events().find((e) => e.msg === "mqtt_connect_failed")!.error)).toContain("ECONNREFUSED");
    expect(b.counters().tlsFailures).toBe(0);
    gw.backend.inject(FRAME); // held in the outbox meanwhile

    await own.start();
    const s = await tlsSub(own, "s3/raw/#");
    await waitFor(() => b.connected, 10_000, "bridge reconnects over TLS");
    expect(b.counters().reconnects).toBe(1);
    expect(gw.events().some((e) => e.msg === "mqtt_reconnected")).toBe(true);
    gw.backend.inject(dataFrame(0x124, [1]));
    await s.waitTopic("s3/raw/124", 5000);
  }, 30_000);
});

describe("verification failures are logged once, counted, retried; the gateway keeps serving", () => {
  test("without -mqtt-ca: a private CA is not trusted", async () => {
    const gw = await gateway({ mqttUrl: broker.url, mqttPrefix: "f1" });
    const b = bridgeOf(gw);
    const client = await CannelloniTestClient.connect(gw.gateway.port("cannelloni")!, { helloFirst: true });
    cleanup.push(() => client.close());
    await client.handshake({ helloFirst: true });

    await waitFor(() => gw.events().some((e) => e.msg === "mqtt_tls_failed"), 5000, "mqtt_tls_failed");
    const t0 = Date.now();
    const n0 = b.counters().tlsFailures;
    await Bun.sleep(1500);
    const line = gw.events().find((e) => e.msg === "mqtt_tls_failed")!;
    expect(line).toMatchObject({ broker: broker.url, kind: "untrusted" });
    expect(String(line.code)).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    expect(String(line.hint)).toContain("-mqtt-ca");
    // Retried with the backoff (50 ms doubling to 400 ms here), not in a loop; logged once.
    const c = b.counters();
    const retried = c.tlsFailures - n0;
    expect(retried).toBeGreaterThanOrEqual(2);
    expect(retried).toBeLessThanOrEqual(Math.ceil((Date.now() - t0) / 50) / 2);
    expect(c.connectFailures).toBe(c.tlsFailures);
    expect(c.authFailures).toBe(0);
    expect(gw.events().filter((e) => e.msg === "mqtt_tls_failed").length).toBe(1);
    expect(gw.events().some((e) => e.msg === "mqtt_connected")).toBe(false);
    expect(b.connected).toBe(false);
    expect(await metric(gw, "mqtt_tls_failures_total")).toBe(b.counters().tlsFailures);
    expect(await metric(gw, "mqtt_connected")).toBe(0);

    // The rest of the gateway does not notice: a TCP client gets the bus.
    gw.backend.inject(FRAME);
    const got = await client.waitFrames(1);
    expect(Array.from(got[0]!.data)).toEqual([0xca, 0xfe]);
  }, 15_000);

  test("a certificate for another name (SAN DNS:other.example, URL 127.0.0.1) fails even with the right CA", async () => {
    const wrongName = tlsMosquitto(pki, pki.other);
    cleanup.push(() => wrongName.stop());
    await wrongName.start();
    const gw = await gateway({ mqttUrl: wrongName.url, mqttCa: pki.ca, mqttPrefix: "f2" });
    const b = bridgeOf(gw);
    await waitFor(() => b.counters().tlsFailures >= 2, 5000, "two failed TLS attempts");
    const lines = gw.events().filter((e) => e.msg === "mqtt_tls_failed");
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatchObject({ kind: "name_mismatch", code: "ERR_TLS_CERT_ALTNAME_INVALID" });
    expect(String(lines[0]!.hint)).toContain("not issued for 127.0.0.1 (its names: DNS:other.example)");
    expect(b.connected).toBe(false);
    // The independent client agrees: the certificate does not fit the address.
    const sub = Bun.spawnSync(["mosquitto_sub", "-h", "127.0.0.1", "-p", String(wrongName.port), "--cafile", pki.ca, "-t", "x", "-C", "1", "-W", "2"], { stderr: "pipe" });
    expect(sub.exitCode).not.toBe(0);
  }, 15_000);

  test("the gateway process: /healthz and /metrics answer while the broker's CA is untrusted", async () => {
    const gp = await gatewayProcess(["-mqtt-url", broker.url, "-mqtt-prefix", "f3"], "unset NODE_EXTRA_CA_CERTS SSL_CERT_FILE;");
    const line = await gp.waitFor("mqtt_tls_failed", 10_000);
    expect(line.kind).toBe("untrusted");
    const h = await gp.http("/healthz");
    expect(h.status).toBe(200);
    expect(await gp.metric("mqtt_tls_failures_total")).toBeGreaterThanOrEqual(1);
    expect(await gp.metric("mqtt_connected")).toBe(0);
    expect(gp.proc.exitCode).toBeNull();
  }, 20_000);
});

describe("-mqtt-ca replaces the default CA list", () => {
  test("NODE_EXTRA_CA_CERTS extends the default list; -mqtt-ca naming another CA overrides it", async () => {
    const extra = `unset SSL_CERT_FILE; export NODE_EXTRA_CA_CERTS='${pki.ca}';`;
    const viaDefault = await gatewayProcess(["-mqtt-url", broker.url, "-mqtt-prefix", "d1"], extra);
    await viaDefault.waitFor("mqtt_connected", 10_000);
    const replaced = await gatewayProcess(["-mqtt-url", broker.url, "-mqtt-prefix", "d2", "-mqtt-ca", pki.strangerCa], extra);
    const line = await replaced.waitFor("mqtt_tls_failed", 10_000);
    expect(line.kind).toBe("untrusted");
    expect(String(line.hint)).toContain(`not signed by a CA in ${pki.strangerCa}`);
    expect(replaced.lines.some((l) => l.msg === "mqtt_connected")).toBe(false);
  }, 30_000);
});

describe("a bad -mqtt-ca is a configuration error (exit 2) naming the file", () => {
  function check(args: string[], env: Record<string, string> = {}): void {
    validateConsumerConfig(parseConfig(args, env));
  }
  function refused(args: string[], pattern: RegExp): void {
    let err: unknown = null;
    try {
      check(args);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(pattern);
  }
  const url = ["-mqtt-url", "mqtts://127.0.0.1:8883"];
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

  test("missing, a directory, no certificate, a key, DER, a corrupt block", () => {
    const d = join(pki.dir, "bad");
    mkdirSync(d, { recursive: true });
    const missing = join(d, "missing.pem");
    refused([...url, "-mqtt-ca", missing], new RegExp(`^-mqtt-ca "${esc(missing)}": cannot read the file \\(no such file\\)$`));
    refused([...url, "-mqtt-ca", d], new RegExp(`^-mqtt-ca "${esc(d)}": not a regular file$`));
    const text = join(d, "text.pem");
    writeFileSync(text, "this is not a certificate\n");
    refused([...url, "-mqtt-ca", text], new RegExp(`^-mqtt-ca "${esc(text)}": no PEM certificate in the file \\(expected one or more -----BEGIN CERTIFICATE----- blocks\\)$`));
    refused([...url, "-mqtt-ca", pki.server.key], /no PEM certificate in the file .*it holds a private key/);
    const der = join(d, "ca.der");
    run([requireTool("openssl", "openssl"), "x509", "-in", pki.ca, "-outform", "der", "-out", der], d);
    refused([...url, "-mqtt-ca", der], /no PEM certificate in the file .*looks like DER: convert it with openssl x509 -inform der/);
    const corrupt = join(d, "corrupt.pem");
    writeFileSync(corrupt, readFileSync(pki.ca, "utf8") + "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
    refused([...url, "-mqtt-ca", corrupt], new RegExp(`^-mqtt-ca "${esc(corrupt)}": certificate 2 of 2 is not a valid X.509 certificate`));
  });

  test("-mqtt-ca needs an mqtts:// URL; the environment variable works like the flag", () => {
    refused(["-mqtt-url", "mqtt://127.0.0.1:1883", "-mqtt-ca", pki.ca], /^-mqtt-ca \(CAN_SERVER_MQTT_CA\) needs an mqtts:\/\/ -mqtt-url/);
    refused(["-mqtt-ca", pki.ca], /^-mqtt-ca \(CAN_SERVER_MQTT_CA\) needs an mqtts:\/\/ -mqtt-url$/);
    const c = parseConfig(url, { CAN_SERVER_MQTT_CA: pki.bundle });
    expect(c.mqttCa).toBe(pki.bundle);
    expect(() => validateConsumerConfig(c)).not.toThrow();
    expect(parseConfig([], {}).mqttCa).toBe("");
  });

  test("bun src/main.ts exits 2 with the message on stderr", () => {
    const missing = join(pki.dir, "no-such-ca.pem");
    const text = join(pki.dir, "main-text.pem");
    writeFileSync(text, "no certificate here\n");
    for (const [file, msg] of [
      [missing, `can-server: configuration error: -mqtt-ca "${missing}": cannot read the file (no such file)`],
      [text, `can-server: configuration error: -mqtt-ca "${text}": no PEM certificate in the file`],
    ] as const) {
      const r = Bun.spawnSync([process.execPath, MAIN, "-backend", "virtual", "-listen", "127.0.0.1:0", ...url, "-mqtt-ca", file], { stdout: "pipe", stderr: "pipe" });
      expect(r.exitCode).toBe(2);
      expect(r.stderr.toString()).toContain(msg);
    }
  });
});
