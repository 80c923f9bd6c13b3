/**
 * Errors of the HTTP API as RFC 9457 problem details (`application/problem+json`): a `type` URI
 * per kind of problem (relative to the API, documented in docs/api.md), a short `title`, the
 * `status`, and a `detail` that says what to change.
 */

export const PROBLEM_TYPE = "application/problem+json";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: "Bad request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  409: "Conflict",
  413: "Payload too large",
  415: "Unsupported media type",
  429: "Too many requests",
  503: "Service unavailable",
};

/** The problem kinds (what `type` ends with), for counters and docs. */
export type ProblemKind =
  | "bad_request"
  | "bad_frame"
  | "too_many_frames"
  | "too_large"
  | "unsupported_media_type"
  | "no_token"
  | "bad_token"
  | "locked_out"
  | "tx_disabled"
  | "tx_not_allowed"
  | "no_bus"
  | "no_job"
  | "no_route"
  | "method"
  | "conflict"
  | "unavailable";

export function problem(status: number, kind: ProblemKind, detail: string, headers: Record<string, string> = {}, extra: Record<string, unknown> = {}): Response {
  const body: Problem = { type: `/api/v1/problems/${kind}`, title: TITLES[status] ?? "Error", status, detail, ...extra };
  return new Response(JSON.stringify(body), { status, headers: { "content-type": PROBLEM_TYPE, "cache-control": "no-store", ...headers } });
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", "cache-control": "no-store", ...headers } });
}
