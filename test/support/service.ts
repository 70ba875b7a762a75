import { createParser } from "eventsource-parser";
import { expect } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { z } from "zod";
import type { Engine, OperationKind, OperationOptions, StackConfigMap, StackSpec } from "../../automation/engine/engine.ts";
import { OfflineEngine } from "../../automation/engine/offline-engine.ts";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { POPS_VARIABLE, POP_KEYS_FILE_VARIABLE } from "../../automation/service/loops/pop-config.ts";
import type { LoopClock } from "../../automation/service/loops/pop-loop.ts";
import { MAX_LIST_LIMIT, type Problem, clusterList, conferenceList, conferenceView, createdView, problem } from "../../automation/service/schemas.ts";
import { type RunningService, type ServiceOverrides, startService } from "../../automation/service/server.ts";
import type { ConferenceState } from "../../domain/conference-lifecycle.ts";
import { DEFAULT_SITES, MAX_MEMORY_GIB_PER_NODE, MAX_NODES, MAX_VCPU_PER_NODE, type clusterCapacity, parseSites } from "../../domain/contracts/testbed.ts";
import { Store } from "../../automation/store/store.ts";
import { poll } from "./poll.ts";

/**
 * The one way service tests start the automation service: in this process, on a real socket on
 * 127.0.0.1 (a free port), with a fresh data directory and three tokens — an admin and two
 * organizers — configured by digest, as an operator would. Beside it, the one way they read a
 * conference's event stream, wait for the service, and watch (or break) its engine.
 */

export type ConferenceView = z.output<typeof conferenceView>;
export type CreatedView = z.output<typeof createdView>;
export type ClusterView = z.output<typeof clusterList>["clusters"][string];

/** One event of a conference's stream as a client receives it. */
export interface StreamedEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

export interface EventStream {
  status: number;
  headers: Headers;
  /** The response's bytes as text: the stream, or a problem's body. */
  raw: string;
  /** The events, in the order received (none when the stream was refused). */
  events: StreamedEvent[];
}

export interface StreamOptions {
  /** Defaults to alice's. */
  token?: string;
  /** Sent as Last-Event-ID: the stream replays only what came after it. */
  lastEventId?: string;
  /** How long the stream may run before it has ended on its own. Defaults to WAIT_TIMEOUT_MS. */
  timeoutMs?: number;
}

/** Every wait of these helpers is bounded; a deployment on the offline engine takes a second or two. */
export const WAIT_TIMEOUT_MS = 20_000;
export interface TestService extends RunningService {
  dataDir: string;
  tokens: { admin: string; alice: string; bob: string };
  /** Everything the service printed. */
  printed: string[];
  /** Every log line (pino's JSON) at SWITCH_LOG_LEVEL (silent unless given). */
  logs: string[];
  /** The offline engine the service runs on, unwrapped: its stacks' state, locks and stack list (offline only). */
  offline: OfflineEngine;
  /** fetch against the service with a token (default: alice's; null sends no Authorization header). */
  call: (path: string, init?: RequestInit & { token?: string | null }) => Promise<Response>;
  /** POSTs a conference (as alice unless `token`, with an Idempotency-Key if `key`); expects 202. */
  create: (body: unknown, options?: { token?: string; key?: string }) => Promise<CreatedView>;
  /** DELETEs a conference (as alice unless `token`); expects 202 and returns what it answered. */
  stop: (id: string, token?: string) => Promise<ConferenceView>;
  /** Every conference, as the admin lists them. */
  conferences: () => Promise<ConferenceView[]>;
  /** GET /v1/clusters's clusters. */
  clusters: () => Promise<Record<string, ClusterView>>;
  /** Reads a conference's event stream until the service ends it (after `stopped` or `failed`). */
  stream: (id: string, options?: StreamOptions) => Promise<EventStream>;
  /** Polls the conference (as the admin) until it is in one of `states`; returns it. */
  waitForConference: (id: string, states: readonly ConferenceState[], timeoutMs?: number) => Promise<ConferenceView>;
  /** Polls /metrics until no operation runs or waits. */
  waitForIdle: (timeoutMs?: number) => Promise<void>;
  /** Runs `read` on the service's store file (while it runs too: WAL readers never block it). */
  readStore: <T>(read: (store: Store) => T) => T;
}

/** The PoPs a test service runs the loop for. */
export interface TestPops {
  /** cdn-pop stack files, e.g. stacks/Pulumi.pop-vienna.yaml: SWITCH_POPS. */
  stackFiles: readonly string[];
  /** Each host's report key, `{ "<pop>": { "<host>": "<key>" } }`: written to a 0600 file that SWITCH_POP_KEYS_FILE names. */
  keys: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/**
 * A PoP loop's clock that never ticks on its own: the service's time, and sleeps that end only
 * when the loop stops. The loop decides only when a test asks (a rebalance).
 */
export const STILL_CLOCK: LoopClock = {
  now: () => Date.now(),
  sleepUntil: (_at, signal) => new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true }))),
};

export interface TestServiceOptions extends ServiceOverrides {
  /** Extra or replacing environment variables, or (undefined) removed ones; SWITCH_ENGINE defaults to offline (or "local", for the e2e tests). */
  env?: Record<string, string | undefined>;
  /** PoPs to serve (SWITCH_POPS and SWITCH_POP_KEYS_FILE); none unless given. */
  pops?: TestPops;
  /** Reuse a data directory (a restart). */
  dataDir?: string;
  tokens?: TestService["tokens"];
}

export async function startTestService(options: TestServiceOptions = {}): Promise<TestService> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "switch-service-"));
  const tokens = options.tokens ?? { admin: newToken(), alice: newToken(), bob: newToken() };
  const printed: string[] = [];
  const logs: string[] = [];
  let offline: OfflineEngine | undefined;
  const env = {
    SWITCH_ENGINE: "offline",
    SWITCH_DATA_DIR: dataDir,
    SWITCH_API_TOKENS: [tokenEntry("root", "admin", tokens.admin), tokenEntry("alice", "organizer", tokens.alice), tokenEntry("bob", "organizer", tokens.bob)].join(","),
    HOST: "127.0.0.1",
    PORT: "0",
    SWITCH_LOG_LEVEL: "silent",
    ...(options.pops === undefined ? {} : { [POPS_VARIABLE]: options.pops.stackFiles.join(","), [POP_KEYS_FILE_VARIABLE]: popKeysFile(options.pops.keys) }),
    ...options.env,
  };
  const service = await startService(Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined)), {
    ...options,
    wrapEngine: (engine) => {
      if (engine.kind !== env.SWITCH_ENGINE) {
        throw new Error(`startTestService asked for the ${env.SWITCH_ENGINE} engine; the service chose ${engine.kind}`);
      }
      if (engine instanceof OfflineEngine) {
        offline = engine;
      }
      return options.wrapEngine?.(engine) ?? engine;
    },
    print: (text) => printed.push(text),
    logStream: { write: (line) => logs.push(line) },
  });

  const call = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const { token = tokens.alice, headers, ...rest } = init;
    return fetch(`${service.url}${path}`, {
      ...rest,
      headers: {
        ...(token === null ? {} : { authorization: `Bearer ${token}` }),
        ...(rest.body === undefined ? {} : { "content-type": "application/json" }),
        ...(headers as Record<string, string> | undefined),
      },
    });
  };

  const accepted = async (response: Response): Promise<unknown> => {
    const text = await response.text();
    expect(response.status, text).toBe(202);
    return JSON.parse(text);
  };
  const create = async (body: unknown, createOptions: { token?: string; key?: string } = {}) =>
    createdView.parse(
      await accepted(
        await call("/v1/conferences", {
          method: "POST",
          body: JSON.stringify(body),
          token: createOptions.token ?? tokens.alice,
          headers: createOptions.key === undefined ? {} : { "idempotency-key": createOptions.key },
        }),
      ),
    );
  const stop = async (id: string, token = tokens.alice) => conferenceView.parse(await accepted(await call(`/v1/conferences/${id}`, { method: "DELETE", token })));
  const conferences = async () => conferenceList.parse(await (await call(`/v1/conferences?limit=${MAX_LIST_LIMIT}`, { token: tokens.admin })).json()).conferences;
  const clusters = async () => clusterList.parse(await (await call("/v1/clusters", { token: tokens.admin })).json()).clusters;

  const stream = async (id: string, streamOptions: StreamOptions = {}): Promise<EventStream> => {
    const timeoutMs = streamOptions.timeoutMs ?? WAIT_TIMEOUT_MS;
    const events: StreamedEvent[] = [];
    const parser = createParser({ onEvent: (message) => events.push({ id: message.id ?? "", event: message.event ?? "message", data: JSON.parse(message.data) as Record<string, unknown> }) });
    const response = await call(`/v1/conferences/${id}/events`, {
      token: streamOptions.token ?? tokens.alice,
      headers: { accept: "text/event-stream", ...(streamOptions.lastEventId === undefined ? {} : { "last-event-id": streamOptions.lastEventId }) },
      signal: AbortSignal.timeout(timeoutMs),
    });
    let raw = "";
    const decoder = new TextDecoder();
    try {
      // 204: the conference had ended and nothing came after Last-Event-ID.
      for await (const chunk of (response.body ?? []) as ReadableStream<Uint8Array>) {
        const text = decoder.decode(chunk, { stream: true });
        raw += text;
        if (response.ok) {
          parser.feed(text);
        }
      }
    } catch (error) {
      if ((error as Error).name === "TimeoutError") {
        throw new Error(`the event stream of conference ${id} did not end within ${timeoutMs} ms; it sent ${events.map((event) => event.event).join(", ") || "nothing"}`);
      }
      throw error;
    }
    return { status: response.status, headers: response.headers, raw, events };
  };

  const waitForConference = (id: string, states: readonly ConferenceState[], timeoutMs = WAIT_TIMEOUT_MS) =>
    poll(
      `conference ${id} did not become ${states.join(" or ")}`,
      async () => conferenceView.parse(await (await call(`/v1/conferences/${id}`, { token: tokens.admin })).json()),
      (conference) => states.includes(conference.state),
      timeoutMs,
    );

  const gauge = (metrics: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
  const waitForIdle = async (timeoutMs = WAIT_TIMEOUT_MS) => {
    await poll(
      "operations were still running or queued",
      async () => {
        const metrics = await (await call("/metrics", { token: tokens.admin })).text();
        return { queued: gauge(metrics, "switch_queue_depth"), running: gauge(metrics, "switch_operations_running") };
      },
      ({ queued, running }) => queued === 0 && running === 0,
      timeoutMs,
    );
  };

  const readStore = <T>(read: (store: Store) => T): T => {
    const store = new Store({ path: join(dataDir, "switch.db") });
    try {
      return read(store);
    } finally {
      store.close();
    }
  };

  const running = { ...service, dataDir, tokens, printed, logs, call, create, stop, conferences, clusters, stream, waitForConference, waitForIdle, readStore };
  return Object.defineProperty(running, "offline", {
    get: () => {
      if (offline === undefined) {
        throw new Error("this service runs the local engine: it has no offline state to read");
      }
      return offline;
    },
  }) as TestService;
}

/** Writes a report keys' file (what SWITCH_POP_KEYS_FILE names), readable by its owner alone, and returns its path. */
export function popKeysFile(keys: TestPops["keys"]): string {
  const file = join(mkdtempSync(join(tmpdir(), "switch-pop-keys-")), "pop-keys.json");
  writeFileSync(file, JSON.stringify(keys), { mode: 0o600 });
  return file;
}

/** Writes a clusters file (what SWITCH_TESTBED may name instead of a stack) and returns its path. */
export function clustersFile(clusters: Record<string, unknown>): string {
  const file = join(mkdtempSync(join(tmpdir(), "switch-clusters-")), "clusters.json");
  writeFileSync(file, JSON.stringify(clusters));
  return file;
}

/** How large each node of a cluster is, and how many it has. */
export type Capacity = z.output<typeof clusterCapacity>;

/** Each cluster as large as one may be: a testbed that no test's conferences fill, so none of its 409s is for want of room. */
export const ROOMY: Capacity = { nodes: MAX_NODES, vcpuPerNode: MAX_VCPU_PER_NODE, memoryGiBPerNode: MAX_MEMORY_GIB_PER_NODE };

/** A clusters file of the default testbed's sites (whose stack the conferences' stacks read), each of `capacity`. */
export function testbedOf(capacity: Capacity): string {
  return clustersFile(
    Object.fromEntries(parseSites(DEFAULT_SITES, "sites").map((site) => [site.name, { provider: site.provider, location: site.location, exposure: site.exposure, capacity }])),
  );
}

/**
 * The RFC 9457 problem a refused (or failed) request answers with: its media type, `about:blank`
 * and the status's own title, checked; the one way tests read a refusal.
 */
export async function problemOf(response: Response, status: number): Promise<Problem> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const body = problem.strict().parse(JSON.parse(text));
  expect(body).toMatchObject({ type: "about:blank", status });
  return body;
}

function signalOf(options: OperationOptions | undefined): { signal?: AbortSignal } {
  return options?.signal === undefined ? {} : { signal: options.signal };
}

/** One operation the service asked of its engine, with its place in the order of every start and end. */
export interface EngineCall {
  kind: OperationKind;
  stack: string;
  /** An up's config. */
  config?: StackConfigMap;
  /** What cancels it. */
  signal?: AbortSignal;
  /** Logical times (a counter over every start and end of every call), never the clock's. */
  started: number;
  ended?: number;
  outcome?: "succeeded" | "failed";
  error?: string;
}

/**
 * Replaces one engine call: `proceed` runs the real one. `fail(error)` refuses without running it;
 * `failAfter(error)` runs it (the stack's resources are created) and then fails.
 */
export type Fault = (call: EngineCall, proceed: () => Promise<unknown>) => Promise<unknown>;
export const fail =
  (error: Error): Fault =>
  () =>
    Promise.reject(error);
export const failAfter =
  (error: Error): Fault =>
  async (_call, proceed) => {
    await proceed();
    throw error;
  };

/**
 * Records every operation the service runs through its engine (`wrapEngine: recorder.wrap`) and
 * injects faults: each fault queued for a kind replaces the next call of that kind.
 */
export class EngineRecorder {
  readonly calls: EngineCall[] = [];
  readonly faults: Record<"up" | "destroy", Fault[]> = { up: [], destroy: [] };
  private clock = 0;

  readonly wrap = (engine: Engine): Engine => {
    const record = <T>(call: Omit<EngineCall, "started">, real: () => Promise<T>): Promise<T> => {
      const entry: EngineCall = { ...call, started: ++this.clock };
      this.calls.push(entry);
      const fault = call.kind === "refresh" ? undefined : this.faults[call.kind].shift();
      const running = (fault === undefined ? real() : (fault(entry, real) as Promise<T>)).then(
        (value) => {
          Object.assign(entry, { ended: ++this.clock, outcome: "succeeded" });
          return value;
        },
        (error: unknown) => {
          Object.assign(entry, { ended: ++this.clock, outcome: "failed", error: error instanceof Error ? error.message : String(error) });
          throw error;
        },
      );
      return running;
    };
    return {
      kind: engine.kind,
      up: (spec: StackSpec, options?: OperationOptions) => record({ kind: "up", stack: spec.stack, config: spec.config, ...signalOf(options) }, () => engine.up(spec, options)),
      destroy: (stack: string, options?: OperationOptions) => record({ kind: "destroy", stack, ...signalOf(options) }, () => engine.destroy(stack, options)),
      refresh: (stack: string, options?: OperationOptions) => record({ kind: "refresh", stack, ...signalOf(options) }, () => engine.refresh(stack, options)),
      cancel: (stack) => engine.cancel(stack),
      outputs: (stack) => engine.outputs(stack),
      stacks: () => engine.stacks(),
      close: () => engine.close(),
    };
  };

  /** The calls on one stack (`conf-<id>`), in the order they started. */
  of(stack: string, kind?: OperationKind): EngineCall[] {
    return this.calls.filter((call) => call.stack === stack && (kind === undefined || call.kind === kind));
  }

  /** Pairs of calls on one stack that ran at the same time: there must be none. */
  overlaps(): [EngineCall, EngineCall][] {
    const found: [EngineCall, EngineCall][] = [];
    for (const [index, call] of this.calls.entries()) {
      for (const later of this.calls.slice(index + 1)) {
        if (later.stack === call.stack && later.started < (call.ended ?? Infinity)) {
          found.push([call, later]);
        }
      }
    }
    return found;
  }

  /** The most calls that ran at once, over all stacks. */
  maxConcurrent(): number {
    const steps = this.calls.flatMap((call) => [
      { at: call.started, delta: 1 },
      { at: call.ended ?? Infinity, delta: -1 },
    ]);
    let running = 0;
    let most = 0;
    for (const step of steps.sort((a, b) => a.at - b.at)) {
      running += step.delta;
      most = Math.max(most, running);
    }
    return most;
  }
}
