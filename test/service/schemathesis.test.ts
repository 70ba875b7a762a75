import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { withDefaults } from "../../automation/service/conferences.ts";
import { conferenceRequest } from "../../automation/service/schemas.ts";
import { DEFAULT_SITES, parseSites } from "../../domain/contracts/testbed.ts";
import { sizeConference } from "../../domain/decision/sizing.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { type Capacity, ROOMY, type TestService, startTestService, testbedOf } from "../support/service.ts";
import { pinnedPythonTool } from "../support/venv.ts";

/**
 * Schemathesis against the running service, from its own /openapi.json: every documented
 * operation, its coverage, fuzzing and stateful phases (links inferred from the responses), every
 * check that applies. The test fails on any failure or error schemathesis reports, printing its
 * summary, and counts the requests it sent from its NDJSON report: at least MIN_REQUESTS. Where
 * schemathesis takes a status the document cannot rule out (a 400 for an address that locates
 * nowhere, a 409 for a conference no node holds), the test holds each to its reason.
 * fuzz.test.ts fuzzes the same routes from the other side, without the document.
 */

const MIN_REQUESTS = 10_000;
/**
 * A bound on each run, against a hang; a run that needs longer is a failure to look at, not to
 * wait for. The "every operation" run took 377 s, 441 s and 484 s on two cores shared with the
 * other test files (its fuzzing phase alone 392 s, schemathesis's own generation most of it), so
 * the bound is half as much again as the slowest.
 */
const RUN_TIMEOUT_MS = 12 * 60_000;

/**
 * Checks left out, each for a reason:
 * - use_after_free: DELETE stops a conference, and its record stays readable as `stopped` by
 *   design (STYLE.md 15: long operations are records clients poll); a 200 after it is the answer.
 */
const EXCLUDED_CHECKS = ["use_after_free"];

/**
 * positive_data_acceptance expects a schema-valid request to be accepted. A conference request is
 * schema-valid with addresses alone, and an address may be one that locates nowhere (private,
 * reserved, or not in the offline database): a 400 the document cannot express. Schemathesis is
 * told to take a 400 there, and the test holds each such 400 to being exactly that refusal
 * (LOCATOR_REFUSAL), from the report.
 */
const PLACING = new Set(["POST /v1/conferences", "POST /v1/placements"]);
const LOCATOR_REFUSAL = /^body\.participants\.\d+\.ip is [^;]+; give \{ lat, lon \} for at least one participant$/;
/** A refusal lists its first errors and counts the rest in a last entry, under the field they share. */
const MORE_ERRORS = /^body\.participants has \d+ more errors?, not listed; /;

/**
 * A schema-valid conference may still be one no node holds: up to 100,000 participants, each
 * sending to every other, is millions of vCPU. So positive_data_acceptance must take a 409 (told
 * below), and the test holds each 409 to its reason instead (readReport): on this testbed — the
 * default one's sites, each as large as a cluster may be, which ten thousand requests never fill —
 * "no cluster has room" is right exactly for a conference larger than a node, sized as the domain
 * sizes it, and wrong for any other; and a reused Idempotency-Key only where the request has one.
 * A conference larger than a node is never placed, and most are placed (MIN_PLACED_SHARE).
 */
const GIBIBYTE = 1024 ** 3;
/** Of the conferences placed or refused with 409, the share placed: schemathesis draws sizes up to the limit, most fit. */
const MIN_PLACED_SHARE = 0.5;
const NO_ROOM = /^no cluster has room for a conference of (\S+) CPU and (\S+) memory \(/;
const KEY_REUSED = /^the Idempotency-Key was used for another request \(conference [a-z0-9]+\); use a new key for a new conference$/;

/**
 * The event stream of a conference that runs goes on; schemathesis reads a stream until it ends,
 * sends max-stream-events or its request timeout passes. A stream waiting for its next event costs
 * that timeout, so the route gets a short one, a few events per stream and fewer cases; each
 * event read is still checked against its schema (fuzz.test.ts reads whole streams).
 *
 * The stateful phase's scenarios go on for as long as their links do: on a testbed with room, a
 * create's 202 leads to its conference, its stop and its stream, six steps where a 409 ended the
 * scenario at one. So the phase gets a number of scenarios of its own, which keeps a run within
 * RUN_TIMEOUT_MS on two cores.
 */
const STATEFUL_SCENARIOS = 300;
const CONFIG = `
headers = { Authorization = "Bearer \${SWITCH_SCHEMATHESIS_TOKEN}" }
request-timeout = 10.0

[phases.stateful]
generation.max-examples = ${STATEFUL_SCENARIOS}

[[operations]]
include-path-regex = "^/v1/(conferences|placements)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

# The PoPs' routes: this service runs none, so every one answers 404 or a refusal whatever the
# input; a few cases each check that, and their real answers are pops.test.ts's.
[[operations]]
include-path-regex = "^/v1/pops"
generation.max-examples = 60

[[operations]]
include-path = "/v1/conferences/{id}/events"
request-timeout = 1.0
max-stream-events = 5
generation.max-examples = 60
`;

let service: TestService;
beforeAll(async () => {
  service = await startTestService({ env: { SWITCH_TESTBED: testbedOf(ROOMY) } });
}, 60_000);
afterAll(() => service?.close());

function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), RUN_TIMEOUT_MS);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

interface Interaction {
  request: { method: string; uri: string; headers?: Record<string, string[]>; body?: { $base64?: string } };
  response?: { status_code: number; content?: { $base64?: string } };
}
interface Recorded {
  label: string;
  cases?: Record<string, { value: { method: string; path: string; meta?: { generation?: { mode?: string } } } }>;
  checks?: Record<string, { name: string; status: string; failure_info?: { failure: { code?: string; title: string; message: string } } }[]>;
  interactions?: Record<string, Interaction>;
}

/**
 * Whether a 400's body refuses only addresses that locate nowhere. The report cuts bodies at 1 MiB,
 * and a request may list 10,000 such addresses: a body cut short is read from its detail (one
 * "field message" per error, joined by "; "), all but the entry the cut went through. A refusal
 * may list only its first errors, and count the others in a last entry (MORE_ERRORS).
 */
function onlyLocatorRefusals(text: string): boolean {
  let entries: string[];
  try {
    entries = ((JSON.parse(text) as { errors?: { field: string; message: string }[] }).errors ?? []).map((entry) => `${entry.field} ${entry.message}`);
  } catch {
    const detail = /"detail":"((?:[^"\\]|\\.)*)/.exec(text)?.[1] ?? "";
    entries = detail.split(/; (?=(?:body|querystring|params|headers|path)[. ])/).slice(0, -1);
  }
  const listed = MORE_ERRORS.test(entries.at(-1) ?? "") ? entries.slice(0, -1) : entries;
  return listed.length > 0 && listed.every((entry) => LOCATOR_REFUSAL.test(entry));
}

const decode = (content: { $base64?: string } | undefined) => Buffer.from(content?.$base64 ?? "", "base64").toString();

/**
 * Whether a placing request's answer is what its size says, on a testbed of nodes of `capacity`:
 * a conference no node holds is refused with 409 naming its size and never placed, any other is
 * refused with 409 only for a reused Idempotency-Key; undefined when it is, else what is wrong.
 */
function unexplainedPlacing(interaction: Interaction, status: number, capacity: Capacity): string | undefined {
  const detail = status === 409 ? (JSON.parse(decode(interaction.response?.content)) as { detail?: string }).detail : undefined;
  const larger = (cpu: string, memory: string) => parseCpuMillicores(cpu)! > capacity.vcpuPerNode * 1000 || parseMemoryBytes(memory)! > capacity.memoryGiBPerNode * GIBIBYTE;
  let body: unknown;
  try {
    body = JSON.parse(decode(interaction.request.body));
  } catch {
    // A body the report cut short (it keeps 1 MiB of each) is judged by the size its refusal names.
    const named = NO_ROOM.exec(detail ?? "");
    return status !== 409 || (named !== null && larger(named[1]!, named[2]!)) ? undefined : `a 409 for a request the report cut short: ${detail}`;
  }
  const parsed = conferenceRequest.safeParse(body);
  if (!parsed.success) {
    return status === 409 ? `a 409 for a request that is none: ${detail}` : undefined;
  }
  const size = sizeConference(withDefaults(parsed.data));
  const fits = !larger(size.cpu, size.memory);
  if (status === 409) {
    const named = NO_ROOM.exec(detail ?? "");
    if (named !== null && !fits && parseCpuMillicores(named[1]!) === size.millicores && parseMemoryBytes(named[2]!) === size.bytes) {
      return undefined;
    }
    if (KEY_REUSED.test(detail ?? "") && interaction.request.headers?.["idempotency-key"] !== undefined) {
      return undefined;
    }
    return `409 for a conference of ${size.cpu} CPU and ${size.memory}, which ${fits ? "fits" : "is larger than"} a node: ${detail}`;
  }
  return status < 300 && !fits ? `${status} for a conference of ${size.cpu} CPU and ${size.memory}, which no node holds` : undefined;
}

/**
 * What the report says: requests sent and answered, by status; failures and errors; what broke the
 * positive-data exceptions (on a testbed of nodes of `capacity`); how many conferences were placed.
 */
function readReport(path: string, capacity: Capacity) {
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  const errors: string[] = [];
  const unexplained400s: string[] = [];
  const unexplainedPlacings: string[] = [];
  let placed = 0;
  let refused = 0;
  let finished = false;
  const lines = readFileSync(path, "utf8").split("\n");
  for (const [index, line] of lines.entries()) {
    if (line.trim() === "") {
      continue;
    }
    let event: Record<string, Record<string, unknown>>;
    try {
      event = JSON.parse(line) as typeof event;
    } catch (error) {
      if (lines.slice(index + 1).every((rest) => rest.trim() === "")) {
        // A run killed at its time limit stops mid-line: it did not finish, which says so below.
        break;
      }
      throw error;
    }
    const [kind, body] = Object.entries(event)[0]!;
    if (kind === "NonFatalError" || kind === "FatalError") {
      errors.push(`${typeof body.label === "string" ? body.label : kind}: ${JSON.stringify(body.value ?? body)}`);
    } else if (kind === "EngineFinished") {
      finished = true;
    } else if (kind === "ScenarioFinished") {
      const recorded = body.recorder as Recorded;
      for (const [id, interaction] of Object.entries(recorded.interactions ?? {})) {
        const status = interaction.response?.status_code;
        if (status === undefined) {
          continue;
        }
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const value = recorded.cases?.[id]?.value;
        const operation = value === undefined ? "" : `${value.method} ${value.path}`;
        if (status === 400 && PLACING.has(operation) && value?.meta?.generation?.mode === "positive") {
          const text = decode(interaction.response?.content);
          const located = onlyLocatorRefusals(text);
          if (!located) {
            unexplained400s.push(`${operation} (case ${id}): ${text.slice(0, 2000)}`);
          }
        }
        if (PLACING.has(operation)) {
          const wrong = unexplainedPlacing(interaction, status, capacity);
          if (wrong !== undefined) {
            unexplainedPlacings.push(`${operation} (case ${id}): ${wrong.slice(0, 2000)}`);
          }
          placed += status === 200 || status === 202 ? 1 : 0;
          refused += status === 409 ? 1 : 0;
        } else if (status === 409) {
          unexplainedPlacings.push(`${operation} (case ${id}): 409 ${decode(interaction.response?.content).slice(0, 2000)}`);
        }
      }
      for (const [id, checks] of Object.entries(recorded.checks ?? {})) {
        for (const check of checks.filter((candidate) => candidate.status === "failure")) {
          const failure = check.failure_info?.failure;
          failures.push(`${recorded.label} (case ${id}) ${check.name}: ${failure?.code ?? ""} ${failure?.title ?? ""} — ${failure?.message ?? ""}`);
        }
      }
    }
  }
  const requests = [...statuses.values()].reduce((sum, count) => sum + count, 0);
  return { requests, statuses: Object.fromEntries(statuses), failures, errors, unexplained400s, unexplainedPlacings, placed, refused, finished };
}

/**
 * Two runs at once, one core each (a run is one Python process, and one worker, see below): every
 * phase of every operation, and beside it the fuzzing of the two operations that take a request
 * body — the widest input — with a seed of its own. Together they send MIN_REQUESTS and more.
 */
const RUNS = [
  { name: "every operation", args: ["--max-examples", "1200"] },
  // The POSTs whose bodies are JSON documents: a rebalance has none, and a report's body is bytes the signature covers (pops.test.ts refuses every kind of bad one).
  { name: "request bodies", args: ["--max-examples", "3000", "--phases", "fuzzing", "--include-method", "POST", "--include-path-regex", "^/v1/(conferences|placements)$"] },
];

/** One run against `target`, whose nodes are `capacity`'s: its exit code, what it printed from its first finding on, and its report. */
async function runSchemathesis(command: string, dir: string, name: string, args: string[], target = service, capacity = ROOMY) {
  const report = join(dir, `${name.replaceAll(" ", "-")}.ndjson`);
  const { code, output } = await run(
    command,
    [
      "--config-file",
      join(dir, "schemathesis.toml"),
      "run",
      `${target.url}/openapi.json`,
      "--checks",
      "all",
      "--exclude-checks",
      EXCLUDED_CHECKS.join(","),
      ...args,
      // One worker: CPython 3.11's ast module is not thread-safe, and Hypothesis parses source
      // while it builds strategies; two workers fail at random with "AST constructor recursion
      // depth mismatch" (github.com/python/cpython/issues/106905).
      "--workers",
      "1",
      "--generation-database",
      "none",
      "--report",
      "ndjson",
      "--report-ndjson-path",
      report,
      "--no-color",
      ...(process.env.SWITCH_SCHEMATHESIS_SEED === undefined ? [] : ["--seed", process.env.SWITCH_SCHEMATHESIS_SEED]),
    ],
    // Hypothesis and schemathesis write their state beside the run, never in the repository.
    { cwd: dir, env: { ...process.env, SWITCH_SCHEMATHESIS_TOKEN: target.tokens.admin } },
  );
  const sections = ["= ERRORS =", "= FAILURES =", "= WARNINGS =", "= SUMMARY ="].map((title) => output.indexOf(title)).filter((at) => at >= 0);
  const summary = sections.length === 0 ? output.slice(-8000) : output.slice(output.lastIndexOf("\n", Math.min(...sections)) + 1).slice(0, 20_000);
  return { name, code, output, summary, ...readReport(report, capacity) };
}

it(
  "finds no failure in the service's OpenAPI document and its answers, over ten thousand requests",
  async () => {
    const command = await pinnedPythonTool("schemathesis");
    const dir = mkdtempSync(join(tmpdir(), "switch-schemathesis-"));
    writeFileSync(join(dir, "schemathesis.toml"), CONFIG);
    // The reports take tens of megabytes; what a failure needs is kept in the messages below.
    const runs = await Promise.all(RUNS.map((each) => runSchemathesis(command, dir, each.name, each.args))).finally(() => rmSync(dir, { recursive: true, force: true }));
    const requests = runs.reduce((sum, each) => sum + each.requests, 0);
    for (const each of runs) {
      const said = `schemathesis (${each.name}) exited ${each.code}; it said:\n${each.summary}\nits report: ${JSON.stringify({ requests: each.requests, statuses: each.statuses })}`;
      expect(each.failures, said).toEqual([]);
      expect(each.errors, said).toEqual([]);
      expect(each.unexplained400s, `schema-valid requests refused other than for an address that locates nowhere\n${said}`).toEqual([]);
      expect(each.unexplainedPlacings, `conferences refused or placed against what their size says\n${said}`).toEqual([]);
      expect(each.finished, said).toBe(true);
      expect(each.code, `${said}\n\nits whole output:\n${each.output.slice(-20_000)}`).toBe(0);
      expect(each.statuses[500] ?? 0, said).toBe(0);
    }
    const counts = runs.map((each) => `${each.name}: ${each.requests} (${JSON.stringify(each.statuses)}; ${each.placed} placed, ${each.refused} refused with 409)`).join("; ");
    expect(requests, counts).toBeGreaterThanOrEqual(MIN_REQUESTS);
    const placed = runs.reduce((sum, each) => sum + each.placed, 0);
    expect(placed / (placed + runs.reduce((sum, each) => sum + each.refused, 0)), counts).toBeGreaterThanOrEqual(MIN_PLACED_SHARE);
    console.log(`schemathesis sent ${requests} requests — ${counts}`);
  },
  RUN_TIMEOUT_MS + 60_000,
);

it(
  "sees conferences refused that a node would hold, from a service whose testbed is full",
  async () => {
    const command = await pinnedPythonTool("schemathesis");
    // Room for one small conference per cluster, taken at once: a service that refuses what fits.
    const small: Capacity = { nodes: 1, vcpuPerNode: 0.75, memoryGiBPerNode: 2 };
    const full = await startTestService({ env: { SWITCH_TESTBED: testbedOf(small) } });
    const dir = mkdtempSync(join(tmpdir(), "switch-schemathesis-control-"));
    try {
      const fits = { participants: [{ lat: 46.05, lon: 14.51 }], expectedParticipants: 2 };
      let filled = false;
      for (let attempt = 0; attempt <= parseSites(DEFAULT_SITES, "sites").length && !filled; attempt++) {
        const response = await full.call("/v1/conferences", { method: "POST", body: JSON.stringify(fits) });
        filled = response.status === 409;
        await response.body?.cancel();
      }
      expect(filled, "the small testbed filled").toBe(true);
      writeFileSync(join(dir, "schemathesis.toml"), CONFIG);
      const control = await runSchemathesis(command, dir, "control", ["--max-examples", "40", "--phases", "fuzzing", "--include-method", "POST", "--include-path", "/v1/conferences", "--seed", "1"], full, small);
      expect(control.requests, control.summary).toBeGreaterThan(0);
      expect(control.unexplainedPlacings.filter((entry) => entry.includes("which fits a node")), control.summary).not.toEqual([]);
      expect(control.placed / (control.placed + control.refused)).toBeLessThan(MIN_PLACED_SHARE);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await full.close();
    }
  },
  RUN_TIMEOUT_MS,
);
