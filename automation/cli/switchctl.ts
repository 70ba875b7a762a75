/**
 * `npm run switchctl -- <command>`: the automation service from a terminal, through the typed
 * client (automation/client/client.ts). The service's address and token come from SWITCH_URL
 * (default http://127.0.0.1:8080) and SWITCH_TOKEN.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { SingleBar } from "cli-progress";
import ipaddr from "ipaddr.js";
import { type Conference, type ConferenceRequest, type Decision, type PopDecision, type PopSummary, ServiceError, SwitchClient, isServiceUrl } from "../client/client.ts";
import { ROLES, type Role, newToken, tokenEntry } from "../service/auth.ts";
import { UsageError, alternatives, exitWithUsageError, parseCommandLine } from "./command-line.ts";

const USAGE = `usage: npm run switchctl -- <command> [options]
  create PARTICIPANT... [--expected N] [--last-n=N] [--no-simulcast] [--objective mean|worstPair|p95] [--idempotency-key K] [--watch]
  list [--state STATE] [--limit N]
  get ID
  watch ID                    follow a conference's events until it stops or fails
  stop ID [--watch]
  place PARTICIPANT... [same options as create]   where a conference would go; changes nothing
  clusters
  token create SUBJECT [--role organizer|admin]    prints a token and the SWITCH_API_TOKENS entry for it
  pop list                    the PoPs the service runs the loop for (admins, as are the pop commands)
  pop show POP [--json]       a PoP's layout, each host's latest report, its newest decision
  pop decisions POP [--limit N]   its decisions, newest first
  pop rebalance POP           decide its layout now; prints the decision
PARTICIPANT: lat,lon (e.g. 46.05,14.51) or an IPv4/IPv6 address.
Environment: SWITCH_URL (default http://127.0.0.1:8080), SWITCH_TOKEN.`;

const DEFAULT_URL = "http://127.0.0.1:8080";
const COORDINATES = /^(-?\d+(?:\.\d+)?),(-?\d+(?:\.\d+)?)$/;
const COMMANDS = ["create", "list", "get", "watch", "stop", "place", "clusters", "token", "pop"] as const;
const POP_COMMANDS = ["list", "show", "decisions", "rebalance"] as const;

const options = {
  expected: { type: "string" },
  "last-n": { type: "string" },
  "no-simulcast": { type: "boolean", default: false },
  objective: { type: "string" },
  "idempotency-key": { type: "string" },
  watch: { type: "boolean", default: false },
  state: { type: "string" },
  limit: { type: "string" },
  role: { type: "string", default: "organizer" },
  json: { type: "boolean", default: false },
} as const;

const COMMAND_LINE = { name: "switchctl", usage: USAGE, options };

function whole(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) {
    return undefined;
  }
  if (!/^-?\d+$/.test(text)) {
    throw new UsageError(`${flag} ${JSON.stringify(text)} is not a whole number`);
  }
  return Number(text);
}

function participants(given: string[]): ConferenceRequest["participants"] {
  if (given.length === 0) {
    throw new UsageError("give at least one participant (lat,lon or an IP address)");
  }
  return given.map((entry) => {
    const coordinates = COORDINATES.exec(entry);
    if (coordinates !== null) {
      return { lat: Number(coordinates[1]), lon: Number(coordinates[2]) };
    }
    if (ipaddr.isValid(entry)) {
      return { ip: entry };
    }
    throw new UsageError(`participant ${JSON.stringify(entry)} is neither lat,lon nor an IP address; give e.g. 46.05,14.51 or 193.2.1.66`);
  });
}

function request(values: ReturnType<typeof parseCommandLine<typeof options>>["values"], given: string[]): ConferenceRequest {
  const objective = values.objective;
  if (objective !== undefined && !["mean", "worstPair", "p95"].includes(objective)) {
    throw new UsageError(`--objective ${JSON.stringify(objective)} is not an objective; use mean, worstPair or p95`);
  }
  const expectedParticipants = whole("--expected", values.expected);
  const lastN = whole("--last-n", values["last-n"]);
  return {
    participants: participants(given),
    ...(expectedParticipants === undefined ? {} : { expectedParticipants }),
    ...(lastN === undefined ? {} : { lastN }),
    ...(values["no-simulcast"] ? { simulcast: false } : {}),
    ...(objective === undefined ? {} : { objective: objective as "mean" | "worstPair" | "p95" }),
  };
}

function client(): SwitchClient {
  const token = process.env.SWITCH_TOKEN;
  if (token === undefined || token === "") {
    throw new UsageError("SWITCH_TOKEN is not set; export the token the service printed at its first start, or one made with `switchctl token create`");
  }
  const url = process.env.SWITCH_URL ?? DEFAULT_URL;
  if (!isServiceUrl(url)) {
    throw new UsageError(`SWITCH_URL ${JSON.stringify(url)} is not an absolute http(s) URL; give e.g. ${DEFAULT_URL}`);
  }
  return new SwitchClient({ url, token });
}

function printDecision(decision: Decision): void {
  console.log(`cluster ${decision.cluster}: ${decision.resources.cpu} CPU, ${decision.resources.memory} memory; predicted ${decision.predicted.objective} ${decision.predicted.objectiveMs.toFixed(1)} ms`);
  for (const entry of decision.ranking) {
    console.log(`  ${entry.feasible ? " " : "x"} ${entry.cluster.padEnd(22)} ${entry.objectiveMs.toFixed(1).padStart(8)} ms${entry.reason === undefined ? "" : `  (${entry.reason})`}`);
  }
  for (const entry of decision.unplaced) {
    console.log(`  participant ${entry.index} not placed: ${entry.reason}`);
  }
}

/** Rows as a table under their header row, each column as wide as its widest cell. */
function printTable(rows: readonly (readonly string[])[]): void {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) {
    console.log(row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd());
  }
}

function printConferences(conferences: readonly Conference[]): void {
  printTable([
    ["ID", "STATE", "CLUSTER", "URL", "ERROR"],
    ...conferences.map((conference) => [
      conference.id,
      conference.state === "deploying" ? `deploying ${conference.progress.done}/${conference.progress.total}` : conference.state,
      conference.cluster,
      conference.url ?? "",
      conference.error ?? "",
    ]),
  ]);
}

/** A layout as "host1: small, vod; host2: large". */
function layoutText(layout: PopSummary["layout"]): string {
  return Object.entries(layout)
    .map(([host, roles]) => `${host}: ${roles.join(", ")}`)
    .join("; ");
}

function printPops(pops: readonly PopSummary[]): void {
  printTable([
    ["POP", "STACK", "HOSTS", "EDGES", "LAST DECISION", "UP"],
    ...pops.map((pop) => [
      pop.name,
      pop.stack,
      String(pop.hosts.length),
      String(Object.values(pop.layout).reduce((sum, roles) => sum + roles.length, 0)),
      pop.lastDecision === undefined ? "" : `${pop.lastDecision.id} ${pop.lastDecision.outcome} ${pop.lastDecision.decidedAt}`,
      pop.pendingOperation === undefined ? "" : `operation ${pop.pendingOperation}`,
    ]),
  ]);
}

function printPopDecisions(decisions: readonly PopDecision[]): void {
  printTable([["ID", "DECIDED", "OUTCOME", "STRATEGY", "REASON"], ...decisions.map((decision) => [String(decision.id), decision.decidedAt, decision.outcome, decision.strategy, decision.reason ?? ""])]);
}

function popName(command: string, rest: readonly string[]): string {
  const [name, ...more] = rest;
  if (name === undefined || more.length > 0) {
    throw new UsageError(`pop ${command} takes one PoP name`);
  }
  return name;
}

async function pop(rest: readonly string[], values: ReturnType<typeof parseCommandLine<typeof options>>["values"]): Promise<void> {
  const [sub, ...args] = rest;
  switch (sub) {
    case "list":
      if (args.length > 0) {
        throw new UsageError("pop list takes no arguments");
      }
      printPops(await client().pops());
      return;
    case "show": {
      const shown = await client().pop(popName(sub, args));
      if (values.json) {
        console.log(JSON.stringify(shown, null, 2));
        return;
      }
      console.log(`pop ${shown.name} (stack ${shown.stack})${shown.pendingOperation === undefined ? "" : `: up in flight, operation ${shown.pendingOperation}`}`);
      printTable([
        ["HOST", "EDGES", "LAST REPORT"],
        ...shown.hosts.map((host) => [host, (shown.layout[host] ?? []).map((role) => `${role} ${shown.addresses[`${host}/${role}`] ?? ""}`.trim()).join(", "), shown.lastReports[host] ?? "never"]),
      ]);
      if (shown.lastDecision !== undefined) {
        const { id, outcome, decidedAt, reason } = shown.lastDecision;
        console.log(`last decision ${id}: ${outcome} at ${decidedAt}${reason === undefined ? "" : `; ${reason}`}`);
      }
      return;
    }
    case "decisions": {
      const limit = whole("--limit", values.limit);
      printPopDecisions((await client().popDecisions(popName(sub, args), limit === undefined ? {} : { limit })).decisions);
      return;
    }
    case "rebalance": {
      const decision = await client().rebalance(popName(sub, args));
      console.log(`decision ${decision.id}: ${decision.outcome}${decision.reason === undefined ? "" : `; ${decision.reason}`}`);
      if (decision.chosen !== undefined) {
        console.log(`layout ${layoutText(decision.chosen.layout)}`);
      }
      return;
    }
    default:
      throw new UsageError(sub === undefined ? `give a pop command: ${alternatives(POP_COMMANDS)}` : `${JSON.stringify(sub)} is not a pop command; use ${alternatives(POP_COMMANDS)}`);
  }
}

/** Follows the events with a progress bar while it deploys; resolves with the last event's type. */
async function watch(api: SwitchClient, id: string, until: "ready" | "end"): Promise<void> {
  const bar = new SingleBar({ format: "deploying [{bar}] {value}/{total} resources", hideCursor: true, clearOnComplete: true, stream: process.stderr });
  let started = false;
  try {
    for await (const event of api.events(id, { until: (event) => event.type === "failed" || event.type === "stopped" || (until === "ready" && event.type === "ready") })) {
      if (event.type === "deploying") {
        const { done, total } = event.data as { done: number; total: number };
        if (!started) {
          bar.start(Math.max(total, 1), done);
          started = true;
        }
        bar.setTotal(Math.max(total, 1));
        bar.update(done);
        continue;
      }
      if (started) {
        bar.stop();
        started = false;
      }
      if (event.type === "ready") {
        console.log(`ready: ${String(event.data.url)}`);
      } else if (event.type === "failed") {
        process.exitCode = 1;
        console.log(`failed: ${String(event.data.reason)}`);
      } else {
        console.log(event.type);
      }
    }
  } finally {
    if (started) {
      bar.stop();
    }
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseCommandLine(COMMAND_LINE);
  const [command, ...rest] = positionals;
  switch (command) {
    case "create": {
      const api = client();
      const created = await api.create(request(values, rest), values["idempotency-key"] === undefined ? {} : { idempotencyKey: values["idempotency-key"] });
      console.log(`conference ${created.id} ${created.state}`);
      printDecision(created.decision);
      if (values.watch) {
        await watch(api, created.id, "ready");
      }
      return;
    }
    case "place":
      printDecision(await client().place(request(values, rest)));
      return;
    case "list": {
      const limit = whole("--limit", values.limit);
      const conferences = await client().list({
        ...(values.state === undefined ? {} : { state: values.state as Conference["state"] }),
        ...(limit === undefined ? {} : { limit }),
      });
      printConferences(conferences);
      return;
    }
    case "get":
    case "watch":
    case "stop": {
      const id = rest[0];
      if (id === undefined || rest.length > 1) {
        throw new UsageError(`${command} takes one conference id`);
      }
      const api = client();
      if (command === "get") {
        const conference = await api.get(id);
        if (values.json) {
          console.log(JSON.stringify(conference, null, 2));
        } else {
          printConferences([conference]);
          printDecision(conference.decision);
        }
      } else if (command === "stop") {
        printConferences([await api.stop(id)]);
        if (values.watch) {
          await watch(api, id, "end");
        }
      } else {
        await watch(api, id, "end");
      }
      return;
    }
    case "clusters": {
      const { engine, clusters } = await client().clusters();
      console.log(`engine: ${engine}${engine === "offline" ? " (nothing is deployed)" : ""}`);
      for (const [name, cluster] of Object.entries(clusters)) {
        console.log(`${name.padEnd(22)} ${cluster.location.city}, ${cluster.location.country}  free ${cluster.free.cpu} CPU, ${cluster.free.memory}  conferences ${cluster.conferences}`);
      }
      return;
    }
    case "token": {
      const [sub, subject] = rest;
      if (sub !== "create") {
        throw new UsageError(sub === undefined ? "give a token command: create" : `${JSON.stringify(sub)} is not a token command; use create`);
      }
      if (subject === undefined) {
        throw new UsageError("token create needs a SUBJECT, who the token is for");
      }
      if (!(ROLES as readonly string[]).includes(values.role)) {
        throw new UsageError(`--role ${JSON.stringify(values.role)} is not a role; use organizer or admin`);
      }
      const token = newToken();
      console.log(`token (shown once; give it to ${subject}): ${token}`);
      console.log(`add to SWITCH_API_TOKENS (comma-separated): ${tokenEntry(subject, values.role as Role, token)}`);
      return;
    }
    case "pop":
      await pop(rest, values);
      return;
    default:
      throw new UsageError(
        command === undefined ? `give a command: ${alternatives(COMMANDS)}` : `${JSON.stringify(command)} is not a command; use ${alternatives(COMMANDS)}`,
      );
  }
}

try {
  await main();
} catch (error) {
  if (error instanceof UsageError) {
    exitWithUsageError(COMMAND_LINE, [error.message]);
  } else if (error instanceof ServiceError) {
    console.error(`the service refused (${error.problem.status} ${error.problem.title}): ${error.message}`);
    process.exitCode = 1;
  } else {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 1;
  }
}
