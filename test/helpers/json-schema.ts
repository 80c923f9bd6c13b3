/**
 * A small JSON Schema checker for the subset the API's OpenAPI document uses ($ref into
 * components, type (one or a list, "integer" included), properties, required,
 * additionalProperties, items, minItems/maxItems, enum, minimum/maximum, maxLength, pattern,
 * oneOf, allOf). Written here rather than taken from a validator package so the tests need no
 * more dependencies; it fails on a keyword it does not know, so the document cannot use one
 * unchecked.
 */
type Schema = Record<string, unknown>;

const KNOWN = new Set([
  "$ref", "type", "properties", "required", "additionalProperties", "items", "minItems", "maxItems", "enum",
  "minimum", "maximum", "maxLength", "pattern", "oneOf", "allOf", "description", "format",
]);

function typeOf(v: unknown): string[] {
  if (v === null) return ["null"];
  if (Array.isArray(v)) return ["array"];
  if (typeof v === "number") return Number.isInteger(v) ? ["integer", "number"] : ["number"];
  return [typeof v];
}

/** Every way `value` breaks `schema` (empty: it conforms). */
export function checkSchema(value: unknown, schema: Schema, doc: Schema, path = "$"): string[] {
  for (const k of Object.keys(schema)) if (!KNOWN.has(k)) return [`${path}: schema keyword ${k} not supported by the checker`];
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.replace("#/components/schemas/", "");
    const target = ((doc.components as Schema).schemas as Record<string, Schema>)[name];
    if (!target) return [`${path}: unresolved ${schema.$ref}`];
    return checkSchema(value, target, doc, path);
  }
  const errs: string[] = [];
  if (schema.allOf) for (const s of schema.allOf as Schema[]) errs.push(...checkSchema(value, s, doc, path));
  if (schema.oneOf) {
    const ok = (schema.oneOf as Schema[]).filter((s) => checkSchema(value, s, doc, path).length === 0).length;
    if (ok !== 1) errs.push(`${path}: matches ${ok} of oneOf, not exactly one`);
  }
  if (schema.type !== undefined) {
    const want = Array.isArray(schema.type) ? (schema.type as string[]) : [schema.type as string];
    if (!typeOf(value).some((t) => want.includes(t))) return [...errs, `${path}: ${JSON.stringify(value)?.slice(0, 60)} is not ${want.join("|")}`];
  }
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) errs.push(`${path}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) errs.push(`${path}: ${value} < ${schema.minimum}`);
    if (typeof schema.maximum === "number" && value > schema.maximum) errs.push(`${path}: ${value} > ${schema.maximum}`);
  }
  if (typeof value === "string") {
    if (typeof schema.maxLength === "number" && value.length > schema.maxLength) errs.push(`${path}: longer than ${schema.maxLength}`);
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern).test(value)) errs.push(`${path}: ${value} does not match ${schema.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) errs.push(`${path}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) errs.push(`${path}: more than ${schema.maxItems} items`);
    if (schema.items) value.forEach((v, i) => errs.push(...checkSchema(v, schema.items as Schema, doc, `${path}[${i}]`)));
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[]) if (!(r in o)) errs.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(o)) {
      if (props[k]) errs.push(...checkSchema(v, props[k], doc, `${path}.${k}`));
      else if (schema.additionalProperties === false) errs.push(`${path}: unexpected property ${k}`);
      else if (typeof schema.additionalProperties === "object") errs.push(...checkSchema(v, schema.additionalProperties as Schema, doc, `${path}.${k}`));
    }
  }
  return errs;
}

/**
 * Checks an HTTP answer against the document: the path template that matches `path`, the method,
 * the status and the content type must be described, and the body must conform. Returns the problems.
 */
export function checkResponse(doc: Schema, method: string, path: string, status: number, contentType: string, body: unknown): string[] {
  const paths = doc.paths as Record<string, Record<string, Schema>>;
  const template = Object.keys(paths).find((t) => new RegExp(`^${t.replace(/\{[^}]+\}/g, "[^/]+")}$`).test(path));
  if (!template) return status === 404 ? checkSchema(body, { $ref: "#/components/schemas/Problem" }, doc) : [`${path}: no path in the document`];
  const op = paths[template]![method.toLowerCase()];
  // A method the path does not have: 405, a problem.
  if (!op) return status === 405 ? checkSchema(body, { $ref: "#/components/schemas/Problem" }, doc) : [`${method} ${template}: not in the document`];
  const resp = (op.responses as Record<string, Schema>)[String(status)];
  if (!resp) return [`${method} ${template}: status ${status} not described`];
  if (status === 204) return [];
  const type = contentType.split(";")[0]!.trim();
  const media = (resp.content as Record<string, Schema> | undefined)?.[type];
  if (!media) return [`${method} ${template} ${status}: content type ${type} not described`];
  if (!media.schema) return [];
  return checkSchema(body, media.schema as Schema, doc);
}
