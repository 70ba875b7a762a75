import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SECRET_MASK } from "../../automation/engine/engine.ts";
import type { RecordedResource } from "../../automation/engine/offline-worker.ts";
import Fastify, { type FastifyInstance } from "fastify";
import { TokenRegistry, newToken, tokenDigest, tokenEntry } from "../../automation/service/auth.ts";
import { auth } from "../../automation/service/plugins/auth.ts";
import { conferenceList, conferenceView } from "../../automation/service/schemas.ts";
import { type TestService, problemOf, startTestService } from "../support/service.ts";
import { everyFile } from "../support/files.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";

/**
 * Who may call what: every route but the probes wants a valid bearer token, /metrics an admin's;
 * organizers see and stop only their own conferences. And what the service keeps and says holds
 * no secret: no token, no Authorization header, no Jitsi password, anywhere.
 */

const LJUBLJANA = { participants: [{ lat: 46.05, lon: 14.51 }] };
const UNAUTHORIZED = "give a valid bearer token in the Authorization header (Authorization: Bearer <token>)";
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}

const ALL_STATES = ["placed", "deploying", "ready", "failed", "stopping", "stopped"] as const;

async function createReady(service: TestService, token: string, key?: string): Promise<string> {
  const { id } = await service.create(LJUBLJANA, { token, ...(key === undefined ? {} : { key }) });
  expect((await service.waitForConference(id, ["ready", "failed"])).state).toBe("ready");
  return id;
}

describe("authentication and ownership", () => {
  let service: TestService;
  let alices: string;

  beforeAll(async () => {
    service = await startTestService();
    alices = await createReady(service, service.tokens.alice);
  }, 60_000);
  afterAll(() => service?.close());

  /**
   * Every route of the app that takes a bearer token: the documented ones from /openapi.json, and
   * the two it leaves out. A documented route without one (its `security` empty) is in `tokenless`.
   */
  async function routes(): Promise<{ method: string; path: string }[]> {
    return (await documentedRoutes()).filter((route) => !route.tokenless).map(({ method, path }) => ({ method, path }));
  }
  async function documentedRoutes(): Promise<{ method: string; path: string; tokenless: boolean }[]> {
    const document = (await (await service.call("/openapi.json")).json()) as { paths: Record<string, Record<string, { security?: unknown[] }>> };
    const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.entries(operations).map(([method, operation]) => ({ method: method.toUpperCase(), path: path.replace("{id}", alices), tokenless: operation.security?.length === 0 })),
    );
    return [...documented, { method: "GET", path: "/metrics", tokenless: false }, { method: "GET", path: "/openapi.json", tokenless: false }];
  }

  it("enumerates the contract's routes from the app", async () => {
    expect((await routes()).map((route) => `${route.method} ${route.path.replace(alices, ":id")}`)).toEqual(
      expect.arrayContaining([
        "POST /v1/conferences",
        "GET /v1/conferences",
        "GET /v1/conferences/:id",
        "DELETE /v1/conferences/:id",
        "GET /v1/conferences/:id/events",
        "POST /v1/placements",
        "GET /v1/clusters",
        "GET /v1/pops",
        "GET /v1/pops/{pop}",
        "GET /v1/pops/{pop}/decisions",
        "POST /v1/pops/{pop}/rebalance",
        "GET /metrics",
        "GET /openapi.json",
      ]),
    );
  });

  it("documents one route without a bearer token: the PoP hosts' reports, which their signatures authenticate", async () => {
    expect((await documentedRoutes()).filter((route) => route.tokenless).map((route) => `${route.method} ${route.path}`)).toEqual(["POST /v1/pops/{pop}/reports"]);
    // No PoP is served here: the route answers so, with no bearer challenge, a token or none.
    for (const token of [null, service.tokens.admin]) {
      const response = await service.call("/v1/pops/vienna/reports", { method: "POST", token, body: "{}" });
      expect(response.headers.get("www-authenticate")).toBeNull();
      expect((await problemOf(response, 404)).detail).toMatch(/^the service runs no PoP: SWITCH_POPS names none; /);
    }
  });

  it("refuses a missing, malformed or wrong token on every route with 401 problem+json and a Bearer challenge", async () => {
    const stranger = newToken();
    const refusals: [string, Record<string, string>, string | null][] = [
      ["no Authorization header", {}, null],
      ["another scheme", { authorization: `Basic ${Buffer.from(`alice:${service.tokens.alice}`).toString("base64")}` }, null],
      ["a scheme without a token", { authorization: "Bearer" }, null],
      ["two spaces", { authorization: `Bearer  ${service.tokens.alice}` }, null],
      ["a token nobody was given", {}, stranger],
      ["a known token, altered", {}, `${service.tokens.alice.slice(0, -1)}${service.tokens.alice.endsWith("A") ? "B" : "A"}`],
      ["a token's digest instead of the token", {}, tokenDigest(service.tokens.admin)],
    ];
    for (const { method, path } of await routes()) {
      for (const [what, headers, token] of refusals) {
        const response = await service.call(path, {
          method,
          token,
          headers,
          ...(method === "POST" ? { body: JSON.stringify(LJUBLJANA) } : {}),
        });
        expect(response.headers.get("www-authenticate"), `${method} ${path} with ${what}`).toBe('Bearer realm="switch-vaas"');
        expect(await problemOf(response, 401), `${method} ${path} with ${what}`).toEqual({ type: "about:blank", title: "Unauthorized", status: 401, detail: UNAUTHORIZED });
      }
    }
    // Nothing the refused POSTs asked for happened.
    const all = conferenceList.parse(await (await service.call("/v1/conferences", { token: service.tokens.admin })).json()).conferences;
    expect(all.map((conference) => conference.id)).toEqual([alices]);
  });

  it("takes the scheme in any case, as RFC 9110 has it", async () => {
    expect((await service.call("/v1/clusters", { token: null, headers: { authorization: `bearer ${service.tokens.alice}` } })).status).toBe(200);
  });

  it("answers the probes without a token", async () => {
    const health = await service.call("/healthz", { token: null });
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: "ok" });
    const ready = await service.call("/readyz", { token: null });
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: "ready", engine: "offline" });
  });

  it("serves /metrics to admins only", async () => {
    const metrics = await service.call("/metrics", { token: service.tokens.admin });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await metrics.text()).toMatch(/^switch_conferences\{state="ready"\} 1$/m);
    for (const token of [service.tokens.alice, service.tokens.bob]) {
      expect(await problemOf(await service.call("/metrics", { token }), 403)).toEqual({ type: "about:blank", title: "Forbidden", status: 403, detail: "this route is for admins" });
    }
  });

  it("hides an organizer's conference from another: not found to get, list, stream or stop, and it keeps running", async () => {
    const bob = service.tokens.bob;
    const missing = await problemOf(await service.call("/v1/conferences/nosuchconference", { token: bob }), 404);
    expect(missing.detail).toBe("conference nosuchconference does not exist");

    const notFound = { type: "about:blank", title: "Not Found", status: 404, detail: `conference ${alices} does not exist` };
    expect(await problemOf(await service.call(`/v1/conferences/${alices}`, { token: bob }), 404)).toEqual(notFound);
    expect(await problemOf(await service.call(`/v1/conferences/${alices}`, { method: "DELETE", token: bob }), 404)).toEqual(notFound);
    const stream = await service.stream(alices, { token: bob });
    expect(stream.status).toBe(404);
    expect(stream.events).toEqual([]);
    expect(JSON.parse(stream.raw)).toEqual(notFound);
    for (const query of ["", ...ALL_STATES.map((state) => `?state=${state}`)]) {
      const listed = conferenceList.parse(await (await service.call(`/v1/conferences${query}`, { token: bob })).json()).conferences;
      expect(listed, query).toEqual([]);
    }

    const still = conferenceView.parse(await (await service.call(`/v1/conferences/${alices}`)).json());
    expect(still.state).toBe("ready");
    expect(service.offline.state(`conf-${alices}`)).toBeDefined();
    expect(service.readStore((store) => store.eventsAfter(conferenceName(alices), 0)).map((event) => event.type)).not.toContain("stopping");
  });

  it("shows admins every conference, and lets them stop any", async () => {
    const bobs = await createReady(service, service.tokens.bob);
    const all = conferenceList.parse(await (await service.call("/v1/conferences", { token: service.tokens.admin })).json()).conferences;
    expect(all.map((conference) => [conference.id, conference.owner])).toEqual(
      expect.arrayContaining([
        [alices, "alice"],
        [bobs, "bob"],
      ]),
    );
    expect(conferenceList.parse(await (await service.call("/v1/conferences", { token: service.tokens.alice })).json()).conferences.map((conference) => conference.id)).toEqual([alices]);
    expect(conferenceView.parse(await (await service.call(`/v1/conferences/${bobs}`, { token: service.tokens.admin })).json()).owner).toBe("bob");

    for (const id of [alices, bobs]) {
      expect((await service.call(`/v1/conferences/${id}`, { method: "DELETE", token: service.tokens.admin })).status).toBe(202);
    }
    for (const id of [alices, bobs]) {
      expect((await service.waitForConference(id, ["stopped"])).state).toBe("stopped");
    }
  });
});

describe("the auth plugin's schemes", () => {
  const admin = newToken();
  async function appWith(register: (app: FastifyInstance) => void): Promise<FastifyInstance> {
    const app = Fastify();
    await app.register(auth, { tokens: TokenRegistry.parse(tokenEntry("root", "admin", admin), "test") });
    register(app);
    await app.ready();
    return app;
  }

  it("lets a request through to an agent route without reading its Authorization, and asks a bearer route for a token", async () => {
    const app = await appWith((routes) => {
      routes.post("/signed", { config: { auth: "agent" } }, (request) => ({ principal: request.principal ?? null }));
      routes.post("/tokened", (request) => ({ principal: request.principal ?? null }));
    });
    try {
      expect((await app.inject({ method: "POST", url: "/signed" })).json()).toEqual({ principal: null });
      // An admin's token is no proof for an agent route: the handler sees no principal, and checks the signature alone.
      expect((await app.inject({ method: "POST", url: "/signed", headers: { authorization: `Bearer ${admin}` } })).json()).toEqual({ principal: null });
      expect((await app.inject({ method: "POST", url: "/tokened" })).statusCode).toBe(401);
      expect((await app.inject({ method: "POST", url: "/tokened", headers: { authorization: `Bearer ${admin}` } })).json()).toEqual({ principal: { subject: "root", role: "admin" } });
    } finally {
      await app.close();
    }
  });

  it.each([
    ["an agent route that is not a POST", (app: FastifyInstance) => app.get("/signed", { config: { auth: "agent" } }, () => "open"), 'GET /signed: config.auth is "agent" on GET; an agent is let through to be checked by the signature over its body, which only a POST has: use POST, or auth "bearer"'],
    ["an agent route for admins", (app: FastifyInstance) => app.post("/signed", { config: { auth: "agent", admin: true } }, () => "open"), 'POST /signed: config.admin is true but config.auth is "agent"; only bearer tokens have roles: use auth "bearer", or drop admin'],
    ["a scheme that is none", (app: FastifyInstance) => app.post("/signed", { config: { auth: "hmac" as "agent" } }, () => "open"), 'POST /signed: config.auth is "hmac", not a scheme; use one of bearer, agent, public'],
  ])("refuses to register %s", async (_what, register, message) => {
    await expect(appWith(register)).rejects.toThrow(message);
  });
});

/**
 * What a Jitsi password looks like wherever it could surface: a run of 20 or more letters and
 * digits mixing upper case, lower case and digits (the 32-character passwords, or their base64).
 * Digests (lower-case hex), ids and names are not.
 */
function randomLooking(text: string): string[] {
  return [...text.matchAll(/[A-Za-z0-9]{20,}/g)].map((match) => match[0]).filter((run) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run));
}

describe("secrets", () => {
  it("are what the scan finds: a password drawn as the conference component draws them, or its base64, and not a digest, an id or a name", () => {
    // One such password, fixed: a drawn one's base64 is split by "+" or "/" into runs too short now and then.
    const password = "q7Zk2LmP9xVb4RtN8cWy1HsJ6dFg3QeA";
    expect(randomLooking(`{"JVB_AUTH_PASSWORD":"${password}"}`)).toEqual([password]);
    expect(randomLooking(`data: ${Buffer.from(password).toString("base64")}`)).not.toEqual([]);
    expect(randomLooking(`${tokenDigest(password)} conf-2t90pjnpg2ml jitsi-auth-2t90pjnpg2ml S6_YES_I_WANT_A_WORLD_WRITABLE_RUN_BECAUSE_KUBERNETES`)).toEqual([]);
  });

  it("appear in no stored byte, log line, response or event after several conferences' lives", async () => {
    const service = await startTestService({ env: { SWITCH_LOG_LEVEL: "debug" } });
    const { admin, alice, bob } = service.tokens;
    const stranger = newToken();
    const seen: string[] = [];
    const record = async (response: Response) => {
      const text = await response.text();
      seen.push(text);
      return text;
    };
    const stored = new Map<string, string>();
    try {
      // Refusals, which quote what they were given least carefully.
      await record(await service.call("/v1/clusters", { token: stranger }));
      await record(await service.call("/v1/clusters", { token: null, headers: { authorization: `Basic ${alice}` } }));
      await record(await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: [{ ip: alice }] }) }));
      await record(await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: [{ lat: 46, lon: 14, token: alice }] }) }));
      await record(await service.call("/v1/conferences", { method: "POST", body: `{"participants": "${alice}` }));
      await record(await service.call("/metrics", { token: bob }));

      const ids = [
        await createReady(service, alice, "secret-scan-1"),
        await createReady(service, alice),
        await createReady(service, bob),
        await createReady(service, admin),
      ];
      // An idempotent retry, and bob looking at alice's.
      await record(await service.call("/v1/conferences", { method: "POST", body: JSON.stringify(LJUBLJANA), headers: { "idempotency-key": "secret-scan-1" } }));
      await record(await service.call(`/v1/conferences/${ids[0]!}`, { token: bob }));
      for (const token of [admin, alice, bob]) {
        await record(await service.call("/v1/conferences", { token }));
        await record(await service.call("/v1/clusters", { token }));
        await record(await service.call("/v1/placements", { method: "POST", token, body: JSON.stringify(LJUBLJANA) }));
      }
      await record(await service.call("/metrics", { token: admin }));
      await record(await service.call("/openapi.json"));

      // While they run: the passwords are in their stacks' state only as the mask.
      for (const id of ids) {
        const state = service.offline.state(`conf-${id}`)!;
        const secret = state.resources.find((resource) => resource.type === "kubernetes:core/v1:Secret") as RecordedResource & { inputs: { metadata: { name: string }; data: unknown } };
        expect(secret.inputs.metadata.name).toBe(`jitsi-auth-${id}`);
        expect(secret.inputs.data).toBe(SECRET_MASK);
        // The containers take them from the Secret, never as a value.
        const deployment = state.resources.find((resource) => resource.type === "kubernetes:apps/v1:Deployment") as RecordedResource & { inputs: { spec: { template: { spec: { containers: { env: EnvVar[] }[] } } } } };
        const passwords = deployment.inputs.spec.template.spec.containers.flatMap((container) => container.env).filter((variable) => variable.name.endsWith("_PASSWORD"));
        expect(passwords.map((variable) => variable.name).sort()).toEqual(["JICOFO_AUTH_PASSWORD", "JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"]);
        for (const variable of passwords) {
          expect(variable).toEqual({ name: variable.name, valueFrom: { secretKeyRef: { name: `jitsi-auth-${id}`, key: variable.name } } });
        }
      }
      for (const [path, bytes] of everyFile(service.dataDir)) {
        stored.set(`${path} (running)`, bytes);
      }

      for (const id of ids) {
        const owner = id === ids[2] ? bob : id === ids[3] ? admin : alice;
        const streaming = service.stream(id, { token: owner });
        await record(await service.call(`/v1/conferences/${id}`, { method: "DELETE", token: owner }));
        const { raw, events } = await streaming;
        expect(events.at(-1)!.event).toBe("stopped");
        seen.push(raw);
        await record(await service.call(`/v1/conferences/${id}`, { token: owner }));
      }
      await service.waitForIdle();
    } finally {
      await service.close();
    }
    for (const [path, bytes] of everyFile(service.dataDir)) {
      stored.set(`${path} (stopped)`, bytes);
    }

    expect([...stored.keys()].some((path) => path.endsWith("switch.db-wal (running)"))).toBe(true);
    expect(service.logs.length).toBeGreaterThan(20);
    const places: [string, string][] = [
      ...[...stored].map(([path, bytes]): [string, string] => [path, bytes]),
      ...service.logs.map((line, index): [string, string] => [`log line ${index + 1}`, line]),
      ...seen.map((text, index): [string, string] => [`response ${index + 1}`, text]),
    ];
    const secrets = [admin, alice, bob, stranger].flatMap((token) => [token, `Bearer ${token}`, token.slice(4)]);
    for (const [where, text] of places) {
      for (const secret of secrets) {
        expect(text.includes(secret), `${where} holds a token`).toBe(false);
      }
      expect(randomLooking(text), where).toEqual([]);
    }
    // The log saw the requests and their Authorization headers, censored: the scan above found no token in it.
    expect(service.logs.some((line) => line.includes('"msg":"incoming request"'))).toBe(true);
    expect(service.logs.some((line) => line.includes('"authorization":"[redacted]"'))).toBe(true);
  }, 90_000);
});

describe("the embedded default's tokens", () => {
  it("creates one admin token on first start, prints it once, keeps only its digest in a 0600 file, and takes it after a restart", async () => {
    const first = await startTestService({ env: { SWITCH_API_TOKENS: undefined, SWITCH_LOG_LEVEL: "debug" } });
    let token: string;
    try {
      const printed = first.printed.join("\n");
      const tokens = printed.match(/svt_[A-Za-z0-9_-]+/g) ?? [];
      expect(tokens).toHaveLength(1);
      token = tokens[0]!;
      expect(printed).toContain(`Created an admin token (shown once; its SHA-256 is in ${join(first.dataDir, "tokens")}):`);

      const file = join(first.dataDir, "tokens");
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, "utf8")).toBe(`admin:admin:${tokenDigest(token)}\n`);

      expect((await first.call("/metrics", { token })).status).toBe(200);
      expect((await first.call("/v1/clusters", { token })).status).toBe(200);
      // The tokens the test helper would configure are not: none were.
      await problemOf(await first.call("/v1/clusters", { token: first.tokens.admin }), 401);
      expect(first.logs.some((line) => line.includes(token))).toBe(false);
    } finally {
      await first.close();
    }

    const second = await startTestService({ dataDir: first.dataDir, env: { SWITCH_API_TOKENS: undefined, SWITCH_LOG_LEVEL: "debug" } });
    try {
      expect(second.printed.join("\n")).not.toMatch(/svt_|Created an admin token/);
      expect((await second.call("/metrics", { token })).status).toBe(200);
      expect(readFileSync(join(second.dataDir, "tokens"), "utf8")).toBe(`admin:admin:${tokenDigest(token)}\n`);
      expect(statSync(join(second.dataDir, "tokens")).mode & 0o777).toBe(0o600);
      expect(second.logs.some((line) => line.includes(token))).toBe(false);
    } finally {
      await second.close();
    }
  }, 90_000);
});
