import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalEngine, LocalEngineOptions } from "../../automation/engine/local.ts";
import type { Decision } from "../../domain/records.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { EngineRecorder, type TestService, startTestService } from "../support/service.ts";
import { OPERATION_TIMEOUT_MS, asStackConfig, eventually, kubernetes, localTestbedConfig, refusalOf, secretsIn, shortAwaits, withLocalEngine } from "./support.ts";
import { everyFile } from "../support/files.ts";

/**
 * The automation service on the local engine, over real HTTP on 127.0.0.1: conferences created
 * and stopped by the real Pulumi CLI against the local cluster, their Deployments admitted and
 * Available in the API server, and nothing left behind. The registry is the testbed stack the
 * service finds on its backend (brought up here, as an operator would; never by the service). What
 * it keeps — the file backend's state, its store, events and logs — holds no conference password
 * and not the passphrase.
 */

const dataDir = mkdtempSync(join(tmpdir(), "switch-vaas-service-local-"));
const engineOptions: LocalEngineOptions = { dataDir, pulumiHome: join(dataDir, "home"), transforms: [shortAwaits] };
const recorder = new EngineRecorder();
const DEPLOY_MS = OPERATION_TIMEOUT_MS;
let service: TestService;

/** A small conference near Ljubljana: the smallest pod, so that several fit the one simulated node. */
const SMALL = { participants: [{ lat: 46.05, lon: 14.51 }], expectedParticipants: 2, lastN: 2 };

const withEngine = <T>(work: (engine: LocalEngine) => Promise<T>): Promise<T> => withLocalEngine(engineOptions, work);

async function namespaceGone(id: string): Promise<void> {
  await eventually(`namespace ${conferenceName(id)} to be deleted`, async () =>
    (await refusalOf(kubernetes().core.readNamespace({ name: conferenceName(id) }))).status === 404 ? true : undefined,
  );
}

beforeAll(async () => {
  await withEngine((engine) => engine.up({ stack: "testbed", config: asStackConfig(localTestbedConfig()) }, { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS) }));
  service = await startTestService({
    dataDir,
    // Every log line, for the secret scan below.
    env: { SWITCH_ENGINE: "local", SWITCH_CONCURRENCY: "2", SWITCH_LOG_LEVEL: "debug" },
    localEngine: { transforms: engineOptions.transforms!, pulumiHome: engineOptions.pulumiHome! },
    wrapEngine: recorder.wrap,
    retry: { retries: 2, minTimeoutMs: 500 },
  });
});

afterAll(async () => {
  // A test that failed midway leaves conferences running: stopped here, so the cluster is clean for the next file.
  if (service !== undefined) {
    const left = (await service.conferences()).filter((conference) => !["stopped", "failed"].includes(conference.state));
    await Promise.all(left.map((conference) => service.stop(conference.id)));
    await Promise.all(left.map((conference) => service.waitForConference(conference.id, ["stopped", "failed"], DEPLOY_MS)));
    await service.close();
  }
  await withEngine((engine) => engine.destroy("testbed", { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS) }));
});

describe("the service on the local engine", () => {
  it("reads its registry from the testbed stack on its backend", async () => {
    const clusters = await service.clusters();
    expect(Object.keys(clusters)).toEqual(["local"]);
    expect(clusters.local).toMatchObject({ exposure: "nodePort", capacity: { nodes: 1, vcpuPerNode: 4, memoryGiBPerNode: 8 }, conferences: 0 });
    expect((await (await service.call("/readyz", { token: null })).json())).toEqual({ status: "ready", engine: "local" });
  });

  it("creates a conference whose Deployment becomes Available, streams its progress, and stops it leaving no namespace or stack", async () => {
    const created = await service.create(SMALL);
    expect(created.decision.cluster).toBe("local");
    const streaming = service.stream(created.id, { timeoutMs: 2 * DEPLOY_MS });
    const ready = await service.waitForConference(created.id, ["ready", "failed"], DEPLOY_MS);
    expect(ready.error).toBeUndefined();
    expect(ready.state).toBe("ready");
    expect(ready.url).toMatch(/^https:\/\/[^/]+:\d+$/);

    const deployment = await kubernetes().apps.readNamespacedDeployment({ namespace: conferenceName(created.id), name: `jitsi-${created.id}` });
    expect(deployment.status?.conditions?.find((condition) => condition.type === "Available")?.status).toBe("True");
    const limits = deployment.spec!.template.spec!.containers.map((container) => container.resources?.limits);
    expect(limits).toHaveLength(4);

    await service.stop(created.id);
    const { events } = await streaming;
    const types = events.map((event) => event.event);
    expect(types.slice(0, 3)).toEqual(["placed", "queued", "deploying"]);
    expect(types.slice(-4)).toEqual(["ready", "stopping", "queued", "stopped"]);
    const progress = events.filter((event) => event.event === "deploying").map((event) => event.data as { done: number; total: number });
    expect(progress.at(-1)!.done).toBe(progress.at(-1)!.total);
    expect(progress.at(-1)!.total).toBeGreaterThan(0);

    await namespaceGone(created.id);
    expect(await withEngine((engine) => engine.stacks())).toEqual(["testbed"]);
  });

  it("keeps no conference password, nor the passphrase, in its state, store, events or logs", async () => {
    const created = await service.create(SMALL);
    const streaming = service.stream(created.id, { timeoutMs: 2 * DEPLOY_MS });
    const ready = await service.waitForConference(created.id, ["ready", "failed"], DEPLOY_MS);
    expect(ready.state).toBe("ready");
    // The passwords as the conference drew them, from where they belong: its Secret in the cluster.
    const secret = await kubernetes().core.readNamespacedSecret({ namespace: conferenceName(created.id), name: `jitsi-auth-${created.id}` });
    const passwords = Object.fromEntries(Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, "base64").toString()]));
    expect(Object.keys(passwords).sort()).toEqual(["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"]);
    expect(Object.values(passwords).every((password) => /^[A-Za-z0-9]{32}$/.test(password))).toBe(true);
    // As the local engine finds it: the environment's, else the data directory's file.
    const passphraseFile = join(dataDir, "passphrase");
    const passphrase = process.env.PULUMI_CONFIG_PASSPHRASE || readFileSync(passphraseFile, "utf8").trim();

    const places = new Map<string, string>();
    const keep = (label: string) => {
      for (const [path, bytes] of everyFile(dataDir)) {
        places.set(`${path} (${label})`, bytes);
      }
    };
    keep("ready");
    places.set("the conference's view", await (await service.call(`/v1/conferences/${created.id}`)).text());
    await service.stop(created.id);
    places.set("the event stream", (await streaming).raw);
    await namespaceGone(created.id);
    keep("stopped");
    service.logs.forEach((line, index) => places.set(`log line ${index + 1}`, line));

    // The scan finds what is there: the conference's id or address in the stack's checkpoint, the
    // store, the stream and the log; the passphrase in its own file, when it is the file's.
    const holding = secretsIn(places, { id: created.id, url: ready.url! }).map((entry) => entry.where);
    const checkpoint = join(dataDir, "state", ".pulumi", "stacks", "switch-vaas", `${conferenceName(created.id)}.json`);
    expect(holding).toContain(`${checkpoint} (ready)`);
    expect(holding.some((where) => where.startsWith(join(dataDir, "switch.db")))).toBe(true);
    expect(holding).toContain("the event stream");
    expect(holding.some((where) => where.startsWith("log line "))).toBe(true);
    // And the passwords where they are, in base64: the Secret as the API server returns it.
    expect(secretsIn(new Map([["the Secret", JSON.stringify(secret)]]), passwords).map((entry) => entry.name).sort()).toEqual(["JICOFO_AUTH_PASSWORD", "JVB_AUTH_PASSWORD"]);
    const found = secretsIn(places, { ...passwords, passphrase }).map((entry) => `${entry.where} holds ${entry.name}`);
    if (process.env.PULUMI_CONFIG_PASSPHRASE === undefined || process.env.PULUMI_CONFIG_PASSPHRASE === "") {
      expect(found).toContain(`${passphraseFile} (ready) holds passphrase`);
    }
    expect(found.filter((entry) => !entry.startsWith(`${passphraseFile} (`))).toEqual([]);
  });

  it("takes 20 concurrent creates and deletes: no stack with two operations at once, no cluster oversubscribed, nothing leaked", async () => {
    const before = recorder.calls.length;
    const earlier = (await service.conferences()).length;
    // As many of SMALL as the node has room for: what is free now, over what one of them takes.
    const { free } = (await service.clusters()).local!;
    const { resources } = (await (await service.call("/v1/placements", { method: "POST", body: JSON.stringify(SMALL) })).json()) as Decision;
    const fits = Math.min(
      Math.floor(parseCpuMillicores(free.cpu)! / parseCpuMillicores(resources.cpu)!),
      Math.floor(parseMemoryBytes(free.memory)! / parseMemoryBytes(resources.memory)!),
    );
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => service.call("/v1/conferences", { method: "POST", body: JSON.stringify(SMALL) })),
    );
    const accepted = await Promise.all(responses.filter((response) => response.status === 202).map(async (response) => ((await response.json()) as { id: string }).id));
    const refused = responses.filter((response) => response.status === 409);
    // The one simulated node holds what it holds; the rest is refused, and recorded nowhere.
    expect(accepted.length + refused.length).toBe(20);
    expect(fits).toBeGreaterThan(1);
    expect(accepted).toHaveLength(Math.min(fits, 20));
    expect((await service.conferences()).filter((conference) => accepted.includes(conference.id))).toHaveLength(accepted.length);
    expect((await service.conferences()).length).toBe(earlier + accepted.length);

    // Half are stopped while they deploy (or wait to), twice each.
    const stoppedEarly = accepted.slice(0, Math.ceil(accepted.length / 2));
    await Promise.all(stoppedEarly.flatMap((id) => [service.stop(id), service.stop(id)]));
    for (const id of accepted) {
      const expected = stoppedEarly.includes(id) ? "stopped" : "ready";
      expect((await service.waitForConference(id, ["stopped", "ready", "failed"], 3 * DEPLOY_MS)).state).toBe(expected);
    }
    await Promise.all(accepted.filter((id) => !stoppedEarly.includes(id)).map((id) => service.stop(id)));
    for (const id of accepted) {
      expect((await service.waitForConference(id, ["stopped", "failed"], DEPLOY_MS)).state).toBe("stopped");
    }

    expect(recorder.overlaps()).toEqual([]);
    expect(recorder.maxConcurrent()).toBeLessThanOrEqual(2);
    expect(recorder.calls.slice(before).filter((call) => call.outcome === "failed" && call.kind !== "up")).toEqual([]);
    for (const id of accepted) {
      await namespaceGone(id);
    }
    expect(await withEngine((engine) => engine.stacks())).toEqual(["testbed"]);
    expect((await service.clusters()).local!.conferences).toBe(0);
  });
});
