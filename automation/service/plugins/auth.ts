import type { FastifyReply, FastifyRequest, RouteOptions } from "fastify";
import type { Principal, TokenRegistry } from "../auth.ts";
import { sendProblem } from "./problems.ts";
import fastifyPlugin from "fastify-plugin";

/**
 * Authentication, chosen per route by its config (`config: { auth, admin }`): who may call a route
 * is said where the route is, and a route that says nothing needs a bearer token — no scheme chosen
 * means no access without one, never full access.
 */

/**
 * How a route's caller proves who it is. bearer: a token of SWITCH_API_TOKENS (people and
 * programs, ./auth.ts); agent: a PoP host's instance manager, by the HMAC signature over the
 * body of its POST, which the route's handler verifies (loops/report-admission.ts) as it needs the
 * body's exact bytes, which no onRequest hook has; public: nothing — the probes, which a kubelet
 * or a load balancer calls without a token.
 */
export const AUTH_SCHEMES = ["bearer", "agent", "public"] as const;
export type AuthScheme = (typeof AUTH_SCHEMES)[number];
/** The scheme of a route whose config chooses none. */
export const DEFAULT_AUTH_SCHEME: AuthScheme = "bearer";

declare module "fastify" {
  interface FastifyRequest {
    /** Who called, on a bearer route. */
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** How the caller proves who it is (AUTH_SCHEMES). Defaults to "bearer". */
    auth?: AuthScheme;
    /** Only admins may call it (a bearer route's). */
    admin?: true;
  }
}

/** One scheme's check of a request: it answers a refusal itself, or lets the request through. */
type Authenticate = (request: FastifyRequest, reply: FastifyReply) => FastifyReply | undefined;

export interface AuthOptions {
  tokens: TokenRegistry;
}

/** Checks each request by its route's scheme; app-wide, so registered before every route (an unknown route's 404 needs a token too). */
export const auth = fastifyPlugin<AuthOptions>(async (app, { tokens }) => {
  const schemes: Readonly<Record<AuthScheme, Authenticate>> = {
    bearer: bearer(tokens),
    // Nothing to check before the body: the handler verifies the signature, and refuses what does not
    // verify. An Authorization header is not read, so no bearer token, an admin's included, opens such a route.
    agent: () => undefined,
    public: () => undefined,
  };
  app.addHook("onRoute", (route) => {
    const refusal = misconfiguration(route);
    if (refusal !== undefined) {
      throw new Error(`${[route.method].flat().join(", ")} ${route.url}: ${refusal}`);
    }
  });
  app.addHook("onRequest", async (request, reply) => {
    const { auth: scheme = DEFAULT_AUTH_SCHEME, admin } = request.routeOptions.config;
    // onRoute refused such a route; should one get past it, it is refused here rather than let through.
    const authenticate = Object.hasOwn(schemes, scheme) ? schemes[scheme] : undefined;
    if (authenticate === undefined) {
      request.log.error(`auth scheme "${scheme}" is not configured`);
      return sendProblem(reply, 500);
    }
    const refused = authenticate(request, reply);
    if (refused !== undefined) {
      return refused;
    }
    if (admin === true && request.principal?.role !== "admin") {
      return sendProblem(reply, 403, "this route is for admins");
    }
  });
});

/**
 * Why a route's auth config cannot be served, or undefined when it can. An agent route is a POST
 * alone: the signature it is let through on is over a body, and a route without one would be
 * public under another name.
 */
function misconfiguration(route: RouteOptions): string | undefined {
  const { auth: scheme = DEFAULT_AUTH_SCHEME, admin } = route.config ?? {};
  if (!(AUTH_SCHEMES as readonly string[]).includes(scheme)) {
    return `config.auth is ${JSON.stringify(scheme)}, not a scheme; use one of ${AUTH_SCHEMES.join(", ")}`;
  }
  if (admin === true && scheme !== "bearer") {
    return `config.admin is true but config.auth is "${scheme}"; only bearer tokens have roles: use auth "bearer", or drop admin`;
  }
  const methods = [route.method].flat();
  if (scheme === "agent" && methods.some((method) => method !== "POST")) {
    return `config.auth is "agent" on ${methods.join(", ")}; an agent is let through to be checked by the signature over its body, which only a POST has: use POST, or auth "bearer"`;
  }
  return undefined;
}

/** A bearer token of `tokens`: the principal it names is the request's. */
function bearer(tokens: TokenRegistry): Authenticate {
  return (request, reply) => {
    // Node keeps the first of several Authorization headers and drops the rest (https://nodejs.org/api/http.html#messageheaders):
    // which one a proxy or a client meant is anyone's guess.
    const authorizations = request.raw.rawHeaders.filter((name, index) => index % 2 === 0 && name.toLowerCase() === "authorization").length;
    if (authorizations > 1) {
      const message = `is given ${authorizations} times; send one Authorization header`;
      return sendProblem(reply, 400, `headers.authorization ${message}`, [{ field: "headers.authorization", message }]);
    }
    const principal = tokens.authenticate(request.headers.authorization);
    if (principal === undefined) {
      void reply.header("www-authenticate", 'Bearer realm="switch-vaas"');
      return sendProblem(reply, 401, "give a valid bearer token in the Authorization header (Authorization: Bearer <token>)");
    }
    request.principal = principal;
    return undefined;
  };
}
