/**
 * The OpenAPI 3.1 description of /api/v1 (served as /api/v1/openapi.json). The tests check every
 * route's answers against these schemas (test/api/api.test.ts), so the document cannot drift from
 * what the routes return.
 */
import { MAX_FRAMES_PER_REQUEST } from "./limits.ts";

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const nullable = (type: string): Schema => ({ type: [type, "null"] });

const FRAME_IN: Schema = {
  oneOf: [
    {
      type: "object",
      required: ["id"],
      properties: {
        id: { oneOf: [{ type: "integer", minimum: 0, maximum: 0x1fffffff }, { type: "string", pattern: "^(0x)?[0-9a-fA-F]{1,8}$" }], description: "Arbitration id (bare, without flags)" },
        ext: { type: "boolean", description: "29-bit id; default: id > 0x7FF" },
        rtr: { type: "boolean", description: "Remote request (give dlc, no data)" },
        fd: { type: "boolean", description: "CAN FD frame (needs -fd)" },
        brs: { type: "boolean" },
        esi: { type: "boolean" },
        dlc: { type: "integer", minimum: 0, maximum: 8, description: "Remote requests only" },
        data: { type: "string", pattern: "^[0-9a-fA-F. ]*$", description: "Hex bytes, e.g. 0102" },
      },
      additionalProperties: false,
    },
    { type: "string", description: "candump/cansend text, e.g. 123#0102, 12345678#, 123#R2, 123##1AABB" },
  ],
};

const SCHEMAS: Record<string, Schema> = {
  Problem: {
    type: "object",
    required: ["type", "title", "status", "detail"],
    properties: { type: { type: "string" }, title: { type: "string" }, status: { type: "integer" }, detail: { type: "string" } },
  },
  FrameIn: FRAME_IN,
  Frame: {
    type: "object",
    required: ["id", "ext", "rtr", "fd", "brs", "esi", "dlc", "data", "text"],
    properties: {
      id: { type: "integer" },
      ext: { type: "boolean" },
      rtr: { type: "boolean" },
      fd: { type: "boolean" },
      brs: { type: "boolean" },
      esi: { type: "boolean" },
      dlc: { type: "integer" },
      data: { type: "string" },
      text: { type: "string", description: "candump text" },
    },
  },
  LatestFrame: {
    allOf: [ref("Frame")],
    type: "object",
    required: ["count", "ts", "age_ms"],
    properties: { count: { type: "integer" }, ts: { type: "number", description: "Unix seconds the frame reached the gateway" }, age_ms: { type: "number" } },
  },
  Bus: {
    type: "object",
    required: ["name", "index", "default", "backend", "state", "reason", "bitrate", "bitrate_source", "fd", "load", "frames_per_s", "bits_per_s", "error_state", "health", "counters", "clients", "tx_queued", "jobs"],
    properties: {
      name: { type: "string" },
      index: { type: "integer" },
      default: { type: "boolean" },
      backend: { type: "string" },
      state: { type: "string", enum: ["up", "down"] },
      reason: { type: "string", description: "Why the bus is down (empty while up)" },
      bitrate: { type: "integer" },
      bitrate_source: { type: "string", enum: ["configured", "controller", "assumed"], description: "-bitrate, what the controller reports it runs at, or the backend's default" },
      fd: { type: "boolean" },
      load: { type: "number", minimum: 0, maximum: 1, description: "Share of the bit rate used over the last second" },
      frames_per_s: { type: "number" },
      bits_per_s: { type: "number" },
      error_state: { ...nullable("string"), description: "error-active, error-warning, error-passive, bus-off… where the backend reports it; null where it cannot" },
      health: {
        type: ["object", "null"],
        description: "What the backend reports of the controller, null where it reports nothing (virtual, replay, remote buses)",
        required: ["state"],
        properties: {
          state: nullable("string"),
          tx_errors: { type: "integer" },
          rx_errors: { type: "integer" },
          restarts: { type: "integer" },
          bus_off: { type: "integer" },
          error_frames: { type: "object", additionalProperties: { type: "integer" } },
          bitrate: { type: "integer", description: "The bit rate the controller really runs at" },
        },
      },
      counters: {
        type: "object",
        required: ["frames", "ids", "tx_sent", "tx_dropped", "backend_reconnects", "serial_rx_noise_bytes"],
        properties: {
          frames: { type: "integer" },
          ids: { type: "integer" },
          tx_sent: { type: "integer" },
          tx_dropped: { type: "object", additionalProperties: { type: "integer" } },
          backend_reconnects: { type: "integer" },
          serial_rx_noise_bytes: { type: "integer" },
        },
      },
      clients: { type: "integer" },
      tx_queued: { type: "integer" },
      jobs: { type: "integer" },
    },
  },
  SendResult: {
    type: "object",
    required: ["status"],
    properties: {
      status: { type: "string", enum: ["sent", "refused", "pending"] },
      reason: { type: "string", enum: ["read_only", "rate_limited", "tx_queue_full", "unsupported", "backend_down", "expired", "write_failed", "unconfirmed"] },
      detail: { type: "string" },
    },
  },
  SendFrames: {
    type: "object",
    properties: { frames: { type: "array", items: ref("FrameIn"), minItems: 1, maxItems: MAX_FRAMES_PER_REQUEST }, frame: ref("FrameIn") },
  },
  JobIn: {
    type: "object",
    properties: {
      frame: ref("FrameIn"),
      frames: { type: "array", items: ref("FrameIn"), minItems: 1, maxItems: 64, description: "A sequence: transmission k sends frames[k mod n]" },
      period_ms: { type: "integer", minimum: 1, maximum: 86400000 },
      count: { type: "integer", minimum: 1, description: "Transmissions in all; absent: until deleted" },
      start_at: { oneOf: [{ type: "string", format: "date-time" }, { type: "integer" }], description: "First transmission (ISO 8601 or Unix ms); absent: now" },
      name: { type: "string", maxLength: 64 },
    },
  },
  JobPatch: {
    type: "object",
    properties: { frame: ref("FrameIn"), frames: { type: "array", items: ref("FrameIn") }, period_ms: { type: "integer" }, count: nullable("integer"), name: { type: "string" } },
  },
  Job: {
    type: "object",
    required: ["id", "bus", "name", "source", "state", "frames", "period_ms", "count", "start_at", "created_at", "transmissions", "sent", "skipped", "next_at", "persistent"],
    properties: {
      id: { type: "string" },
      bus: { type: "string" },
      name: { type: "string" },
      source: { type: "string", enum: ["api", "config"] },
      state: { type: "string", enum: ["scheduled", "running", "finished"] },
      frames: { type: "array", items: ref("Frame") },
      period_ms: nullable("integer"),
      count: nullable("integer"),
      start_at: nullable("string"),
      created_at: { type: "string" },
      transmissions: { type: "integer", description: "Transmissions due so far (sent or skipped)" },
      sent: { type: "integer" },
      skipped: { type: "object", additionalProperties: { type: "integer" }, description: "Skipped transmissions by reason: pending (the previous one still waiting), late, backend_down, rate_limited, …" },
      next_at: nullable("string"),
      persistent: { type: "boolean", description: "Survives a restart (-state-dir set, or from the configuration file)" },
    },
  },
  Route: {
    type: "object",
    required: ["name", "from", "to", "filters", "rewrite", "hop_limit", "rate", "counts"],
    properties: {
      name: { type: "string" },
      from: { type: "string", description: "Source bus" },
      to: { type: "string", description: "Destination bus" },
      filters: { type: "array", items: { type: "string", pattern: "^[0-9A-F]{3,8}/[0-9A-F]{3,8}$" }, description: "ID/MASK in hex (candump; 8 digits = extended); empty: every frame" },
      rewrite: {
        type: ["object", "null"],
        description: "Id rewrite in hex (AND, then OR, then XOR, then SET); null: ids unchanged",
        properties: { and: { type: "string" }, or: { type: "string" }, xor: { type: "string" }, set: { type: "string" } },
        additionalProperties: false,
      },
      hop_limit: { type: "integer", minimum: 1 },
      rate: { type: "number", minimum: 0, description: "Frames per second of the route's own; 0: no limit of its own" },
      counts: {
        type: "object",
        description: "Frames by result since start (route_frames_total{route,result})",
        required: ["routed", "sent", "dropped", "hop_limit", "rate_limited"],
        properties: { routed: { type: "integer" }, sent: { type: "integer" }, dropped: { type: "integer" }, hop_limit: { type: "integer" }, rate_limited: { type: "integer" } },
        additionalProperties: false,
      },
    },
  },
  JobList: { type: "object", required: ["persistent", "jobs"], properties: { persistent: { type: "boolean" }, jobs: { type: "array", items: ref("Job") } } },
};

const problemResponse = (description: string): Schema => ({ description, content: { "application/problem+json": { schema: ref("Problem") } } });
const jsonResponse = (description: string, schema: Schema): Schema => ({ description, content: { "application/json": { schema } } });
const busParam = { name: "bus", in: "path", required: true, schema: { type: "string" }, description: "Bus name (GET /api/v1/buses lists them)" };
const jobParam = { name: "job", in: "path", required: true, schema: { type: "string" } };
const secured = [{ bearer: [] }];
const writeRefusals = {
  "401": problemResponse("No or wrong token"),
  "403": problemResponse("Sending disabled (-web-tx, -web-token) or the caller not in -tx-allow"),
  "429": problemResponse("Locked out after 5 wrong tokens within a minute"),
};

export function openApiDocument(): Schema {
  return {
    openapi: "3.1.0",
    info: { title: "can-server API", version: "1", description: "Drive and watch CAN buses over HTTP. Errors are application/problem+json (RFC 9457)." },
    servers: [{ url: "/" }],
    components: { schemas: SCHEMAS, securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "-web-token" } } },
    paths: {
      "/api/v1/buses": { get: { summary: "The buses and their state", responses: { "200": jsonResponse("Buses", { type: "object", required: ["buses"], properties: { buses: { type: "array", items: ref("Bus") } } }) } } },
      "/api/v1/buses/{bus}": {
        parameters: [busParam],
        get: { summary: "One bus: state, bit rate, load, error state, counters", responses: { "200": jsonResponse("The bus", ref("Bus")), "404": problemResponse("No such bus") } },
      },
      "/api/v1/buses/{bus}/frames": {
        parameters: [busParam],
        get: {
          summary: "The latest frame of each id",
          responses: { "200": jsonResponse("Latest frames", { type: "object", required: ["bus", "frames", "ids_overflow"], properties: { bus: { type: "string" }, frames: { type: "array", items: ref("LatestFrame") }, ids_overflow: { type: "integer" } } }), "404": problemResponse("No such bus") },
        },
        post: {
          summary: "Send frames; the answer says what became of each",
          security: secured,
          requestBody: { required: true, content: { "application/json": { schema: ref("SendFrames") }, "text/plain": { schema: { type: "string", description: "candump lines" } } } },
          responses: {
            "200": jsonResponse("One result per frame, in order", { type: "object", required: ["results", "sent", "refused"], properties: { results: { type: "array", items: ref("SendResult") }, sent: { type: "integer" }, refused: { type: "integer" } } }),
            "400": problemResponse("Bad JSON, bad frame, too many frames"),
            "404": problemResponse("No such bus"),
            "413": problemResponse("Body too large"),
            "415": problemResponse("Not JSON or text/plain"),
            ...writeRefusals,
          },
        },
      },
      "/api/v1/routes": { get: { summary: "The routes between buses and their counts", responses: { "200": jsonResponse("Routes", { type: "object", required: ["routes"], properties: { routes: { type: "array", items: ref("Route") } } }) } } },
      "/api/v1/jobs": { get: { summary: "Every transmit job", responses: { "200": jsonResponse("Jobs", ref("JobList")) } } },
      "/api/v1/buses/{bus}/jobs": {
        parameters: [busParam],
        get: { summary: "The bus's transmit jobs", responses: { "200": jsonResponse("Jobs", ref("JobList")), "404": problemResponse("No such bus") } },
        post: {
          summary: "Create a transmit job",
          security: secured,
          requestBody: { required: true, content: { "application/json": { schema: ref("JobIn") } } },
          responses: { "201": jsonResponse("Created", ref("Job")), "400": problemResponse("Bad job"), "404": problemResponse("No such bus"), "409": problemResponse("Too many jobs"), "413": problemResponse("Body too large"), "415": problemResponse("Not JSON"), "503": problemResponse("The gateway is shutting down"), ...writeRefusals },
        },
      },
      "/api/v1/buses/{bus}/jobs/{job}": {
        parameters: [busParam, jobParam],
        get: { summary: "One job", responses: { "200": jsonResponse("The job", ref("Job")), "404": problemResponse("No such bus or job") } },
        patch: {
          summary: "Change a job in place (the next transmission uses the new data)",
          security: secured,
          requestBody: { required: true, content: { "application/json": { schema: ref("JobPatch") } } },
          responses: { "200": jsonResponse("The job", ref("Job")), "400": problemResponse("Bad change"), "404": problemResponse("No such bus or job"), "409": problemResponse("A configuration file's job"), "413": problemResponse("Body too large"), "415": problemResponse("Not JSON"), ...writeRefusals },
        },
        delete: {
          summary: "Stop and remove a job",
          security: secured,
          responses: { "204": { description: "Stopped" }, "404": problemResponse("No such bus or job"), "409": problemResponse("A configuration file's job"), ...writeRefusals },
        },
      },
      "/api/v1/openapi.json": { get: { summary: "This document", responses: { "200": { description: "OpenAPI 3.1", content: { "application/json": {} } } } } },
    },
  };
}
