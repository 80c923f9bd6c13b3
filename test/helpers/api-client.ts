/**
 * A client of the gateway's HTTP API (/api/v1) for tests: one request, its answer parsed; with a
 * document, the answer is checked against the OpenAPI document the gateway serves
 * (./json-schema.ts) and every error must be application/problem+json.
 */
import { expect } from "bun:test";
import { checkResponse } from "./json-schema.ts";

export interface Answer {
  status: number;
  type: string;
  body: unknown;
  headers: Headers;
}

/** A request to the gateway's API; with `check`, the answer is validated against the document. */
export function apiClient(port: number, doc: () => Record<string, unknown> | null) {
  return async (method: string, path: string, opts: { body?: unknown; raw?: string; token?: string; type?: string } = {}): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    if (opts.type) headers["content-type"] = opts.type;
    const r = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers,
      body: opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body)),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await r.text();
    const type = r.headers.get("content-type") ?? "";
    const body = text === "" ? null : type.includes("json") ? (JSON.parse(text) as unknown) : text;
    const d = doc();
    if (d) {
      const problems = checkResponse(d, method, new URL(path, "http://x").pathname, r.status, type, body);
      if (problems.length > 0) throw new Error(`${method} ${path} → ${r.status} does not match the OpenAPI document: ${problems.join("; ")}`);
    }
    if (r.status >= 400) expect(type).toBe("application/problem+json");
    return { status: r.status, type, body, headers: r.headers };
  };
}

