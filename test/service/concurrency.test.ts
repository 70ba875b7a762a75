import { setTimeout as delay } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { qualifiedKey } from "../../domain/contracts/project.ts";
import { CONFERENCE_CONFIG, type ConferenceSpec } from "../../domain/contracts/conference.ts";
import { DEFAULT_SITES, parseSites } from "../../domain/contracts/testbed.ts";
import { createdView } from "../../automation/service/schemas.ts";
import { decisionRecord } from "../../domain/records.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { type Capacity, EngineRecorder, type TestService, problemOf, startTestService, testbedOf } from "../support/service.ts";
import { poll } from "../support/poll.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";

/**
 * Many requests at once against one service (SWITCH_CONCURRENCY=4): 200 creates — plain ones,
 * duplicates sharing an Idempotency-Key, retries — and, among them, stops right after a create
 * and stops twice. A stack never runs
 * two operations at once, no cluster is ever given more than it has, every conference ends where
 * its requests say, and nothing is left behind; on a testbed too small for all of them, the ones
 * refused leave no record.
 */

const CONCURRENCY = 4;
const LJUBLJANA = { participants: [{ lat: 46.05, lon: 14.51 }] };
const GIBIBYTE = 1024 ** 3;
/** Generous for ~150 deployments on the offline engine's workers on a two-core machine. */
const SETTLE_MS = 150_000;

function limitOf(capacity: Capacity) {
  return { millicores: Math.floor(capacity.nodes * capacity.vcpuPerNode * 1000), bytes: Math.floor(capacity.nodes * capacity.memoryGiBPerNode * GIBIBYTE) };
}

/** The cluster and size of the conference a recorded `up` deploys. */
function specOf(config: Record<string, { value: string }> | undefined): ConferenceSpec {
  return JSON.parse(config![qualifiedKey(CONFERENCE_CONFIG.conference)]!.value) as ConferenceSpec;
}

/**
 * Replays the recorded operations in order: a conference's resources count on its cluster from
 * the start of its `up` until its `destroy` succeeded. Returns where that ever exceeded `capacity`.
 */
function oversubscriptions(recorder: EngineRecorder, capacity: Capacity): string[] {
  const limit = limitOf(capacity);
  const size = new Map<string, { cluster: string; millicores: number; bytes: number }>();
  const load = new Map<string, { millicores: number; bytes: number }>();
  const steps = recorder.calls.flatMap((call) => [
    { at: call.started, call, phase: "start" as const },
    { at: call.ended ?? Infinity, call, phase: "end" as const },
  ]);
  const found: string[] = [];
  for (const { call, phase } of steps.sort((a, b) => a.at - b.at)) {
    if (call.kind === "up" && phase === "start" && call.stack !== "testbed" && !size.has(call.stack)) {
      const spec = specOf(call.config);
      const entry = { cluster: spec.cluster, millicores: parseCpuMillicores(spec.resources.cpu)!, bytes: parseMemoryBytes(spec.resources.memory)! };
      size.set(call.stack, entry);
      const used = load.get(entry.cluster) ?? { millicores: 0, bytes: 0 };
      used.millicores += entry.millicores;
      used.bytes += entry.bytes;
      load.set(entry.cluster, used);
      if (used.millicores > limit.millicores || used.bytes > limit.bytes) {
        found.push(`${entry.cluster} held ${used.millicores}m and ${used.bytes} bytes when ${call.stack} started`);
      }
    }
    if (call.kind === "destroy" && phase === "end" && call.outcome === "succeeded" && size.has(call.stack)) {
      const entry = size.get(call.stack)!;
      size.delete(call.stack);
      const used = load.get(entry.cluster)!;
      used.millicores -= entry.millicores;
      used.bytes -= entry.bytes;
    }
  }
  return found;
}

/**
 * Samples, until stopped, what the store says holds capacity (the admin's list, one query) and
 * records any cluster given more than it has.
 */
function watchCapacity(service: TestService, capacity: Capacity): { stop: () => Promise<{ samples: number; violations: string[] }> } {
  const limit = limitOf(capacity);
  const violations: string[] = [];
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const conferences = await service.conferences();
      const used = new Map<string, { millicores: number; bytes: number }>();
      for (const conference of conferences.filter((candidate) => ["placed", "deploying", "ready", "stopping"].includes(candidate.state))) {
        const sum = used.get(conference.cluster) ?? { millicores: 0, bytes: 0 };
        sum.millicores += parseCpuMillicores(conference.decision.resources.cpu)!;
        sum.bytes += parseMemoryBytes(conference.decision.resources.memory)!;
        used.set(conference.cluster, sum);
      }
      for (const [cluster, sum] of used) {
        if (sum.millicores > limit.millicores || sum.bytes > limit.bytes) {
          violations.push(`${cluster}: ${sum.millicores}m, ${sum.bytes} bytes`);
        }
      }
      samples++;
      await delay(20);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { samples, violations };
    },
  };
}

/** A create as sent, for the answers that may be refusals. */
async function post(service: TestService, token: string, key?: string): Promise<Response> {
  return service.call("/v1/conferences", { method: "POST", token, body: JSON.stringify(LJUBLJANA), headers: key === undefined ? {} : { "idempotency-key": key } });
}

/** Waits until every conference is in the state `expected` gives it and nothing runs. */
async function settle(service: TestService, expected: (id: string) => string): Promise<void> {
  await poll(
    "conferences were not where they should be",
    async () =>
      (await service.conferences()).filter((conference) => conference.state !== expected(conference.id)).map((conference) => `${conference.id} ${conference.state}`),
    (pending) => pending.length === 0,
    SETTLE_MS,
    200,
  );
  await service.waitForIdle(SETTLE_MS);
}

/** Nothing of a stopped conference is left: no state, no lock, only the testbed's stack. */
async function expectNothingLeft(service: TestService, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    expect(service.offline.state(`conf-${id}`), id).toBeUndefined();
  }
  expect(service.offline.locks()).toEqual([]);
  expect(await service.offline.stacks()).toEqual(["testbed"]);
  for (const [name, cluster] of Object.entries(await service.clusters())) {
    const limit = limitOf(cluster.capacity);
    expect({ name, conferences: cluster.conferences, cpu: parseCpuMillicores(cluster.free.cpu), memory: parseMemoryBytes(cluster.free.memory) }).toEqual({
      name,
      conferences: 0,
      cpu: limit.millicores,
      memory: limit.bytes,
    });
  }
  expect(service.readStore((store) => store.unfinishedOperations())).toEqual([]);
}

describe("the checks", () => {
  it("see two operations on one stack at once, and a cluster given more than it has", async () => {
    const recorder = new EngineRecorder();
    let release = () => undefined as void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const engine = recorder.wrap({
      kind: "offline",
      up: async () => (await held, {}),
      destroy: async () => undefined,
      refresh: async () => undefined,
      cancel: async () => undefined,
      outputs: async () => undefined,
      stacks: async () => [],
      close: async () => undefined,
    });
    const spec = (id: string) => ({ stack: `conf-${id}`, config: { [qualifiedKey(CONFERENCE_CONFIG.conference)]: { value: JSON.stringify({ id, cluster: "c", resources: { cpu: "600m", memory: "1Gi" } }), secret: false } } });
    const running = [engine.up(spec("a")), engine.up(spec("a")), engine.up(spec("b"))];
    release();
    await Promise.all(running);
    expect(recorder.overlaps().map(([first, second]) => [first.stack, second.stack])).toEqual([["conf-a", "conf-a"]]);
    expect(recorder.maxConcurrent()).toBe(3);
    expect(oversubscriptions(recorder, { nodes: 1, vcpuPerNode: 1, memoryGiBPerNode: 4 })).toEqual(["c held 1200m and 2147483648 bytes when conf-b started"]);
  });
});

/** The creates the first test sends at once: plain ones, three per shared key, two per retried key. */
const PLAIN = 110;
const DUPLICATED_KEYS = 20;
const RETRIED_KEYS = 15;
const CREATES = PLAIN + 3 * DUPLICATED_KEYS + 2 * RETRIED_KEYS;

describe(`${CREATES} creates at once, with stops among them`, () => {
  it("keep every stack's operations apart and every cluster within its capacity, end as asked and leave nothing", async () => {
    const capacity = { nodes: 64, vcpuPerNode: 8, memoryGiBPerNode: 32 };
    const recorder = new EngineRecorder();
    const service = await startTestService({ wrapEngine: recorder.wrap, env: { SWITCH_CONCURRENCY: String(CONCURRENCY), SWITCH_TESTBED: testbedOf(capacity) } });
    try {
      const owner = (index: number) => (index % 2 === 0 ? service.tokens.alice : service.tokens.bob);
      const deleted = new Set<string>();
      const sent = { creates: 0, stops: 0 };
      const create = (index: number, key?: string) => {
        sent.creates++;
        return service.create(LJUBLJANA, { token: owner(index), ...(key === undefined ? {} : { key }) });
      };
      const stop = (id: string, index: number) => {
        sent.stops++;
        return service.stop(id, owner(index));
      };

      const plain = Array.from({ length: PLAIN }, async (_, index) => {
        const { id } = await create(index);
        if (index < 25) {
          // Stopped while it deploys (or waits to); some stopped twice at once.
          deleted.add(id);
          await Promise.all(Array.from({ length: index < 15 ? 2 : 1 }, () => stop(id, index)));
        }
        return [id];
      });
      const duplicates = Array.from({ length: DUPLICATED_KEYS }, async (_, index) => {
        const key = `duplicate-${index}`;
        const ids = await Promise.all(Array.from({ length: 3 }, async () => (await create(index, key)).id));
        expect(new Set(ids).size, key).toBe(1);
        if (index < 10) {
          deleted.add(ids[0]!);
          await stop(ids[0]!, index);
        }
        return [ids[0]!];
      });
      const retries = Array.from({ length: RETRIED_KEYS }, async (_, index) => {
        const key = `retry-${index}`;
        const first = (await create(index, key)).id;
        expect((await create(index, key)).id).toBe(first);
        return [first];
      });

      const sampler = watchCapacity(service, capacity);
      const ids = (await Promise.all([...plain, ...duplicates, ...retries])).flat();
      expect(sent).toEqual({ creates: CREATES, stops: 50 });
      expect(CREATES).toBe(200);
      expect(new Set(ids).size).toBe(PLAIN + DUPLICATED_KEYS + RETRIED_KEYS);
      expect(deleted.size).toBe(35);
      await settle(service, (id) => (deleted.has(id) ? "stopped" : "ready"));
      const sampled = await sampler.stop();
      expect(sampled.samples).toBeGreaterThan(0);
      expect(sampled.violations).toEqual([]);

      const all = await service.conferences();
      expect(all.map((conference) => conference.id).sort()).toEqual([...ids].sort());
      for (const conference of all) {
        const operations = service.readStore((store) => store.operations(conferenceName(conference.id)));
        const kinds = operations.map((operation) => operation.kind);
        if (deleted.has(conference.id)) {
          expect(kinds, conference.id).toEqual(["up", "destroy"]);
          expect(["succeeded", "cancelled"], conference.id).toContain(operations[0]!.state);
          expect(operations[1]!.state, conference.id).toBe("succeeded");
          expect(recorder.of(`conf-${conference.id}`, "destroy"), conference.id).toHaveLength(1);
          expect(service.offline.state(`conf-${conference.id}`), conference.id).toBeUndefined();
        } else {
          expect(conference.url, conference.id).toMatch(/^https:\/\//);
          expect(operations.map((operation) => [operation.kind, operation.state]), conference.id).toEqual([["up", "succeeded"]]);
        }
        expect(recorder.of(`conf-${conference.id}`, "up").length, conference.id).toBeLessThanOrEqual(1);
      }

      // Stop the rest, all at once.
      await Promise.all(all.filter((conference) => !deleted.has(conference.id)).map((conference) => service.stop(conference.id, conference.owner === "alice" ? service.tokens.alice : service.tokens.bob)));
      await settle(service, () => "stopped");
      expect(service.readStore((store) => store.countByState())).toEqual({ placed: 0, deploying: 0, ready: 0, failed: 0, stopping: 0, stopped: ids.length });
      await expectNothingLeft(service, ids);

      expect(recorder.overlaps()).toEqual([]);
      expect(recorder.maxConcurrent()).toBeLessThanOrEqual(CONCURRENCY);
      expect(recorder.maxConcurrent()).toBeGreaterThan(1);
      expect(oversubscriptions(recorder, capacity)).toEqual([]);
      // Only deployments stopped while they ran were cut short; every other operation succeeded.
      for (const call of recorder.calls.filter((candidate) => candidate.outcome !== "succeeded")) {
        expect({ kind: call.kind, deleted: deleted.has(call.stack.replace(/^conf-/, "")), error: call.error }).toEqual({ kind: "up", deleted: true, error: "the operation was cancelled" });
      }
    } finally {
      await service.close();
    }
  }, 300_000);

  it("on a testbed without room for all, refuses the rest with 409 and keeps no record of them", async () => {
    const capacity = { nodes: 1, vcpuPerNode: 1, memoryGiBPerNode: 4 };
    const recorder = new EngineRecorder();
    const service = await startTestService({ wrapEngine: recorder.wrap, env: { SWITCH_CONCURRENCY: String(CONCURRENCY), SWITCH_TESTBED: testbedOf(capacity) } });
    try {
      const size = decisionRecord.parse(await (await service.call("/v1/placements", { method: "POST", body: JSON.stringify(LJUBLJANA) })).json());
      const perCluster = Math.min(
        Math.floor(limitOf(capacity).millicores / parseCpuMillicores(size.resources.cpu)!),
        Math.floor(limitOf(capacity).bytes / parseMemoryBytes(size.resources.memory)!),
      );
      const room = perCluster * parseSites(DEFAULT_SITES, "sites").length;
      expect(room).toBeGreaterThan(0);

      const sampler = watchCapacity(service, capacity);
      const plain = Array.from({ length: 40 }, () => post(service, service.tokens.alice));
      const keyed = Array.from({ length: 10 }, (_, index) => Promise.all([post(service, service.tokens.bob, `full-${index}`), post(service, service.tokens.bob, `full-${index}`)]));
      const responses = await Promise.all([...plain.map(async (response) => [await response]), ...keyed]);

      const ids = new Set<string>();
      let refused = 0;
      for (const group of responses) {
        const statuses = group.map((response) => response.status);
        // A key's requests all got its one conference, or all were refused.
        expect(new Set(statuses).size, String(statuses)).toBe(1);
        if (statuses[0] === 409) {
          for (const response of group) {
            expect((await problemOf(response, 409)).detail).toMatch(/^no cluster has room for a conference of /);
          }
          refused++;
        } else {
          const groupIds = await Promise.all(group.map(async (response) => createdView.parse(await response.json()).id));
          expect(new Set(groupIds).size).toBe(1);
          ids.add(groupIds[0]!);
        }
      }
      expect(ids.size).toBe(room);
      expect(refused).toBe(responses.length - room);

      // The refused left nothing: no conference, no operation, no event, no stack.
      await settle(service, () => "ready");
      const sampled = await sampler.stop();
      expect(sampled.violations).toEqual([]);
      const all = await service.conferences();
      expect(all.map((conference) => conference.id).sort()).toEqual([...ids].sort());
      const stored = service.readStore((store) => ({
        conferences: store.conferences({ limit: 500 }).conferences.length,
        operations: [...ids].flatMap((id) => store.operations(conferenceName(id))).length,
        events: [...ids].flatMap((id) => store.eventsAfter(conferenceName(id), 0)).length,
      }));
      expect(stored.conferences).toBe(room);
      expect(stored.operations).toBe(room);
      // Operations and events belong to a recorded conference (foreign keys), so these are all of them.
      expect(stored.events).toBeGreaterThanOrEqual(room * 4);
      expect((await service.offline.stacks()).filter((stack) => stack !== "testbed")).toHaveLength(room);
      expect(oversubscriptions(recorder, capacity)).toEqual([]);

      // Stopping them gives the room back.
      await Promise.all(all.map((conference) => service.stop(conference.id, conference.owner === "alice" ? service.tokens.alice : service.tokens.bob)));
      await settle(service, () => "stopped");
      await expectNothingLeft(service, [...ids]);
      const again = (await service.create(LJUBLJANA)).id;
      expect((await service.waitForConference(again, ["ready"])).state).toBe("ready");
      expect(recorder.overlaps()).toEqual([]);
    } finally {
      await service.close();
    }
  }, 300_000);
});
