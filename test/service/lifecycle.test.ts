import type * as childProcess from "node:child_process";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Engine, EngineEvent } from "../../automation/engine/engine.ts";
import type { RecordedResource, WorkerMessage } from "../../automation/engine/offline-worker.ts";
import { conferenceList, conferenceView, createdView } from "../../automation/service/schemas.ts";
import { decisionRecord } from "../../domain/records.ts";
import { DEFAULT_TESTBED_STACK } from "../../domain/contracts/conference.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { EngineRecorder, type TestService, clustersFile, problemOf, startTestService } from "../support/service.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";

/**
 * A conference's whole life through the HTTP API on the offline engine: what the stream says, in
 * order, what its stack holds, what is left after it stops; idempotent creates and stops; lists,
 * what-if placements and placement by address; and a testbed with no room left.
 */

const LJUBLJANA = [
  { lat: 46.05, lon: 14.51 },
  { lat: 46.06, lon: 14.5 },
];

/**
 * What the offline engine's workers said and what the engine reported of its `up`s, in the one
 * order they happened: each worker message as its process (a child forked by the engine) emits it,
 * and each progress event as the engine hands it to the service. An event the engine emits for a
 * worker's message comes right after that message.
 */
type Moment = { worker: number; message: WorkerMessage } | { stack: string; progress: Extract<EngineEvent, { type: "progress" }> };
const timeline = vi.hoisted(() => [] as Moment[]);
vi.mock("node:child_process", async (importOriginal) => {
  const actual = await importOriginal<typeof childProcess>();
  const fork = (...args: unknown[]): childProcess.ChildProcess => {
    const child = (actual.fork as (...forkArgs: unknown[]) => childProcess.ChildProcess)(...args);
    // Listens before the engine does: a message is on the timeline before what the engine makes of it.
    child.on("message", (message: WorkerMessage) => timeline.push({ worker: child.pid!, message }));
    return child;
  };
  return { ...actual, fork };
});

/** Puts the progress of every `up` on the timeline as the engine reports it, and passes it on. */
function watchProgress(engine: Engine): Engine {
  return {
    kind: engine.kind,
    up: (spec, options = {}) =>
      engine.up(spec, {
        ...options,
        onEvent: (event) => {
          if (event.type === "progress") {
            timeline.push({ stack: spec.stack, progress: event });
          }
          options.onEvent?.(event);
        },
      }),
    destroy: (stack, options) => engine.destroy(stack, options),
    refresh: (stack, options) => engine.refresh(stack, options),
    cancel: (stack) => engine.cancel(stack),
    outputs: (stack) => engine.outputs(stack),
    stacks: () => engine.stacks(),
    close: () => engine.close(),
  };
}

/**
 * The progress the `up`s of `stack` reported, and where it was not what the program did as it ran:
 * `done: 0` must come right after the worker's `planned` (its preview's count), and each further
 * step right after the worker's message that it registered that many resources — so before the
 * worker answered that the program had finished.
 */
function progressOf(stack: string): { reported: { done: number; total: number }[]; late: string[] } {
  const reported: { done: number; total: number }[] = [];
  const late: string[] = [];
  timeline.forEach((moment, index) => {
    if (!("stack" in moment) || moment.stack !== stack) {
      return;
    }
    const { done, total } = moment.progress;
    reported.push({ done, total });
    const before = timeline[index - 1];
    const cause = before !== undefined && "worker" in before ? before.message : undefined;
    const expected = done === 0 ? cause?.kind === "planned" && cause.total === total : cause?.kind === "registered" && cause.done === done;
    if (!expected) {
      late.push(`progress ${done}/${total} of ${stack} came ${cause === undefined ? "with no worker message of its own" : `after the worker's ${JSON.stringify(cause).slice(0, 120)}`}`);
    }
  });
  return { reported, late };
}

let service: TestService;
const recorder = new EngineRecorder();

beforeAll(async () => {
  service = await startTestService({ wrapEngine: (engine) => recorder.wrap(watchProgress(engine)) });
}, 60_000);
afterAll(() => service?.close());

function resourceOf(resources: RecordedResource[], type: string): RecordedResource & { inputs: Record<string, unknown> } {
  const found = resources.filter((resource) => resource.type === type);
  expect(found, type).toHaveLength(1);
  return found[0] as RecordedResource & { inputs: Record<string, unknown> };
}

interface Container {
  name: string;
  resources: { limits: { cpu: string; memory: string }; requests: { cpu: string; memory: string } };
}

describe("a conference's lifecycle", () => {
  it("streams placed, queued, deploying, ready, stopping, queued, stopped; its stack holds the decision while ready and nothing after", async () => {
    const response = await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: LJUBLJANA, lastN: 5, simulcast: false }) });
    expect(response.status).toBe(202);
    const created = createdView.parse(await response.json());
    const { id } = created;
    const stack = `conf-${id}`;
    expect(created).toMatchObject({ state: "placed", links: { self: `/v1/conferences/${id}`, events: `/v1/conferences/${id}/events` } });
    expect(response.headers.get("location")).toBe(created.links.self);
    expect(created.decision.cluster).toBe("arnes-ljubljana");

    const streaming = service.stream(id);
    const ready = await service.waitForConference(id, ["ready", "failed"]);
    expect(ready).toMatchObject({ id, owner: "alice", state: "ready", cluster: "arnes-ljubljana", decision: created.decision });
    expect(ready.url).toMatch(/^https:\/\/\S+$/);
    expect(ready.error).toBeUndefined();

    // What `up` recorded, while the conference runs.
    const state = service.offline.state(stack);
    expect(state?.stack).toBe(stack);
    const resources = state!.resources;
    expect(resourceOf(resources, "kubernetes:core/v1:Namespace").inputs).toMatchObject({ metadata: { name: stack } });
    expect(resourceOf(resources, "pulumi:pulumi:StackReference").inputs).toEqual({ name: DEFAULT_TESTBED_STACK });
    expect(resourceOf(resources, "pulumi:providers:kubernetes").inputs).toMatchObject({ clusterIdentifier: created.decision.cluster });
    const deployment = resourceOf(resources, "kubernetes:apps/v1:Deployment").inputs as { metadata: { namespace: string }; spec: { template: { spec: { containers: Container[] } } } };
    expect(deployment.metadata.namespace).toBe(stack);
    const containers = deployment.spec.template.spec.containers;
    expect(containers.map((container) => container.name)).toEqual(["web", "prosody", "jicofo", "jvb"]);
    const sum = (pick: (container: Container) => number) => containers.reduce((total, container) => total + pick(container), 0);
    expect(sum((container) => parseCpuMillicores(container.resources.limits.cpu)!)).toBe(parseCpuMillicores(created.decision.resources.cpu));
    expect(sum((container) => parseMemoryBytes(container.resources.limits.memory)!)).toBe(parseMemoryBytes(created.decision.resources.memory));
    for (const container of containers) {
      expect(container.resources.requests, container.name).toEqual(container.resources.limits);
    }
    const configMap = resourceOf(resources, "kubernetes:core/v1:ConfigMap").inputs as { data: Record<string, string> };
    expect(configMap.data["custom-config.js"]!.split("\n")).toEqual(expect.arrayContaining(["config.channelLastN = 5;", "config.startLastN = 5;", "config.disableSimulcast = true;"]));
    expect(configMap.data["custom-jvb.conf"]!.split("\n")).toEqual(expect.arrayContaining(["videobridge.cc.jvb-last-n = 5", "videobridge.cc.initial-last-n = 5"]));
    expect(state!.outputs).toMatchObject({ namespace: stack, cluster: created.decision.cluster, url: ready.url });
    expect(await service.offline.stacks()).toContain(stack);

    expect((await service.stop(id)).state).toBe("stopping");
    const { status, headers, events } = await streaming;
    expect(status).toBe(200);
    expect(headers.get("content-type")).toMatch(/^text\/event-stream/);

    const types = events.map((event) => event.event);
    expect(types.filter((type, index) => type !== "deploying" || types[index - 1] !== "deploying")).toEqual(["placed", "queued", "deploying", "ready", "stopping", "queued", "stopped"]);
    const ids = events.map((event) => Number(event.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(ids.length);
    expect(events[0]!.data).toMatchObject({ cluster: created.decision.cluster, resources: created.decision.resources });
    expect(events.filter((event) => event.event === "queued").map((event) => event.data.kind)).toEqual(["up", "destroy"]);
    // Progress as the program ran: the preview's total first, then one step per registration, each
    // reported while the worker was still running the program (progressOf), and what the stream
    // sent after the deployment's start ({ done: 0, total: 0 }) is exactly that.
    const progress = events.filter((event) => event.event === "deploying").map((event) => ({ done: Number(event.data.done), total: Number(event.data.total) }));
    const total = progress.at(-1)!.total;
    expect(total).toBeGreaterThan(1);
    expect(total).toBe(resources.length);
    const engine = progressOf(stack);
    expect(engine.late).toEqual([]);
    expect(engine.reported).toEqual(Array.from({ length: total + 1 }, (_, done) => ({ done, total })));
    expect(progress).toEqual([{ done: 0, total: 0 }, ...engine.reported]);
    expect(events.find((event) => event.event === "ready")!.data.url).toBe(ready.url);
    expect(events.every((event) => typeof event.data.at === "string")).toBe(true);

    const stopped = conferenceView.parse(await (await service.call(`/v1/conferences/${id}`)).json());
    expect(stopped).toMatchObject({ state: "stopped", url: ready.url });
    expect(service.offline.state(stack)).toBeUndefined();
    expect(service.offline.locks()).not.toContain(stack);
    expect(await service.offline.stacks()).not.toContain(stack);

    // Reconnecting with the second event's id replays exactly the events after it, then ends.
    const replay = await service.stream(id, { lastEventId: events[1]!.id });
    expect(replay.events).toEqual(events.slice(2));
  });

  it("returns the same conference for a retry with the same Idempotency-Key, and refuses the key for another request", async () => {
    const before = (await service.conferences()).length;
    const key = "retry-1";
    const body = { participants: LJUBLJANA, lastN: 3, objective: "worstPair" };
    const first = await service.create(body, { key });
    const again = await service.create(body, { key });
    expect(again.id).toBe(first.id);
    expect(again.decision).toEqual(first.decision);
    // The same request with its fields in another order is the same request.
    const reordered = await service.create({ objective: "worstPair", lastN: 3, participants: LJUBLJANA }, { key });
    expect(reordered.id).toBe(first.id);
    expect((await service.conferences()).filter((conference) => conference.id === first.id)).toHaveLength(1);
    expect(await service.conferences()).toHaveLength(before + 1);

    const reused = await problemOf(
      await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ ...body, lastN: 4 }), headers: { "idempotency-key": key } }),
      409,
    );
    expect(reused.title).toBe("Conflict");
    expect(reused.detail).toBe(`the Idempotency-Key was used for another request (conference ${first.id}); use a new key for a new conference`);
    expect(await service.conferences()).toHaveLength(before + 1);

    // Keys are the organizer's own: bob's same key is bob's own conference.
    const bobs = await service.create(body, { key, token: service.tokens.bob });
    expect(bobs.id).not.toBe(first.id);
    expect(await service.conferences()).toHaveLength(before + 2);

    await service.waitForConference(first.id, ["ready"]);
    await service.waitForConference(bobs.id, ["ready"]);
    await service.stop(first.id);
    await service.stop(bobs.id, service.tokens.bob);
    await service.waitForConference(first.id, ["stopped"]);
    await service.waitForConference(bobs.id, ["stopped"]);
  });

  it("accepts a second stop (and a third, once stopped) and destroys the stack once", async () => {
    const { id } = await service.create({ participants: LJUBLJANA });
    await service.waitForConference(id, ["ready"]);
    // Whichever the service took first started the stop; the other found it stopping (or, later, stopped).
    const states = (await Promise.all([service.stop(id), service.stop(id)])).map((answer) => answer.state);
    expect(states).toContain("stopping");
    expect(states.every((state) => state === "stopping" || state === "stopped")).toBe(true);
    await service.waitForConference(id, ["stopped"]);
    expect((await service.stop(id)).state).toBe("stopped");
    await service.waitForIdle();

    expect(recorder.of(`conf-${id}`).map((call) => [call.kind, call.outcome])).toEqual([
      ["up", "succeeded"],
      ["destroy", "succeeded"],
    ]);
    const operations = service.readStore((store) => store.operations(conferenceName(id)));
    expect(operations.map((operation) => [operation.kind, operation.state])).toEqual([
      ["up", "succeeded"],
      ["destroy", "succeeded"],
    ]);
    const events = service.readStore((store) => store.eventsAfter(conferenceName(id), 0)).map((event) => event.type);
    expect(events.filter((type) => type === "stopping")).toHaveLength(1);
    expect(events.filter((type) => type === "stopped")).toHaveLength(1);
  });

  it("streams to an Accept header that admits text/event-stream, and refuses one that does not with a 406 problem", async () => {
    const { id } = await service.create({ participants: LJUBLJANA });
    await service.waitForConference(id, ["ready"]);
    await service.stop(id);
    await service.waitForConference(id, ["stopped"]);
    for (const accept of ["text/event-stream", "*/*", "text/*", "text/html, text/event-stream;q=0.5", "application/json;q=0.9, */*;q=0.1"]) {
      const response = await service.call(`/v1/conferences/${id}/events`, { headers: { accept } });
      expect(response.status, accept).toBe(200);
      expect(response.headers.get("content-type"), accept).toMatch(/^text\/event-stream/);
      expect(await response.text(), accept).toContain("event: stopped");
    }
    for (const accept of ["application/json", "text/html", "text/event-stream;q=0", "text/event-stream;q=0, */*", "*/*;q=0"]) {
      const refused = await problemOf(await service.call(`/v1/conferences/${id}/events`, { headers: { accept } }), 406);
      expect(refused.detail, accept).toBe("this route only streams text/event-stream; send Accept: text/event-stream, or no Accept header");
    }
  });

  it("lists the organizer's conferences in a state, newest first, and refuses a state that is none", async () => {
    const running = (await service.create({ participants: LJUBLJANA })).id;
    const ended = (await service.create({ participants: LJUBLJANA })).id;
    await service.waitForConference(running, ["ready"]);
    await service.waitForConference(ended, ["ready"]);
    await service.stop(ended);
    await service.waitForConference(ended, ["stopped"]);

    const listed = async (query: string) => conferenceList.parse(await (await service.call(`/v1/conferences${query}`)).json()).conferences;
    const ready = await listed("?state=ready");
    expect(ready.map((conference) => conference.id)).toContain(running);
    expect(ready.map((conference) => conference.id)).not.toContain(ended);
    expect(ready.every((conference) => conference.state === "ready")).toBe(true);
    const stopped = await listed("?state=stopped");
    expect(stopped.map((conference) => conference.id)).toContain(ended);
    expect(stopped.map((conference) => conference.id)).not.toContain(running);
    expect(stopped.every((conference) => conference.state === "stopped")).toBe(true);
    const all = await listed("");
    expect(all.every((conference) => conference.owner === "alice")).toBe(true);
    const created = all.map((conference) => conference.createdAt);
    expect(created).toEqual([...created].sort().reverse());

    const refused = await problemOf(await service.call("/v1/conferences?state=running"), 400);
    expect(refused.errors).toEqual([{ field: "querystring.state", message: "is not a state; use one of placed, deploying, ready, failed, stopping, stopped" }]);

    await service.stop(running);
    await service.waitForConference(running, ["stopped"]);
  });

  it("answers a what-if placement and changes nothing", async () => {
    const before = { clusters: await service.clusters(), conferences: await service.conferences(), stacks: await service.offline.stacks(), ups: recorder.calls.length };
    const response = await service.call("/v1/placements", { method: "POST", body: JSON.stringify({ participants: [{ lat: 35.68, lon: 139.65 }], objective: "p95" }) });
    expect(response.status).toBe(200);
    const decision = decisionRecord.strict().parse(await response.json());
    expect(decision.cluster).toBe("gcp-asia-northeast1");
    expect(decision.predicted.objective).toBe("p95");
    expect(decision.predicted.percentileRttMs).toBeTypeOf("number");
    expect(decision.ranking).toHaveLength(Object.keys(before.clusters).length);
    expect(decision.ranking[0]!.cluster).toBe(decision.cluster);

    expect(await service.clusters()).toEqual(before.clusters);
    expect(await service.conferences()).toEqual(before.conferences);
    expect(await service.offline.stacks()).toEqual(before.stacks);
    expect(recorder.calls).toHaveLength(before.ups);
  });

  it("places participants given by address and reports the ones it cannot locate", async () => {
    const body = { participants: [{ ip: "193.2.1.66" }, { ip: "192.168.1.20" }] };
    const response = await service.call("/v1/placements", { method: "POST", body: JSON.stringify(body) });
    expect(response.status).toBe(200);
    const decision = decisionRecord.parse(await response.json());
    expect(decision.cluster).toBe("arnes-ljubljana");
    expect(decision.unplaced).toEqual([{ index: 1, reason: "is a private address, which says nothing about where the participant is" }]);

    const created = await service.create(body);
    expect(created.decision.cluster).toBe("arnes-ljubljana");
    expect(created.decision.unplaced).toEqual(decision.unplaced);
    await service.waitForConference(created.id, ["ready"]);
    await service.stop(created.id);
    await service.waitForConference(created.id, ["stopped"]);

    const refused = await problemOf(await service.call("/v1/placements", { method: "POST", body: JSON.stringify({ participants: [{ ip: "10.0.0.1" }] }) }), 400);
    expect(refused.errors).toEqual([
      { field: "body.participants.0.ip", message: "is a private address, which says nothing about where the participant is; give { lat, lon } for at least one participant" },
    ]);
  });
});

describe("the progress check", () => {
  it("sees progress that was reported only once the program had finished", async () => {
    // The same engine, its progress held back until the `up` returns: what an engine that counts
    // the registrations afterwards would report.
    const holdBack = (engine: Engine): Engine => ({
      ...watchProgress(engine),
      up: async (spec, options = {}) => {
        const held: EngineEvent[] = [];
        const outputs = await engine.up(spec, { ...options, onEvent: (event) => held.push(event) });
        held.forEach((event) => options.onEvent?.(event));
        return outputs;
      },
    });
    const late = await startTestService({ wrapEngine: (engine) => watchProgress(holdBack(engine)) });
    try {
      const { id } = await late.create({ participants: LJUBLJANA });
      expect((await late.waitForConference(id, ["ready", "failed"])).state).toBe("ready");
      const { reported, late: found } = progressOf(`conf-${id}`);
      expect(reported.length).toBeGreaterThan(2);
      expect(found).toHaveLength(reported.length);
      await late.stop(id);
      await late.waitForConference(id, ["stopped"]);
    } finally {
      await late.close();
    }
  });
});

describe("a testbed from a clusters file", () => {
  // One small cluster (a name of the default testbed, whose stack the conferences' stacks read):
  // room for one conference of two participants and not for a second.
  const CLUSTERS = {
    "arnes-ljubljana": {
      provider: "kubeconfig",
      location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 },
      exposure: "nodePort",
      capacity: { nodes: 1, vcpuPerNode: 0.75, memoryGiBPerNode: 2 },
    },
  };
  let small: TestService;

  beforeAll(async () => {
    small = await startTestService({ env: { SWITCH_TESTBED: clustersFile(CLUSTERS) } });
  }, 60_000);
  afterAll(() => small?.close());

  it("deploys on the file's clusters, refuses with 409 naming the full cluster and records nothing for it, and takes a conference again once one stopped", async () => {
    const listed = await small.clusters();
    expect(Object.keys(listed)).toEqual(["arnes-ljubljana"]);
    expect(listed["arnes-ljubljana"]).toMatchObject({ capacity: CLUSTERS["arnes-ljubljana"].capacity, free: { cpu: "750m", memory: "2048Mi" }, conferences: 0 });

    const post = () => small.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: LJUBLJANA }) });
    const { id } = await small.create({ participants: LJUBLJANA });
    const ready = await small.waitForConference(id, ["ready", "failed"]);
    expect(ready.state).toBe("ready");
    expect(small.offline.state(`conf-${id}`)!.resources.find((resource) => resource.type === "pulumi:pulumi:StackReference")!.inputs).toEqual({ name: DEFAULT_TESTBED_STACK });

    const full = await problemOf(await post(), 409);
    expect(full.title).toBe("Conflict");
    expect(full.detail).toMatch(/^no cluster has room for a conference of 500m CPU and 1088Mi memory \(arnes-ljubljana: .+\)$/);
    expect((await problemOf(await small.call("/v1/placements", { method: "POST", body: JSON.stringify({ participants: LJUBLJANA }) }), 409)).detail).toBe(full.detail);
    const all = await small.conferences();
    expect(all.map((conference) => conference.id)).toEqual([id]);
    expect(small.readStore((store) => store.countByState())).toMatchObject({ ready: 1, placed: 0, deploying: 0 });

    await small.stop(id);
    await small.waitForConference(id, ["stopped"]);
    const second = (await small.create({ participants: LJUBLJANA })).id;
    await small.waitForConference(second, ["ready"]);
    await small.stop(second);
    await small.waitForConference(second, ["stopped"]);
  });
});
