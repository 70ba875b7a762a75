import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { DEFAULT_SITES, parseSites, siteCapacity } from "../../domain/contracts/testbed.ts";
import { EngineError } from "../../automation/engine/engine.ts";
import { OperationQueue } from "../../automation/engine/queue.ts";
import { OperationRunner } from "../../automation/operations/runner.ts";
import { ConferenceManager } from "../../automation/service/conferences.ts";
import type { RegisteredClusters } from "../../automation/service/registry.ts";
import { Store } from "../../automation/store/store.ts";
import { HeldEngine } from "../support/held-engine.ts";
import { poll } from "../support/poll.ts";

/**
 * The runner and the conference manager together, on a real store, with an engine whose every call
 * ends when the test says: each step of a conference's life, and what a stop, a failure or a late
 * outcome does to the records. The service tests drive the same over HTTP; here each race is set up
 * exactly.
 */

const CLUSTERS: RegisteredClusters = Object.fromEntries(
  parseSites(DEFAULT_SITES, "sites").map((site) => [site.name, { provider: site.provider, location: site.location, exposure: site.exposure, capacity: siteCapacity(site) }]),
);
const LJUBLJANA = { lat: 46.05, lon: 14.51 };
const VIEWER = { subject: "alice", admin: false };

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups) {
    await cleanup();
  }
  cleanups = [];
});

function world() {
  const store = new Store({ path: join(mkdtempSync(join(tmpdir(), "switch-operations-")), "switch.db") });
  const engine = new HeldEngine();
  const manager = new ConferenceManager({ store, registry: { clusters: () => CLUSTERS }, testbedStack: "organization/switch-vaas/testbed" });
  const runner = new OperationRunner({ store, engine, queue: new OperationQueue(2), owners: [manager], retry: { retries: 0, minTimeoutMs: 1 } });
  manager.runWith(runner);
  cleanups.push(async () => {
    await runner.close();
    store.close();
  });
  const create = () => manager.create("alice", { participants: [LJUBLJANA], expectedParticipants: 3 });
  const settled = (id: string, state: string) => poll(`conference ${id} to be ${state}`, () => Promise.resolve(store.conference(id)!), (c) => c.state === state, 5000);
  const events = (id: string) => store.eventsAfter(conferenceName(id), 0).map((event) => event.type);
  const operations = (id: string) => store.operations(conferenceName(id)).map(({ kind, state, error }) => ({ kind, state, ...(error === undefined ? {} : { error }) }));
  return { store, engine, manager, runner, create, settled, events, operations };
}

describe("the runner with the conference as its stack's owner", () => {
  it("walks a lifecycle: each outcome with the next state, events in order and replayable from any id", async () => {
    const { store, engine, manager, create, settled, events, operations } = world();
    const { id } = create();
    const up = await engine.next();
    expect(up).toMatchObject({ kind: "up", stack: conferenceName(id) });
    expect(store.conference(id)).toMatchObject({ state: "deploying", progress: { done: 1, total: 4 } });
    const created = { type: "change", resource: "conf-x", resourceType: "kubernetes:core/v1:Namespace", action: "create" } as const;
    up.finish({ outputs: { url: "https://x" }, events: [created] });
    expect(await settled(id, "ready")).toMatchObject({ url: "https://x" });
    // What the up did to each resource is on its record.
    expect(store.operations(conferenceName(id))[0]!.changes).toEqual([{ resource: "conf-x", resourceType: "kubernetes:core/v1:Namespace", action: "create" }]);
    manager.stop(id, VIEWER);
    manager.stop(id, VIEWER);
    const destroy = await engine.next();
    expect(destroy).toMatchObject({ kind: "destroy", stack: conferenceName(id) });
    destroy.finish({});
    await settled(id, "stopped");
    expect(events(id)).toEqual(["placed", "queued", "deploying", "deploying", "ready", "stopping", "queued", "stopped"]);
    const all = store.eventsAfter(conferenceName(id), 0);
    expect(store.eventsAfter(conferenceName(id), all[4]!.id).map((event) => event.type)).toEqual(["stopping", "queued", "stopped"]);
    expect(operations(id)).toEqual([
      { kind: "up", state: "succeeded" },
      { kind: "destroy", state: "succeeded" },
    ]);
    expect(store.unfinishedOperations()).toEqual([]);
  });

  it("fails a create only after its cleanup, with the create's reason", async () => {
    const { engine, create, settled, events, operations, store } = world();
    const { id } = create();
    (await engine.next()).finish({ error: new EngineError("failed", "simulated: quota exceeded") });
    const cleanup = await engine.next();
    expect(cleanup.kind).toBe("destroy");
    expect(store.conference(id)!.state).toBe("deploying");
    cleanup.finish({});
    expect(await settled(id, "failed")).toMatchObject({ error: "simulated: quota exceeded" });
    expect(events(id).at(-1)).toBe("failed");
    expect(operations(id)).toEqual([
      { kind: "up", state: "failed", error: "simulated: quota exceeded" },
      { kind: "destroy", state: "succeeded" },
    ]);
  });

  it("cancels a deployment a stop overtook and ignores its late outcome: the conference is stopped, never ready", async () => {
    const { engine, manager, create, settled, events, operations } = world();
    const { id } = create();
    const up = await engine.next();
    manager.stop(id, VIEWER);
    // The stop aborted the running up; an engine may still answer it as a success, late.
    expect(up.signal?.aborted).toBe(true);
    up.finish({ outputs: { url: "https://late" } });
    const destroy = await engine.next();
    destroy.finish({});
    expect((await settled(id, "stopped")).url).toBeUndefined();
    expect(events(id)).toEqual(["placed", "queued", "deploying", "deploying", "stopping", "queued", "stopped"]);
    expect(operations(id)).toEqual([
      { kind: "up", state: "cancelled", error: "cancelled by a stop" },
      { kind: "destroy", state: "succeeded" },
    ]);
  });

  it("makes a failed create's queued cleanup the stop's destroy, so that nothing turns stopped into failed", async () => {
    const { engine, manager, create, settled, operations } = world();
    const { id } = create();
    (await engine.next()).finish({ error: new EngineError("failed", "simulated: quota exceeded") });
    const cleanup = await engine.next();
    manager.stop(id, VIEWER);
    cleanup.finish({});
    await settled(id, "stopped");
    // Give a second destroy, if one had been queued, the time to be asked for.
    await delay(100);
    expect(engine.calls.map((call) => call.kind)).toEqual(["up", "destroy"]);
    expect(operations(id).map((operation) => operation.kind)).toEqual(["up", "destroy"]);
  });

  it("never deploys a conference whose stop came before its turn", async () => {
    const { engine, manager, create, settled, operations } = world();
    // Two creates fill the queue's two slots; the third waits for one.
    const first = create();
    const second = create();
    const third = create();
    const ups = [await engine.next(), await engine.next()];
    manager.stop(third.id, VIEWER);
    for (const up of ups) {
      up.finish({ outputs: { url: "https://x" } });
    }
    await settled(first.id, "ready");
    await settled(second.id, "ready");
    (await engine.next()).finish({});
    await settled(third.id, "stopped");
    expect(engine.calls.filter((call) => call.stack === conferenceName(third.id)).map((call) => call.kind)).toEqual(["destroy"]);
    expect(operations(third.id)).toEqual([
      { kind: "up", state: "cancelled", error: "cancelled by a stop" },
      { kind: "destroy", state: "succeeded" },
    ]);
  });
});
