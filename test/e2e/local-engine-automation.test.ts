import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type EngineEvent, EngineError, SECRET_MASK, type StackConfigMap, type StackOutputs } from "../../automation/engine/engine.ts";
import { LocalEngine, type LocalEngineOptions } from "../../automation/engine/local.ts";
import { DEFAULT_TESTBED_STACK, conferenceName, parseConferenceSpec } from "../../domain/contracts/conference.ts";
import { PROJECT, qualifiedKey } from "../../domain/contracts/project.ts";
import { conferenceStackConfig } from "../../domain/decision/conference-config.ts";
import { type Adjust, OPERATION_TIMEOUT_MS, asStackConfig, e2eWorld, eventually, kubernetes, localTestbedConfig, refusalOf, shortAwaits } from "./support.ts";

/**
 * The local engine (automation/engine/local.ts) end to end: the service's own way of running
 * stacks — the real CLI through the Automation API, a file backend and a passphrase in a data
 * directory of its own — against the local cluster: progress, outputs without secrets, refusals,
 * cancellation, the repair of a killed run, and stacks that leave nothing behind.
 */

/** The testbed stack the conference config points at by default (organization/switch-vaas/testbed). */
const TESTBED = DEFAULT_TESTBED_STACK.split("/").at(-1)!;
const api = () => kubernetes();

const dataDir = mkdtempSync(join(tmpdir(), "switch-vaas-local-engine-"));
const engineOptions: LocalEngineOptions = { dataDir, pulumiHome: join(dataDir, "home"), transforms: [shortAwaits] };
let engine: LocalEngine;

/** Every text the engine gave this file (messages, refusals, output values): none may show a secret. */
const shown: string[] = [];

function show(value: unknown): void {
  if (typeof value === "string") {
    shown.push(value);
  } else if (typeof value === "object" && value !== null) {
    Object.values(value).forEach(show);
  }
}

/** An operation's options: bounded in time, its events kept. */
function observed(onEvent?: (event: EngineEvent) => void) {
  const events: EngineEvent[] = [];
  return {
    events,
    signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS),
    onEvent: (event: EngineEvent) => {
      events.push(event);
      show(event);
      onEvent?.(event);
    },
  };
}

function progressOf(events: EngineEvent[]) {
  return events.filter((event) => event.type === "progress");
}

/** The changes an operation reported, by type and name: one each. */
function changesOf(events: EngineEvent[]): Record<string, string> {
  const changes = events.filter((event) => event.type === "change");
  const byResource = Object.fromEntries(changes.map((change) => [`${change.resourceType} ${change.resource}`, change.action]));
  expect(Object.keys(byResource)).toHaveLength(changes.length);
  return byResource;
}

function typesOf(changes: Record<string, string>): string[] {
  return Object.keys(changes).map((key) => key.split(" ")[0]!);
}

/** Changes come once the operation has ended: after its last progress. */
function reportedAtTheEnd(events: EngineEvent[]): boolean {
  return events.findIndex((event) => event.type === "change") > events.findLastIndex((event) => event.type === "progress");
}

function conference(id: string, resources: { cpu: string; memory: string }, cluster = "local"): StackConfigMap {
  const spec = parseConferenceSpec({ id, cluster, expectedParticipants: 5, lastN: 5, simulcast: true, resources }, qualifiedKey("conference"));
  return conferenceStackConfig(spec, DEFAULT_TESTBED_STACK);
}

async function rejectionOf(call: Promise<unknown>): Promise<EngineError> {
  const error = await call.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(EngineError);
  show((error as EngineError).message);
  return error as EngineError;
}

async function namespaceGone(id: string): Promise<void> {
  await eventually(`namespace ${conferenceName(id)} to be deleted`, async () =>
    (await refusalOf(api().core.readNamespace({ name: conferenceName(id) }))).status === 404 ? true : undefined,
  );
}

async function available(id: string): Promise<boolean> {
  const deployment = await api().apps.readNamespacedDeployment({ name: `jitsi-${id}`, namespace: conferenceName(id) });
  return deployment.status?.conditions?.some((condition) => condition.type === "Available" && condition.status === "True") ?? false;
}

/** Every process's parent, from /proc. */
function parents(): Map<number, number> {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // The process ended while it was read.
    }
  }
  return parentOf;
}

/**
 * The `pulumi up` this worker started for `stack` and every process under it (its plugins): the
 * Automation API does not tell the process it runs.
 */
function cliProcessesOf(stack: string): number[] {
  const parentOf = parents();
  const cli = [...parentOf].find(([pid, parent]) => {
    if (parent !== process.pid) {
      return false;
    }
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
      return argv[1] === "up" && argv.includes(stack);
    } catch {
      return false;
    }
  })?.[0];
  if (cli === undefined) {
    return [];
  }
  const tree = [cli];
  for (let i = 0; i < tree.length; i++) {
    tree.push(...[...parentOf].filter(([, parent]) => parent === tree[i]).map(([pid]) => pid));
  }
  return tree;
}

beforeAll(async () => {
  // The passphrase comes from the data directory, as on a fresh service.
  vi.stubEnv("PULUMI_CONFIG_PASSPHRASE", undefined);
  engine = await LocalEngine.create(engineOptions);
});

afterAll(async () => {
  // Whatever a failed test left running settles first; a fresh engine then clears the cluster,
  // conferences before the testbed they read.
  await engine.close();
  const cleanup = await LocalEngine.create(engineOptions);
  const stacks = await cleanup.stacks();
  for (const stack of [...stacks.filter((name) => name !== TESTBED), ...stacks.filter((name) => name === TESTBED)]) {
    await cleanup.cancel(stack);
    await cleanup.destroy(stack, { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS) });
  }
  await cleanup.close();
  vi.unstubAllEnvs();
  // Only once the cluster is clear: a failed cleanup keeps the state that tells what is left.
  rmSync(dataDir, { recursive: true, force: true });
});

describe("the local engine's setup", () => {
  it("makes a passphrase file only its user can read", () => {
    const file = join(dataDir, "passphrase");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses to start without a Pulumi CLI, naming the fix", async () => {
    const empty = mkdtempSync(join(tmpdir(), "switch-vaas-no-cli-"));
    const path = process.env.PATH;
    vi.stubEnv("PATH", empty);
    try {
      const refusal = await rejectionOf(LocalEngine.create({ dataDir: join(empty, "data") }));
      expect(refusal.kind).toBe("unavailable");
      expect(refusal.message).toContain("no `pulumi` on PATH");
      expect(refusal.message).toContain("scripts/setup");
      expect(refusal.message).not.toMatch(/\n\s+at /);
    } finally {
      vi.stubEnv("PATH", path);
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it("refuses a stack name that is not a directory name", async () => {
    const refusal = await rejectionOf(engine.destroy("../state"));
    expect(refusal.kind).toBe("failed");
    expect(refusal.message).toContain("is not a stack name");
  });
});

describe("the testbed, brought up by the local engine", () => {
  const run = observed();
  let outputs: StackOutputs;

  beforeAll(async () => {
    outputs = await engine.up({ stack: TESTBED, config: asStackConfig(localTestbedConfig()) }, run);
    show(outputs);
  });

  it("reports progress from 0 to the steps it took, one step at a time", () => {
    const progress = progressOf(run.events);
    expect(progress[0]?.done).toBe(0);
    for (const [previous, next] of progress.slice(0, -1).map((event, i) => [event, progress[i + 1]!] as const)) {
      expect(next.done).toBe(previous.done + 1);
      expect(next.total).toBeGreaterThanOrEqual(previous.total);
    }
    expect(progress.every((event) => event.done <= event.total)).toBe(true);
    const last = progress.at(-1)!;
    expect(last.total).toBeGreaterThan(0);
    expect(last.done).toBe(last.total);
    // Planned exactly before the first step: the total never had to grow.
    expect(progress[0]?.total).toBe(last.done);
  });

  it("returns its outputs with the kubeconfig masked, nested as it is", () => {
    const clusters = outputs.clusters as Record<string, { kubeconfig: unknown; exposure: unknown }>;
    expect(clusters.local?.kubeconfig).toBe(SECRET_MASK);
    expect(clusters.local?.exposure).toBe("nodePort");
  });

  it("lists the stack by its short name", async () => {
    expect(await engine.stacks()).toEqual([TESTBED]);
  });

  it("reports each custom resource it created, once the up has ended, and no provider or component", () => {
    const changes = changesOf(run.events);
    expect(typesOf(changes)).toContain("kubernetes:scheduling.k8s.io/v1:PriorityClass");
    expect(new Set(Object.values(changes))).toEqual(new Set(["create"]));
    expect(Object.keys(changes).filter((key) => key.startsWith("pulumi:") || key.startsWith(`${PROJECT}:`))).toEqual([]);
    expect(reportedAtTheEnd(run.events)).toBe(true);
  });
});

describe("a conference, brought up by the local engine", () => {
  const id = "e2e-one";
  const stack = conferenceName(id);
  const run = observed();
  let outputs: StackOutputs;

  beforeAll(async () => {
    outputs = await engine.up({ stack, config: conference(id, { cpu: "2", memory: "3Gi" }) }, run);
    show(outputs);
  });

  it("runs: the Deployment is Available and the outputs name the conference", async () => {
    expect(await eventually(`the Deployment of ${stack} to be Available`, async () => ((await available(id)) ? true : undefined))).toBe(true);
    expect(outputs.namespace).toBe(stack);
    expect(outputs.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(await engine.outputs(stack)).toEqual(outputs);
  });

  it("knows every step before the first, though a preview could not plan them (its namespace is new), and takes exactly those", () => {
    const progress = progressOf(run.events);
    const last = progress.at(-1)!;
    expect(last.done).toBe(last.total);
    expect(last.total).toBeGreaterThan(0);
    expect(progress[0]).toEqual({ type: "progress", done: 0, total: last.done });
    expect(run.events.filter((event) => event.type === "diagnostic" && event.message.includes("could not plan"))).toEqual([]);
  });

  it("reports the objects it created, Namespace to Deployment", () => {
    const changes = changesOf(run.events);
    expect(typesOf(changes)).toEqual(expect.arrayContaining(["kubernetes:core/v1:Namespace", "kubernetes:apps/v1:Deployment"]));
    expect(new Set(Object.values(changes))).toEqual(new Set(["create"]));
    expect(reportedAtTheEnd(run.events)).toBe(true);
  });

  it("brought up again without a preview: serves its outputs while the up runs, counts every step of the planner's total, and reports every object the same", async () => {
    const again = observed();
    const up = engine.up({ stack, config: conference(id, { cpu: "2", memory: "3Gi" }) }, { ...again, skipPreview: true });
    // The up holds the stack now (a refresh is refused), and outputs are still read.
    expect((await rejectionOf(engine.refresh(stack))).kind).toBe("conflict");
    const during = await engine.outputs(stack);
    expect(await up).toEqual(outputs);
    expect(during).toEqual(outputs);
    const progress = progressOf(again.events);
    const last = progress.at(-1)!;
    expect(progress[0]).toEqual({ type: "progress", done: 0, total: last.done });
    expect(last.done).toBe(last.total);
    const changes = changesOf(again.events);
    expect(Object.keys(changes).sort()).toEqual(Object.keys(changesOf(run.events)).sort());
    expect(new Set(Object.values(changes))).toEqual(new Set(["same"]));
  });

  it("refuses a second operation on the stack while one runs, at once", async () => {
    const refreshing = engine.refresh(stack, observed());
    const refusal = await rejectionOf(engine.up({ stack, config: conference(id, { cpu: "2", memory: "3Gi" }) }));
    expect(refusal.kind).toBe("conflict");
    expect(refusal.transient).toBe(true);
    await refreshing;
  });

  it("reports a stack another process holds as a transient conflict, which cancel clears", async () => {
    // What a process that died in an update leaves: its lock (pkg/backend/diy/lock.go).
    const locks = join(dataDir, "state", ".pulumi", "locks", "organization", PROJECT, stack);
    mkdirSync(locks, { recursive: true });
    writeFileSync(join(locks, "0b2c4a1e-dead-4000-8000-000000000000.json"), JSON.stringify({ pid: 1, username: "ghost", hostname: "elsewhere", timestamp: new Date().toISOString() }));
    const refusal = await rejectionOf(engine.refresh(stack, observed()));
    expect(refusal.kind).toBe("conflict");
    expect(refusal.transient).toBe(true);
    expect(refusal.message).toContain("locked");
    await engine.cancel(stack);
    expect(readdirSync(locks).filter((file) => file.endsWith(".json"))).toEqual([]);
    await engine.refresh(stack, observed());
  });
});

describe("a conference on a cluster the testbed does not have", () => {
  const id = "e2e-nowhere";
  const stack = conferenceName(id);

  it("fails with the program's own words, not the CLI's whole output", async () => {
    const refusal = await rejectionOf(engine.up({ stack, config: conference(id, { cpu: "1", memory: "2Gi" }, "nowhere") }, observed()));
    expect(refusal.kind).toBe("failed");
    expect(refusal.transient).toBe(false);
    expect(refusal.message).toBe(`${qualifiedKey("conference")}.cluster "nowhere" is not a cluster of the testbed stack "${DEFAULT_TESTBED_STACK}"; use one of "local"`);
    await engine.destroy(stack, observed());
    expect(await engine.stacks()).not.toContain(stack);
  });
});

describe("a conference whose up is aborted mid-way", () => {
  const id = "e2e-two";
  const stack = conferenceName(id);

  it("is cancelled, and cancel, refresh and destroy leave no namespace and no stack", async () => {
    const abort = new AbortController();
    const run = observed((event) => {
      if (event.type === "progress" && event.done >= 2) {
        abort.abort();
      }
    });
    const refusal = await rejectionOf(engine.up({ stack, config: conference(id, { cpu: "1", memory: "2Gi" }) }, { ...run, signal: AbortSignal.any([abort.signal, run.signal]) }));
    expect(refusal.kind).toBe("cancelled");
    await engine.cancel(stack);
    await engine.refresh(stack, observed());
    await engine.destroy(stack, observed());
    await namespaceGone(id);
    expect(await engine.stacks()).not.toContain(stack);
  });
});

describe("a conference whose CLI is killed while it creates the namespace (kill -9)", () => {
  const id = "e2e-three";
  const stack = conferenceName(id);
  /** Holds the namespace's create open: it waits for a label nothing sets, until its await times out. */
  const namespaceNeverReady: Adjust = (args) =>
    args.type === "kubernetes:core/v1:Namespace"
      ? {
          props: { ...args.props, metadata: { ...(args.props.metadata as object), annotations: { "pulumi.com/waitFor": "jsonpath={.metadata.labels.never}=true" } } },
          opts: args.opts,
        }
      : undefined;

  /** The stack's state as the file backend holds it (pkg/backend/diy: .pulumi/stacks/<project>/<stack>.json). */
  const checkpoint = () =>
    (JSON.parse(readFileSync(join(dataDir, "state", ".pulumi", "stacks", PROJECT, `${stack}.json`), "utf8")) as {
      checkpoint: { latest?: { resources?: { type: string }[]; pending_operations?: unknown[] } };
    }).checkpoint.latest;

  it.each([
    { repair: "cancel, refresh and destroy", refresh: true },
    { repair: "cancel and destroy", refresh: false },
  ])("fails, and $repair remove the namespace only a pending create knew of", async ({ refresh }) => {
    const stalling = await LocalEngine.create({ ...engineOptions, transforms: [shortAwaits, namespaceNeverReady] });
    try {
      const up = rejectionOf(stalling.up({ stack, config: conference(id, { cpu: "1", memory: "2Gi" }) }, observed()));
      await eventually(`namespace ${stack} to exist`, async () => (await api().core.readNamespace({ name: stack })).metadata?.name);
      // As a lost machine would: the CLI and its plugins at once, none told.
      const processes = cliProcessesOf(stack);
      expect(processes.length).toBeGreaterThan(1);
      for (const pid of processes) {
        process.kill(pid, "SIGKILL");
      }
      const refusal = await up;
      expect(refusal.kind).toBe("failed");
      expect(refusal.message).toContain("SIGKILL");
    } finally {
      await stalling.close();
    }
    expect(checkpoint()?.pending_operations).toEqual([expect.objectContaining({ type: "creating" })]);
    await engine.cancel(stack);
    if (refresh) {
      await engine.refresh(stack, observed());
      expect(checkpoint()?.resources?.map((resource) => resource.type)).toContain("kubernetes:core/v1:Namespace");
      expect(checkpoint()?.pending_operations ?? []).toEqual([]);
    }
    await engine.destroy(stack, observed());
    await namespaceGone(id);
    expect(await engine.stacks()).not.toContain(stack);
  });
});

describe("destroying the first conference", () => {
  const id = "e2e-one";
  const stack = conferenceName(id);

  it("deletes its namespace, its stack and its workspace, and says so; a second destroy finds it gone", async () => {
    const run = observed();
    await engine.destroy(stack, run);
    const last = progressOf(run.events).at(-1)!;
    expect(last.done).toBe(last.total);
    const changes = changesOf(run.events);
    expect(typesOf(changes)).toContain("kubernetes:core/v1:Namespace");
    expect(new Set(Object.values(changes))).toEqual(new Set(["delete"]));
    expect(reportedAtTheEnd(run.events)).toBe(true);
    await namespaceGone(id);
    expect(await engine.stacks()).toEqual([TESTBED]);
    expect(existsSync(join(dataDir, "workspaces", stack))).toBe(false);
    expect(await engine.outputs(stack)).toBeUndefined();
    await engine.destroy(stack, observed());
    expect(existsSync(join(dataDir, "workspaces", stack))).toBe(false);
  });
});

describe("what the engine reported", () => {
  it("never showed the passphrase or the kubeconfig", () => {
    const passphrase = readFileSync(join(dataDir, "passphrase"), "utf8");
    const { kubeconfig } = e2eWorld();
    const keyData = /client-key-data: (\S+)/.exec(kubeconfig)?.[1];
    expect(keyData).toBeDefined();
    expect(shown.length).toBeGreaterThan(0);
    for (const text of shown) {
      for (const secret of [passphrase, kubeconfig, keyData!]) {
        expect(text).not.toContain(secret);
      }
    }
  });
});
