/**
 * TLS for the MQTT bridge (mqtts://): the -mqtt-ca file and what a failed handshake means.
 *
 * -mqtt-ca names a PEM file with the CA certificate(s) to trust for the broker. It is read once at
 * start-up (loadCaFile) and handed to mqtt.js / node:tls as `ca`, which REPLACES the runtime's
 * default list (Bun's built-in Mozilla roots, NODE_EXTRA_CA_CERTS): with the flag, only the CAs in
 * the file are trusted for the broker, as with `mosquitto_sub --cafile` or `curl --cacert`. There
 * is deliberately no way to turn verification off.
 *
 * tlsFailure() classifies a connection error: certificate not trusted, name mismatch, expired,
 * other TLS trouble — or null for what is not TLS (refused, timeout, credentials).
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";

/** A CA file bigger than this is not a CA file (Debian's whole ca-certificates.crt is ~220 KB). */
export const CA_FILE_MAX_BYTES = 4 << 20;

export class CaFileError extends Error {
  override readonly name = "CaFileError";
}

export interface CaBundle {
  /** The path as given on the command line. */
  readonly file: string;
  /** One PEM block per certificate, as node:tls takes them. */
  readonly certificates: readonly string[];
  /** Subject of each certificate (for the start-up log line). */
  readonly subjects: readonly string[];
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g;

/** Reads and checks a -mqtt-ca file; every problem is a CaFileError naming the file. */
export function loadCaFile(file: string): CaBundle {
  const where = `-mqtt-ca ${JSON.stringify(file)}`;
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new CaFileError(`${where}: not a regular file`);
    if (st.size > CA_FILE_MAX_BYTES) throw new CaFileError(`${where}: ${st.size} bytes, too big for a CA certificate file (at most ${CA_FILE_MAX_BYTES})`);
    text = readFileSync(file, "latin1");
  } catch (e) {
    if (e instanceof CaFileError) throw e;
    const code = (e as { code?: unknown }).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : e instanceof Error ? e.message : String(e);
    throw new CaFileError(`${where}: cannot read the file (${why})`);
  }
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) {
    const hint = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)
      ? " (it holds a private key: give the CA's certificate, never a key)"
      : text.startsWith("\u0030\u0082")
        ? " (it looks like DER: convert it with openssl x509 -inform der -in FILE -out ca.pem)"
        : "";
    throw new CaFileError(`${where}: no PEM certificate in the file (expected one or more -----BEGIN CERTIFICATE----- blocks)${hint}`);
  }
  const subjects: string[] = [];
  blocks.forEach((pem, i) => {
    try {
      subjects.push(new X509Certificate(pem).subject.replaceAll("\n", ", "));
    } catch (e) {
      throw new CaFileError(`${where}: certificate ${i + 1} of ${blocks.length} is not a valid X.509 certificate (${e instanceof Error ? e.message : String(e)})`);
    }
  });
  return { file, certificates: blocks, subjects };
}

export type TlsFailureKind = "untrusted" | "name_mismatch" | "expired" | "tls";

export interface TlsFailure {
  readonly kind: TlsFailureKind;
  /** The error's code (OpenSSL verify code or Node's ERR_TLS_*), "" if none. */
  readonly code: string;
  /** What to do about it, one sentence. */
  readonly hint: string;
}

/** OpenSSL verify results that mean "signed by no CA we trust". */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_UNTRUSTED",
  "CERT_SIGNATURE_FAILURE",
  "INVALID_CA",
  "CERT_REJECTED",
]);
const EXPIRED = new Set(["CERT_HAS_EXPIRED", "CERT_NOT_YET_VALID", "CRL_HAS_EXPIRED", "CRL_NOT_YET_VALID"]);

/**
 * What a connection error means for TLS, or null when it is not a TLS problem. `host` is the
 * -mqtt-url host; `ca` the -mqtt-ca file or null (the default CA list).
 */
export function tlsFailure(e: Error, host: string, ca: string | null): TlsFailure | null {
  const raw = (e as { code?: unknown }).code;
  const code = typeof raw === "string" ? raw : "";
  if (UNTRUSTED.has(code)) {
    return {
      kind: "untrusted",
      code,
      hint:
        ca === null
          ? "the broker's certificate is not signed by a CA in the default list (a private or self-signed CA?): pass that CA's certificate with -mqtt-ca FILE"
          : `the broker's certificate is not signed by a CA in ${ca}: put the CA that issued it in that file`,
    };
  }
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const names = (e as { cert?: { subjectaltname?: unknown } }).cert?.subjectaltname;
    const listed = typeof names === "string" && names !== "" ? names : "none";
    return {
      kind: "name_mismatch",
      code,
      hint: `the broker's certificate is not issued for ${host} (its names: ${listed}): use one of those names in -mqtt-url, or reissue the certificate with ${host} in its subjectAltName`,
    };
  }
  if (EXPIRED.has(code)) {
    return { kind: "expired", code, hint: "a certificate of the broker's chain has expired or is not valid yet: renew it, or check this machine's clock" };
  }
  if (code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_") || /\b(ssl|tls)\b|certificate|handshake/i.test(e.message)) {
    return { kind: "tls", code, hint: "the TLS handshake failed: is the port a TLS listener (mqtts, usually 8883)?" };
  }
  return null;
}
