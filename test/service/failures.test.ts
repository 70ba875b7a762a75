import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Engine, EngineError } from "../../automation/engine/engine.ts";
import { EngineRecorder, type TestService, fail, failAfter, startTestService } from "../support/service.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";

/**
 * What the service does when its engine fails: a create that fails is cleaned up and says why; a
 * transient failure is retried; a stop that fails says why; and a 5xx says nothing internal.
 */

const LJUBLJANA = { participants: [{ lat: 46.05, lon: 14.51 }] };
const INTERNAL = "simulated internal failure in /srv/switch/engine.ts (token svt_not-a-real-one)";

let service: TestService;
const recorder = new EngineRecorder();
/** What the engine's `kind` does instead of answering, while set. */
let brokenKind: (() => string) | undefined;

/** The recorded engine, with a `kind` that can be broken after the service started. */
function breakable(engine: Engine): Engine {
  const recorded = recorder.wrap(engine);
  return {
    get kind() {
      return (brokenKind?.() ?? recorded.kind) as Engine["kind"];
    },
    up: (spec, options) => recorded.up(spec, options),
    destroy: (stack, options) => recorded.destroy(stack, options),
    refresh: (stack, options) => recorded.refresh(stack, options),
    cancel: (stack) => recorded.cancel(stack),
    outputs: (stack) => recorded.outputs(stack),
    stacks: () => recorded.stacks(),
    close: () => recorded.close(),
  };
}

beforeAll(async () => {
  service = await startTestService({ wrapEngine: breakable, retry: { retries: 3, minTimeoutMs: 10 }, env: { SWITCH_LOG_LEVEL: "error" } });
}, 60_000);
afterAll(() => service?.close());
beforeEach(() => {
  recorder.faults.up.length = 0;
  recorder.faults.destroy.length = 0;
  brokenKind = undefined;
});

async function create(): Promise<string> {
  return (await service.create(LJUBLJANA)).id;
}

/** The stream's event types, a run of `deploying` as one. */
function typesOf(events: { event: string }[]): string[] {
  const types = events.map((event) => event.event);
  return types.filter((type, index) => type !== "deploying" || types[index - 1] !== "deploying");
}

describe("engine failures", () => {
  it("ends a create whose up fails for good as failed with the engine's reason, its stack destroyed and its capacity released", async () => {
    const before = await service.clusters();
    recorder.faults.up.push(failAfter(new EngineError("failed", "simulated: quota exceeded")));
    const id = await create();
    const stack = `conf-${id}`;
    const { events } = await service.stream(id);

    const failed = await service.waitForConference(id, ["failed"]);
    expect(failed).toMatchObject({ state: "failed", error: "simulated: quota exceeded" });
    expect(failed.url).toBeUndefined();
    expect(typesOf(events)).toEqual(["placed", "queued", "deploying", "failed"]);
    expect(events.at(-1)!.data).toMatchObject({ reason: "simulated: quota exceeded" });

    // Not retried; the resources its up created were destroyed before the failure was told.
    expect(recorder.of(stack).map((call) => [call.kind, call.outcome])).toEqual([
      ["up", "failed"],
      ["destroy", "succeeded"],
    ]);
    expect(service.offline.state(stack)).toBeUndefined();
    expect(service.offline.locks()).not.toContain(stack);
    expect(await service.clusters()).toEqual(before);
    expect(service.readStore((store) => store.operations(conferenceName(id))).map(({ kind, state, attempts, error }) => ({ kind, state, attempts, error }))).toEqual([
      { kind: "up", state: "failed", attempts: 1, error: "simulated: quota exceeded" },
      { kind: "destroy", state: "succeeded", attempts: 1, error: undefined },
    ]);
  });

  it("retries a transient failure and ends ready, each attempt on the operation's record", async () => {
    const locked = new EngineError("conflict", "simulated: the stack is locked");
    recorder.faults.up.push(fail(locked), fail(locked));
    const id = await create();
    const ready = await service.waitForConference(id, ["ready", "failed"]);
    expect(ready.state).toBe("ready");
    expect(ready.error).toBeUndefined();
    expect(recorder.of(`conf-${id}`, "up").map((call) => call.outcome)).toEqual(["failed", "failed", "succeeded"]);
    expect(service.readStore((store) => store.operations(conferenceName(id))).map(({ kind, state, attempts }) => ({ kind, state, attempts }))).toEqual([{ kind: "up", state: "succeeded", attempts: 3 }]);

    const streaming = service.stream(id);
    await service.stop(id);
    expect(typesOf((await streaming).events)).toEqual(["placed", "queued", "deploying", "ready", "stopping", "queued", "stopped"]);
  });

  it("gives up on a transient failure after the retries and ends failed with its reason", async () => {
    const locked = new EngineError("unavailable", "simulated: the backend did not answer");
    recorder.faults.up.push(fail(locked), fail(locked), fail(locked), fail(locked));
    const id = await create();
    expect(await service.waitForConference(id, ["failed", "ready"])).toMatchObject({ state: "failed", error: "simulated: the backend did not answer" });
    expect(recorder.of(`conf-${id}`).map((call) => call.kind)).toEqual(["up", "up", "up", "up", "destroy"]);
    expect(service.readStore((store) => store.operations(conferenceName(id)))[0]).toMatchObject({ kind: "up", state: "failed", attempts: 4 });
  });

  it("says both reasons when the cleanup of a failed create fails too", async () => {
    recorder.faults.up.push(failAfter(new EngineError("failed", "simulated: quota exceeded")));
    recorder.faults.destroy.push(fail(new EngineError("failed", "simulated: the namespace is stuck terminating")));
    const id = await create();
    const { events } = await service.stream(id);
    const reason = "simulated: quota exceeded; cleaning up failed too: simulated: the namespace is stuck terminating";
    expect(await service.waitForConference(id, ["failed"])).toMatchObject({ state: "failed", error: reason });
    expect(events.at(-1)).toMatchObject({ event: "failed", data: { reason } });
  });

  it("ends a conference whose destroy fails for good as failed with the reason, in GET and in the stream", async () => {
    const id = await create();
    await service.waitForConference(id, ["ready"]);
    recorder.faults.destroy.push(fail(new EngineError("failed", "simulated: the namespace is stuck terminating")));
    const streaming = service.stream(id);
    expect((await service.stop(id)).state).toBe("stopping");

    const reason = "stopping failed: simulated: the namespace is stuck terminating";
    expect(await service.waitForConference(id, ["failed", "stopped"])).toMatchObject({ state: "failed", error: reason });
    const { events } = await streaming;
    expect(typesOf(events)).toEqual(["placed", "queued", "deploying", "ready", "stopping", "queued", "failed"]);
    expect(events.at(-1)!.data).toMatchObject({ reason });
    expect(recorder.of(`conf-${id}`, "destroy").map((call) => call.outcome)).toEqual(["failed"]);
    expect(service.readStore((store) => store.operations(conferenceName(id))).map(({ kind, state }) => [kind, state])).toEqual([
      ["up", "succeeded"],
      ["destroy", "failed"],
    ]);
  });

  it("keeps the capacity of a conference whose stack outlived a failed destroy, and destroys it when stopped again", async () => {
    const before = await service.clusters();
    const id = await create();
    const { cluster } = await service.waitForConference(id, ["ready"]);
    recorder.faults.destroy.push(fail(new EngineError("failed", "simulated: the namespace is stuck terminating")));
    await service.stop(id);
    await service.waitForConference(id, ["failed"]);
    // Its resources still exist: the cluster is not free for another conference.
    expect((await service.clusters())[cluster]!.conferences).toBe(before[cluster]!.conferences + 1);
    expect(service.offline.state(`conf-${id}`)).toBeDefined();

    expect((await service.stop(id)).state).toBe("stopping");
    expect(await service.waitForConference(id, ["stopped", "failed"])).toMatchObject({ state: "stopped" });
    expect(await service.clusters()).toEqual(before);
    expect(service.offline.state(`conf-${id}`)).toBeUndefined();
    // Stopped is over: a third stop does nothing.
    await service.stop(id);
    expect(recorder.of(`conf-${id}`, "destroy").map((call) => call.outcome)).toEqual(["failed", "succeeded"]);
  });
});

describe("internal errors", () => {
  it.each([
    ["a plain Error thrown by the engine", () => {
      throw new Error(INTERNAL);
    }, INTERNAL],
    ["a response that does not match its own schema", () => "bogus", "Response doesn't match the schema"],
  ])("answer %s with a 500 that says nothing internal, and log it", async (_what, kind, logged) => {
    brokenKind = kind;
    const logs = service.logs.length;
    const response = await service.call("/v1/clusters");
    const text = await response.text();
    expect(response.status).toBe(500);
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(text)).toStrictEqual({ type: "about:blank", title: "Internal Server Error", status: 500 });
    expect(text).not.toMatch(/simulated|svt_|bogus|\/srv|stack|Error:/);
    const errors = service.logs.slice(logs).map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } });
    expect(errors.some((line) => line.level === 50 && line.msg === "request failed" && line.err?.message.includes(logged) === true)).toBe(true);

    brokenKind = undefined;
    expect((await service.call("/v1/clusters")).status).toBe(200);
  });
});
