import { BODY_MEDIA_TYPE, BodyRefusal } from "./problems.ts";
import fastifyPlugin from "fastify-plugin";

/**
 * The one body parser: JSON, as Fastify's own reads it, but a body it refuses is a field's problem
 * that says why (BodyRefusal, which the problems plugin sends as a 400).
 */

/** Why a key that can replace an object's prototype is refused, whichever of the two it is. */
const PROTOTYPE_KEY_REASON = "which is not allowed: it can replace the prototype of an object it is merged into; remove it";
/** How deep in a body a refused key's object is named; deeper, the refusal names the body. */
const MAX_NAMED_DEPTH = 8;
/** A key a field's name shows as it is: the request's own keys and indexes are such. */
const NAMEABLE_KEY = /^[A-Za-z0-9_]{1,40}$/;

export const jsonBody = fastifyPlugin(async (app) => {
  // Fastify's own JSON parser refuses a key that can replace a prototype (secure-json-parse) as "not
  // valid JSON", its reason dropped; this one refuses it too, and says so.
  app.removeContentTypeParser(BODY_MEDIA_TYPE);
  app.addContentTypeParser(BODY_MEDIA_TYPE, { parseAs: "string" }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
});

/**
 * A body's JSON as Fastify's own parser reads it (a leading byte-order mark skipped), refused as a
 * field's problem when it is empty, not JSON, or holds a key that can replace a prototype.
 */
function parseJsonBody(text: string): unknown {
  const json = text.startsWith("\uFEFF") ? text.slice(1) : text;
  if (json === "") {
    throw new BodyRefusal("body", `is empty; send a JSON document, as Content-Type: ${BODY_MEDIA_TYPE} says`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new BodyRefusal("body", `is not valid JSON; send a JSON document, as Content-Type: ${BODY_MEDIA_TYPE} says`);
  }
  const found = prototypeKey(parsed);
  if (found !== undefined) {
    throw new BodyRefusal(found.field, `has ${found.key}, ${PROTOTYPE_KEY_REASON}`);
  }
  return parsed;
}

/** An object of a parsed body, with the key it is under and the object holding it (none for the body). */
interface BodyNode {
  value: object;
  depth: number;
  under?: { key: string; holder: BodyNode };
}

/**
 * The first key of a parsed body, breadth first, that can replace a prototype where the body is
 * merged — an own "__proto__", or an own "constructor" object holding "prototype": secure-json-parse's
 * rule, which Fastify's own parser applies (node_modules/secure-json-parse/index.js, `filter`) — and
 * the field of the object that holds it.
 */
function prototypeKey(body: unknown): { field: string; key: string } | undefined {
  let level: BodyNode[] = typeof body === "object" && body !== null ? [{ value: body, depth: 0 }] : [];
  while (level.length > 0) {
    const next: BodyNode[] = [];
    for (const node of level) {
      const constructor: unknown = Object.hasOwn(node.value, "constructor") ? (node.value as { constructor: unknown }).constructor : undefined;
      const key = Object.hasOwn(node.value, "__proto__")
        ? 'a "__proto__" key'
        : typeof constructor === "object" && constructor !== null && Object.hasOwn(constructor, "prototype")
          ? 'a "constructor" key holding "prototype"'
          : undefined;
      if (key !== undefined) {
        return { field: fieldOf(node), key };
      }
      for (const [childKey, child] of Object.entries(node.value)) {
        if (typeof child === "object" && child !== null) {
          next.push({ value: child as object, depth: node.depth + 1, under: { key: childKey, holder: node } });
        }
      }
    }
    level = next;
  }
  return undefined;
}

/** Where `node` is in the body ("body.participants.0"); "body" alone when that would be long or strange enough to be no field. */
function fieldOf(node: BodyNode): string {
  if (node.depth > MAX_NAMED_DEPTH) {
    return "body";
  }
  const keys: string[] = [];
  for (let at = node.under; at !== undefined; at = at.holder.under) {
    if (!NAMEABLE_KEY.test(at.key)) {
      return "body";
    }
    keys.unshift(at.key);
  }
  return ["body", ...keys].join(".");
}
