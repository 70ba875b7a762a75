import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { z } from "zod";
import { DEFAULT_MAX_BYTES, REFUSAL_REASONS, type RefusalReason } from "../../automation/service/loops/report-admission.ts";
import { popDecisionList, popDecisionView, popList, popView } from "../../automation/service/schemas.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "../../domain/wae/signature.ts";
import { type CommandResult, runScript } from "../support/cli.ts";
import { poll } from "../support/poll.ts";
import { STILL_CLOCK, type TestService, WAIT_TIMEOUT_MS, problemOf, startTestService } from "../support/service.ts";

/**
 * The PoP routes over real HTTP, on the offline engine, serving stacks/Pulumi.pop-vienna.yaml
 * (host1, host2, host3) with a loop that decides only when asked (STILL_CLOCK): the admins' views,
 * decisions and rebalance, and the hosts' signed reports — each refusal with its status and detail,
 * counted by its reason in /metrics, its detail never holding a key.
 */

const VIENNA = fileURLToPath(new URL("../../stacks/Pulumi.pop-vienna.yaml", import.meta.url));
/** The PoP as its stack file configures it: what the service must run before it has decided anything. */
const CONFIGURED = (parse(readFileSync(VIENNA, "utf8")) as { config: Record<string, { layout: unknown; addresses: unknown }> }).config["switch-vaas:pop"]!;
const KEYS = { host1: randomBytes(32).toString("hex"), host2: randomBytes(32).toString("hex"), host3: randomBytes(32).toString("hex") };
const ADMINS_ONLY = "this route is for admins";
const NOT_VERIFIED = 'x-switch-vaas-signature does not verify; sign "<x-switch-vaas-timestamp>.<body>" with this host\'s report key';

type Outcome = "accepted" | "duplicate" | RefusalReason;
const OUTCOMES: readonly Outcome[] = ["accepted", "duplicate", ...REFUSAL_REASONS];

let service: TestService;

beforeAll(async () => {
  service = await startTestService({ pops: { stackFiles: [VIENNA], keys: { vienna: KEYS } }, popClock: STILL_CLOCK });
  // The service brings up a PoP it never brought up as its stack file configures it.
  await poll("the first up of pop-vienna did not converge", () => view(), (pop) => pop.pendingOperation === undefined && pop.lastDecision?.outcome === "applied", WAIT_TIMEOUT_MS);
}, 60_000);
afterAll(() => service?.close());

async function view(): Promise<z.output<typeof popView>> {
  const response = await service.call("/v1/pops/vienna", { token: service.tokens.admin });
  expect(response.status).toBe(200);
  return popView.strict().parse(await response.json());
}

async function decisions(query = ""): Promise<z.output<typeof popDecisionList>> {
  const response = await service.call(`/v1/pops/vienna/decisions${query}`, { token: service.tokens.admin });
  expect(response.status, await response.clone().text()).toBe(200);
  return popDecisionList.parse(await response.json());
}

/** switch_pop_reports_total of vienna, by outcome (0 for an outcome never counted). */
async function reportCounts(): Promise<Record<Outcome, number>> {
  const metrics = await (await service.call("/metrics", { token: service.tokens.admin })).text();
  return Object.fromEntries(
    OUTCOMES.map((outcome) => [outcome, Number(new RegExp(`^switch_pop_reports_total\\{pop="vienna",outcome="${outcome}"\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? 0)]),
  ) as Record<Outcome, number>;
}

/** What changed between two counts: only the outcomes that moved. */
function counted(before: Record<Outcome, number>, after: Record<Outcome, number>): Partial<Record<Outcome, number>> {
  return Object.fromEntries(OUTCOMES.filter((outcome) => after[outcome] !== before[outcome]).map((outcome) => [outcome, after[outcome] - before[outcome]]));
}

const PERIOD_MS = 60_000;
/** A host's report of the period that ended at `end` (ms), as its instance manager writes it. */
function report(host: string, end: number, changes: Record<string, unknown> = {}): string {
  return JSON.stringify({
    pop: "vienna",
    host,
    periodStart: new Date(end - PERIOD_MS).toISOString(),
    periodEnd: new Date(end).toISOString(),
    cpu: { capacityCores: 8, usedCores: 2 },
    network: { linkMbps: 1000, txMbps: 120 },
    requests: { small: 400, large: 20, vod: 60, live: 0 },
    ...changes,
  });
}

/** POSTs a report as an instance manager does: no bearer token, signed with `key` at `timestamp` (now). */
function send(body: string, key: string, options: { timestamp?: number; token?: string } = {}): Promise<Response> {
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
  return service.call("/v1/pops/vienna/reports", {
    method: "POST",
    token: options.token ?? null,
    body,
    headers: { [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: sign(body, key, timestamp) },
  });
}

/** A refusal's problem, checked to say nothing of a key. */
async function refusal(response: Response, status: number): Promise<string> {
  const { detail } = await problemOf(response, status);
  for (const key of Object.values(KEYS)) {
    expect(detail).not.toContain(key.slice(0, 8));
  }
  return detail!;
}

describe("the admins' views", () => {
  it("shows vienna as its stack file lays it out once the service's first up converged", async () => {
    const vienna = await view();
    expect(vienna).toMatchObject({ name: "vienna", stack: "pop-vienna", hosts: ["host1", "host2", "host3"], layout: CONFIGURED.layout, addresses: CONFIGURED.addresses, lastReports: {} });
    expect(vienna.lastDecision).toMatchObject({ pop: "vienna", outcome: "applied", strategy: "configured", chosen: { layout: CONFIGURED.layout, addresses: CONFIGURED.addresses } });
    expect(vienna.lastDecision?.operationId).toEqual(expect.any(Number));

    const listed = await service.call("/v1/pops", { token: service.tokens.admin });
    expect(listed.status).toBe(200);
    expect(popList.strict().parse(await listed.json()).pops).toEqual([
      { name: "vienna", stack: "pop-vienna", hosts: ["host1", "host2", "host3"], layout: CONFIGURED.layout, lastDecision: { id: vienna.lastDecision!.id, decidedAt: vienna.lastDecision!.decidedAt, outcome: "applied", reason: vienna.lastDecision!.reason } },
    ]);
  });

  it("are for admins alone: an organizer is refused with 403 and no token with 401, and a refused rebalance decides nothing", async () => {
    const before = await decisions();
    const routes = [
      ["GET", "/v1/pops"],
      ["GET", "/v1/pops/vienna"],
      ["GET", "/v1/pops/vienna/decisions"],
      ["POST", "/v1/pops/vienna/rebalance"],
    ] as const;
    for (const [method, path] of routes) {
      for (const token of [service.tokens.alice, service.tokens.bob]) {
        expect((await problemOf(await service.call(path, { method, token }), 403)).detail, `${method} ${path}`).toBe(ADMINS_ONLY);
      }
      const anonymous = await service.call(path, { method, token: null });
      expect(anonymous.headers.get("www-authenticate"), `${method} ${path}`).toBe('Bearer realm="switch-vaas"');
      await problemOf(anonymous, 401);
    }
    expect(await decisions()).toEqual(before);
  });

  it("answers 404 for a PoP it does not serve and 400 for a name that is none", async () => {
    expect((await problemOf(await service.call("/v1/pops/paris", { token: service.tokens.admin }), 404)).detail).toBe("no PoP paris is served here; GET /v1/pops lists the PoPs of SWITCH_POPS");
    expect((await problemOf(await service.call("/v1/pops/paris/rebalance", { method: "POST", token: service.tokens.admin }), 404)).detail).toMatch(/^no PoP paris /);
    // The reports route says the same to a caller without a token.
    expect((await problemOf(await service.call("/v1/pops/paris/reports", { method: "POST", token: null, body: "{}" }), 404)).detail).toMatch(/^no PoP paris /);
    const bad = await problemOf(await service.call("/v1/pops/Vienna", { token: service.tokens.admin }), 400);
    expect(bad.errors).toEqual([{ field: "params.pop", message: "is not a PoP's name; PoP names are DNS labels (lowercase letters, digits and '-'), as GET /v1/pops lists them" }]);
  });
});

describe("reports", () => {
  // Periods that ended a minute apart, the latest a few seconds ago: each host reports the next in turn.
  const now = Date.now();
  const first = now - 3 * PERIOD_MS;

  it("takes a signed report (202) and a resend of its bytes as a duplicate (200), each counted once", async () => {
    const before = await reportCounts();
    const body = report("host1", first);
    const accepted = await send(body, KEYS.host1);
    expect(accepted.status, await accepted.clone().text()).toBe(202);
    expect(await accepted.json()).toEqual({ status: "accepted" });
    // The agent signs each attempt anew; the bytes are the same.
    await delay(1000);
    const resent = await send(body, KEYS.host1);
    expect(resent.status).toBe(200);
    expect(await resent.json()).toEqual({ status: "duplicate" });
    expect(counted(before, await reportCounts())).toEqual({ accepted: 1, duplicate: 1 });
    expect((await view()).lastReports).toEqual({ host1: new Date(first).toISOString() });
  });

  it("takes no bearer token in place of a signature, an admin's included", async () => {
    const before = await reportCounts();
    const response = await service.call("/v1/pops/vienna/reports", { method: "POST", token: service.tokens.admin, body: report("host2", first) });
    expect(response.headers.get("www-authenticate")).toBeNull();
    expect(await refusal(response, 401)).toBe("x-switch-vaas-timestamp is missing; every attempt carries x-switch-vaas-timestamp and x-switch-vaas-signature");
    expect(counted(before, await reportCounts())).toEqual({ forged: 1 });
  });

  const oversized = `${" ".repeat(DEFAULT_MAX_BYTES)}${report("host2", first)}`;
  const refusals: [string, () => Promise<Response>, number, RefusalReason, string | RegExp][] = [
    ["a signature with another host's key", () => send(report("host2", first), KEYS.host1), 401, "forged", NOT_VERIFIED],
    ["a host the PoP does not have, told as a forged signature is", () => send(report("host9", first), KEYS.host1), 401, "unknown-host", NOT_VERIFIED],
    [
      "a signature ten minutes old (a recorded request, replayed)",
      () => send(report("host2", first), KEYS.host2, { timestamp: Math.floor(Date.now() / 1000) - 600 }),
      401,
      "replayed",
      /^x-switch-vaas-timestamp is 60\d s behind the service's clock, more than the 300 s allowed; /,
    ],
    ["a body that is not JSON", () => send(`{"host": "host2", ${"x".repeat(20)}`, KEYS.host2), 400, "malformed", "the body is not JSON in UTF-8; send the report as JSON"],
    ["a report missing a field", () => send(report("host2", first, { cpu: undefined }), KEYS.host2), 400, "malformed", /^report\.cpu is not valid; see its schema, domain\/wae\/reports\.ts$/],
    ["a body larger than a report may be", () => send(oversized, KEYS.host2), 413, "oversized", `the body is more than the ${DEFAULT_MAX_BYTES} bytes a report may have; a report is a few hundred bytes`],
    [
      "a period overlapping the host's last accepted one",
      () => send(report("host1", first + PERIOD_MS / 2), KEYS.host1),
      409,
      "out-of-order",
      `the period starts before ${new Date(first).toISOString()}, the end of the host's last accepted period; periods follow each other`,
    ],
    [
      "another report of a period accepted already",
      () => send(report("host1", first, { requests: { small: 1, large: 0, vod: 0, live: 0 } }), KEYS.host1),
      409,
      "conflict",
      `another report of the period from ${new Date(first - PERIOD_MS).toISOString()} was accepted already; a period is reported once`,
    ],
  ];

  it.each(refusals)("refuses %s with its status and detail, counted by its reason", async (_what, request, status, reason, detail) => {
    const before = await reportCounts();
    const said = await refusal(await request(), status);
    if (typeof detail === "string") {
      expect(said).toBe(detail);
    } else {
      expect(said).toMatch(detail);
    }
    expect(counted(before, await reportCounts())).toEqual({ [reason]: 1 });
  });

  it("keeps only what it accepted", async () => {
    expect((await view()).lastReports).toEqual({ host1: new Date(first).toISOString() });
  });
});

describe("rebalance and decisions", () => {
  it("decides now (202): held while a host has never reported, naming it", async () => {
    const end = Date.now() - 2000;
    for (const host of ["host1", "host2"] as const) {
      expect((await send(report(host, end), KEYS[host])).status).toBe(202);
    }
    const before = await decisions();
    const response = await service.call("/v1/pops/vienna/rebalance", { method: "POST", token: service.tokens.admin });
    expect(response.status, await response.clone().text()).toBe(202);
    const decision = popDecisionView.strict().parse(await response.json());
    expect(decision).toMatchObject({ pop: "vienna", outcome: "held", strategy: "none", reason: "waiting for the first report of host3" });
    expect(decision.chosen).toBeUndefined();
    expect(decision.id).toBeGreaterThan(before.decisions[0]!.id);
    expect((await decisions()).decisions[0]).toEqual(decision);
    expect((await view()).lastDecision).toEqual(decision);
  });

  it("decides on every host's reports once each has reported", async () => {
    expect((await send(report("host3", Date.now() - 1000), KEYS.host3)).status).toBe(202);
    const response = await service.call("/v1/pops/vienna/rebalance", { method: "POST", token: service.tokens.admin });
    expect(response.status).toBe(202);
    const decision = popDecisionView.parse(await response.json());
    expect(["unchanged", "applying"]).toContain(decision.outcome);
    expect(["exact", "paper"]).toContain(decision.strategy);
    const inputs = decision.inputs as { hosts: { name: string }[]; silent: string[]; unavailable: string[] };
    expect([inputs.hosts.map((host) => host.name), inputs.silent, inputs.unavailable]).toEqual([["host1", "host2", "host3"], [], []]);
    expect(decision.chosen?.layout).toEqual(expect.any(Object));
  });

  it("re-ups vienna to the decided layout: the stack's recorded state is that layout, and its change record leaves the edges that stayed untouched", async () => {
    // Vienna runs no live edge and no host reported live requests: the loop keeps one edge of every role, so it adds one.
    const decided = await poll(
      "the decision with all three hosts to be applied",
      () => view(),
      (pop) => pop.pendingOperation === undefined && pop.lastDecision?.outcome !== "applying",
      WAIT_TIMEOUT_MS,
    );
    const decision = decided.lastDecision!;
    expect(decision.outcome).toBe("applied");
    const { layout, addresses } = decision.chosen!;
    expect(decided.layout).toEqual(layout);
    expect(decided.addresses).toEqual(addresses);
    const configured = CONFIGURED.layout as Record<string, string[]>;
    const containers = (byHost: Record<string, string[]>) => new Set(Object.entries(byHost).flatMap(([host, roles]) => roles.map((role) => `pop-${host}-${role}`)));
    const before = containers(configured);
    const after = containers(layout);
    expect([...after].some((name) => name.endsWith("-live"))).toBe(true);

    // The offline engine's state of the stack: a container per edge of the decided layout, at its address.
    const state = service.offline.state("pop-vienna")!;
    const edgeContainers = state.resources.filter((resource) => resource.type === "docker:index/container:Container" && /-(small|large|vod|live)$/.test(resource.name));
    expect(new Set(edgeContainers.map((resource) => resource.name))).toEqual(after);
    for (const container of edgeContainers) {
      const [, host, role] = /^pop-(host\d)-(\w+)$/.exec(container.name)!;
      expect(JSON.stringify(container.inputs), container.name).toContain(`"${addresses[`${host}/${role}`]}"`);
    }

    // What the re-up did to each edge: the ones that stayed are "same", new ones created, dropped ones deleted.
    const changes = Object.fromEntries((await decisions()).decisions.find((candidate) => candidate.id === decision.id)!.changes!.map((change) => [change.resource, change.action]));
    for (const name of new Set([...before, ...after])) {
      expect(changes[name], name).toBe(before.has(name) && after.has(name) ? "same" : after.has(name) ? "create" : "delete");
    }
  });

  it("pages the decisions newest first, each page linking the next, and refuses a bad limit or before by field", async () => {
    const all = (await decisions("?limit=500")).decisions;
    expect(all.length).toBeGreaterThanOrEqual(3);
    expect(all.map((decision) => decision.id)).toEqual(all.map((decision) => decision.id).toSorted((a, b) => b - a));
    const paged: number[] = [];
    let next: string | undefined = "/v1/pops/vienna/decisions?limit=1";
    while (next !== undefined) {
      const page: z.output<typeof popDecisionList> = popDecisionList.parse(await (await service.call(next, { token: service.tokens.admin })).json());
      expect(page.decisions).toHaveLength(1);
      paged.push(page.decisions[0]!.id);
      expect(page.next).toBe(paged.length === all.length ? undefined : `/v1/pops/vienna/decisions?limit=1&before=${page.decisions[0]!.id}`);
      next = page.next;
    }
    expect(paged).toEqual(all.map((decision) => decision.id));

    const refused = async (query: string) => (await problemOf(await service.call(`/v1/pops/vienna/decisions${query}`, { token: service.tokens.admin }), 400)).errors;
    expect(await refused("?limit=0")).toEqual([{ field: "querystring.limit", message: "is below 1; give a whole number from 1 to 500, or leave limit out for 100" }]);
    expect(await refused("?before=x")).toEqual([{ field: "querystring.before", message: "must be a number; follow the `next` link of the page before" }]);
    expect(await refused("?cursor=abc")).toEqual([{ field: "querystring", message: 'has an unknown key "cursor"; remove it or correct its spelling' }]);
  });
});

describe("switchctl pop", () => {
  const switchctl = (args: string[], token = service.tokens.admin): Promise<CommandResult> => runScript("automation/cli/switchctl.ts", args, { env: { SWITCH_URL: service.url, SWITCH_TOKEN: token } });

  it("lists the PoPs, shows one, lists its decisions and rebalances it", async () => {
    await poll("the up of the last rebalance did not converge", () => view(), (pop) => pop.pendingOperation === undefined, WAIT_TIMEOUT_MS);
    const listed = await switchctl(["pop", "list"]);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, ...rows] = listed.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^POP +STACK +HOSTS +EDGES +LAST DECISION +UP$/);
    expect(rows).toEqual([expect.stringMatching(/^vienna +pop-vienna +3 +\d+ +\d+ (held|unchanged|applying|applied) \S+/)]);

    const shown = await switchctl(["pop", "show", "vienna"]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^pop vienna \(stack pop-vienna\)/);
    expect(shown.stdout).toMatch(/^HOST +EDGES +LAST REPORT$/m);
    expect(shown.stdout).toMatch(/^host3 +.*\d{4}-\d\d-\d\dT\S+Z$/m);
    expect(shown.stdout).toMatch(/^last decision \d+: /m);
    const json = await switchctl(["pop", "show", "vienna", "--json"]);
    expect(popView.parse(JSON.parse(json.stdout))).toEqual(await view());

    const { decisions: [newest] } = await decisions("?limit=1");
    const listedDecisions = await switchctl(["pop", "decisions", "vienna", "--limit", "1"]);
    expect(listedDecisions.stdout.trimEnd().split("\n")).toEqual([expect.stringMatching(/^ID +DECIDED +OUTCOME +STRATEGY +REASON$/), expect.stringMatching(new RegExp(`^${newest!.id} +${newest!.decidedAt} +${newest!.outcome} +${newest!.strategy}`))]);

    const rebalanced = await switchctl(["pop", "rebalance", "vienna"]);
    expect(rebalanced.code, rebalanced.stderr).toBe(0);
    const { decisions: [made] } = await decisions("?limit=1");
    expect(rebalanced.stdout.split("\n")[0]).toBe(`decision ${made!.id}: ${made!.outcome}; ${made!.reason!}`);
  });

  it.each([
    [["pop"], 2, "switchctl: give a pop command: list, show, decisions or rebalance"],
    [["pop", "drain", "vienna"], 2, 'switchctl: "drain" is not a pop command; use list, show, decisions or rebalance'],
    [["pop", "show"], 2, "switchctl: pop show takes one PoP name"],
    [["pop", "decisions", "vienna", "--limit", "many"], 2, 'switchctl: --limit "many" is not a whole number'],
    [["pop", "show", "paris"], 1, "the service refused (404 Not Found): no PoP paris is served here; GET /v1/pops lists the PoPs of SWITCH_POPS"],
  ])("refuses %j with exit %i and says why", async (args, code, message) => {
    const result = await switchctl(args);
    expect(result.code).toBe(code);
    expect(result.stderr.split("\n")[0]).toBe(message);
  });

  it("is refused to an organizer", async () => {
    const result = await switchctl(["pop", "list"], service.tokens.alice);
    expect(result.code).toBe(1);
    expect(result.stderr.trim()).toBe(`the service refused (403 Forbidden): ${ADMINS_ONLY}`);
  });
});

describe("a service without PoPs", () => {
  let bare: TestService;
  beforeAll(async () => {
    bare = await startTestService();
  }, 60_000);
  afterAll(() => bare?.close());

  it("lists none, and says a PoP is not found because SWITCH_POPS names none", async () => {
    const listed = await bare.call("/v1/pops", { token: bare.tokens.admin });
    expect(listed.status).toBe(200);
    expect(await listed.json()).toEqual({ pops: [] });
    const detail = "the service runs no PoP: SWITCH_POPS names none; set it to the PoPs' stack files (e.g. stacks/Pulumi.pop-vienna.yaml) and restart";
    expect((await problemOf(await bare.call("/v1/pops/vienna", { token: bare.tokens.admin }), 404)).detail).toBe(detail);
    expect((await problemOf(await bare.call("/v1/pops/vienna/decisions", { token: bare.tokens.admin }), 404)).detail).toBe(detail);
    expect((await problemOf(await bare.call("/v1/pops/vienna/rebalance", { method: "POST", token: bare.tokens.admin }), 404)).detail).toBe(detail);
    expect((await problemOf(await bare.call("/v1/pops/vienna/reports", { method: "POST", token: null, body: report("host1", Date.now() - 1000) }), 404)).detail).toBe(detail);
  });
});
