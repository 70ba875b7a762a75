import type * as pulumi from "@pulumi/pulumi";
import { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EngineEvent, StackConfigMap } from "../../automation/engine/engine.ts";
import { type PendingCreate, untrackedCreatesWarning } from "../../automation/engine/local.ts";
import { OfflineEngine } from "../../automation/engine/offline-engine.ts";
import { offlineMocks } from "../../automation/engine/offline-worker.ts";
import { evaluateOffline } from "../../automation/engine/offline.ts";
import { readStackConfig } from "../../automation/engine/stack-config.ts";
import { CDN_POP_CONFIG, popStackName } from "../../domain/contracts/cdn-pop.ts";
import { qualifiedKey } from "../../domain/contracts/project.ts";

/**
 * What the offline engine says each operation changed (EngineEvent "change"), against the
 * stack's previous state, and what it answers for the Docker provider: the Vienna PoP brought up
 * from its stack file, brought up again with an edge moved to another host and a report key
 * rotated, then destroyed.
 */

const stacks = join(import.meta.dirname, "..", "..", "stacks");
const REPORT_KEYS = { host1: "key-of-host1-0123456789", host2: "key-of-host2-0123456789", host3: "key-of-host3-0123456789", local: "key-of-local-0123456789" };

interface PopConfig {
  name: string;
  hosts: { name: string }[];
  layout: Record<string, string[]>;
  addresses: Record<string, string>;
}

/** A PoP stack file's config, as the service hands it to an engine, with a report key for each of its hosts. */
function popStack(file: string, edit: (pop: PopConfig) => PopConfig = (pop) => pop, keys: Record<string, string> = REPORT_KEYS): { stack: string; config: StackConfigMap } {
  const { config, secretKeys } = readStackConfig(join(stacks, file));
  const pop = edit(JSON.parse(config[qualifiedKey(CDN_POP_CONFIG.pop)]!) as PopConfig);
  const hosts = new Set(pop.hosts.map((host) => host.name));
  const entries: StackConfigMap = Object.fromEntries(Object.entries(config).map(([key, value]) => [key, { value, secret: secretKeys.includes(key) }]));
  entries[qualifiedKey(CDN_POP_CONFIG.pop)] = { value: JSON.stringify(pop), secret: false };
  entries[qualifiedKey(CDN_POP_CONFIG.reportKeys)] = { value: JSON.stringify(Object.fromEntries(Object.entries(keys).filter(([host]) => hosts.has(host)))), secret: true };
  return { stack: popStackName(pop.name), config: entries };
}

/** Vienna with host1's vod edge moved to host3 at a new address. */
function vodOnHost3(pop: PopConfig): PopConfig {
  const { "host1/vod": _moved, ...addresses } = pop.addresses;
  return {
    ...pop,
    layout: { ...pop.layout, host1: ["small"], host3: ["small", "vod"] },
    addresses: { ...addresses, "host3/vod": "192.0.2.25" },
  };
}

function changesOf(events: EngineEvent[]): Record<string, string> {
  const changes = events.filter((event) => event.type === "change");
  const byName = Object.fromEntries(changes.map((change) => [`${change.resourceType.split(":").at(-1)} ${change.resource}`, change.action]));
  // One per resource.
  expect(Object.keys(byName)).toHaveLength(changes.length);
  return byName;
}

describe("the changes the offline engine reports", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "switch-vaas-offline-changes-"));
  let engine: OfflineEngine;
  const first: EngineEvent[] = [];
  const second: EngineEvent[] = [];
  const third: EngineEvent[] = [];
  const destroyed: EngineEvent[] = [];

  beforeAll(async () => {
    engine = new OfflineEngine({ dataDir, workers: 1 });
    const vienna = popStack("Pulumi.pop-vienna.yaml");
    await engine.up(vienna, { onEvent: (event) => first.push(event) });
    await engine.up(popStack("Pulumi.pop-vienna.yaml", vodOnHost3, { ...REPORT_KEYS, host2: "rotated-key-of-host2-0123" }), { onEvent: (event) => second.push(event) });
    await engine.up(popStack("Pulumi.pop-vienna.yaml", vodOnHost3, { ...REPORT_KEYS, host2: "rotated-key-of-host2-0123" }), { skipPreview: true, onEvent: (event) => third.push(event) });
    await engine.destroy(vienna.stack, { onEvent: (event) => destroyed.push(event) });
  }, 60_000);

  afterAll(async () => {
    await engine.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("reports a new stack's every custom resource as created, after its progress, and no component or provider", () => {
    const changes = changesOf(first);
    expect(Object.values(changes).every((action) => action === "create")).toBe(true);
    expect(Object.keys(changes).sort()).toEqual([
      ...["im", "lb", "small", "vod"].map((c) => `Container pop-host1-${c}`),
      ...["im", "large", "mid", "small"].map((c) => `Container pop-host2-${c}`),
      ...["dns", "im", "small"].map((c) => `Container pop-host3-${c}`),
      ...["host1", "host2", "host3"].map((host) => `Network pop-${host}`),
      ...["edge-small", "edge-vod", "instance-manager", "lb"].map((image) => `RemoteImage pop-host1-${image}`),
      ...["edge-large", "edge-small", "instance-manager", "mid"].map((image) => `RemoteImage pop-host2-${image}`),
      ...["dns", "edge-small", "instance-manager"].map((image) => `RemoteImage pop-host3-${image}`),
    ]);
    expect(first.findIndex((event) => event.type === "change")).toBeGreaterThan(first.findLastIndex((event) => event.type === "progress"));
  });

  it("reports a moved edge as a delete and a create, a changed config or secret as a replacement, and the rest the same", () => {
    expect(changesOf(second)).toEqual({
      "Container pop-host1-im": "same",
      "Container pop-host1-small": "same",
      // Deleted, and made on host3: a resource of another name.
      "Container pop-host1-vod": "delete",
      "Container pop-host3-vod": "create",
      "RemoteImage pop-host1-edge-vod": "delete",
      "RemoteImage pop-host3-edge-vod": "create",
      // Its uploaded config lists the vod edge's new address; uploads force a new container.
      "Container pop-host1-lb": "replace",
      "Container pop-host3-dns": "replace",
      // Its report key, a secret, changed: masked alike in both states, told apart by digest.
      "Container pop-host2-im": "replace",
      "Container pop-host2-large": "same",
      "Container pop-host2-mid": "same",
      "Container pop-host2-small": "same",
      "Container pop-host3-im": "same",
      "Container pop-host3-small": "same",
      "Network pop-host1": "same",
      "Network pop-host2": "same",
      "Network pop-host3": "same",
      "RemoteImage pop-host1-edge-small": "same",
      "RemoteImage pop-host1-instance-manager": "same",
      "RemoteImage pop-host1-lb": "same",
      "RemoteImage pop-host2-edge-large": "same",
      "RemoteImage pop-host2-edge-small": "same",
      "RemoteImage pop-host2-instance-manager": "same",
      "RemoteImage pop-host2-mid": "same",
      "RemoteImage pop-host3-dns": "same",
      "RemoteImage pop-host3-edge-small": "same",
      "RemoteImage pop-host3-instance-manager": "same",
    });
  });

  it("reports an up of the same config as nothing but the same; without a preview, counts from the previous state's resources", () => {
    expect(new Set(Object.values(changesOf(third)))).toEqual(new Set(["same"]));
    const progress = third.filter((event) => event.type === "progress");
    expect(third.some((event) => event.type === "diagnostic")).toBe(false);
    expect(progress[0]).toEqual({ type: "progress", done: 0, total: progress.at(-1)!.total });
    expect(progress.at(-1)!.done).toBe(progress.at(-1)!.total);
  });

  it("reports a destroy as the deletion of every custom resource, the last made first", () => {
    const changes = changesOf(destroyed);
    expect(Object.keys(changes).sort()).toEqual(Object.keys(changesOf(third)).sort());
    expect(new Set(Object.values(changes))).toEqual(new Set(["delete"]));
    const order = destroyed.flatMap((event) => (event.type === "change" ? [event.resource] : []));
    expect(order.indexOf("pop-host1-small")).toBeGreaterThan(order.indexOf("pop-host3-vod"));
  });

  it("reports nothing for a stack it does not have", async () => {
    const events: EngineEvent[] = [];
    await engine.destroy("pop-nowhere", { onEvent: (event) => events.push(event) });
    expect(events).toEqual([]);
  });
});

/** What the offline mocks answered for each resource of the program under `file`'s config. */
async function answers(file: string): Promise<{ outputs: unknown; answered: Map<string, { id: string | undefined; state: Record<string, unknown> }> }> {
  const { stack, config } = popStack(file);
  const mocks = offlineMocks(mkdtempSync(join(tmpdir(), "switch-vaas-offline-docker-")), stack);
  const answered = new Map<string, { id: string | undefined; state: Record<string, unknown> }>();
  const newResource = mocks.newResource.bind(mocks);
  mocks.newResource = (args: pulumi.runtime.MockResourceArgs) => {
    const result = newResource(args);
    answered.set(`${args.type.split(":").at(-1)} ${args.name}`, { id: result.id, state: result.state as Record<string, unknown> });
    return result;
  };
  const { outputs } = await evaluateOffline(async () => (await import("../../stacks/cdn-pop.ts")).default(), {
    stack,
    preview: false,
    mocks,
    config: Object.fromEntries(Object.entries(config).map(([key, entry]) => [key, entry.value])),
    secretKeys: Object.entries(config).flatMap(([key, entry]) => (entry.secret ? [key] : [])),
  });
  return { outputs, answered };
}

describe("the offline engine's answers for the Docker provider", () => {
  it("gives Vienna's images, networks and containers ids as Docker's, and each container the address it asked for on its host's network", async () => {
    const { answered } = await answers("Pulumi.pop-vienna.yaml");
    const small = answered.get("Container pop-host1-small")!;
    expect(small.id).toMatch(/^[0-9a-f]{64}$/);
    expect(small.state.hostname).toBe(small.id!.slice(0, 12));
    expect(small.state.networkDatas).toEqual([{ networkName: "pop-vienna", ipAddress: "192.0.2.20", ipPrefixLength: 24, gateway: "192.0.2.1" }]);
    expect(answered.get("Container pop-host2-mid")!.state.networkDatas).toEqual([{ networkName: "pop-vienna", ipAddress: "192.0.2.11", ipPrefixLength: 24, gateway: "192.0.2.1" }]);
    expect(answered.get("Network pop-host1")!.id).toMatch(/^[0-9a-f]{64}$/);

    const image = answered.get("RemoteImage pop-host1-edge-small")!;
    expect(image.state.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(image.state.repoDigest).toMatch(/^registry\.vienna\.example\.org\/switch-vaas\/pop-edge-small@sha256:[0-9a-f]{64}$/);
    expect(image.id).toBe(`${String(image.state.imageId)}registry.vienna.example.org/switch-vaas/pop-edge-small:0.1.0`);
    // One image is one id, on every host; another image is another.
    expect(answered.get("RemoteImage pop-host2-edge-small")!.state.imageId).toBe(image.state.imageId);
    expect(answered.get("RemoteImage pop-host1-edge-vod")!.state.imageId).not.toBe(image.state.imageId);
    // The container runs the image by its id.
    expect(small.state.image).toBe(image.state.imageId);

    const ids = [...answered.entries()].filter(([key]) => key.startsWith("Container") || key.startsWith("Network")).map(([, answer]) => answer.id);
    expect(new Set(ids).size).toBe(ids.length);
    // The same stack keeps its ids.
    expect((await answers("Pulumi.pop-vienna.yaml")).answered.get("Container pop-host1-small")!.id).toBe(small.id);
  });

  it("brings up Vienna and the local PoP with the outputs their config gives, and pop-local's containers on its bridge network", async () => {
    const vienna = await answers("Pulumi.pop-vienna.yaml");
    expect(vienna.outputs).toMatchObject({ loadBalancer: "192.0.2.10", midCache: "192.0.2.11", dns: "192.0.2.12" });
    const local = await answers("Pulumi.pop-local.yaml");
    expect(local.outputs).toMatchObject({ loadBalancer: "172.28.0.10", midCache: "172.28.0.11", dns: "172.28.0.12" });
    expect(local.answered.get("Container pop-local-live")!.state.networkDatas).toEqual([{ networkName: "pop-local", ipAddress: "172.28.0.23", ipPrefixLength: 24, gateway: "172.28.0.1" }]);
  });
});

describe("the local engine's warning for an interrupted Docker create", () => {
  const provider = "urn:pulumi:pop-vienna::switch-vaas::pulumi:providers:docker::pop-host1";
  const container: PendingCreate = {
    urn: "urn:pulumi:pop-vienna::switch-vaas::switch-vaas:cdn-pop:CdnPop$docker:index/container:Container::pop-host1-small",
    type: "docker:index/container:Container",
    custom: true,
    provider: `${provider}::0b0c7f5e-1d2a-4a8e-9c61-000000000001`,
    inputs: { name: "pop-vienna-small" },
  };

  it("names the container to remove and the host it is on", () => {
    const deployment = { resources: [{ urn: provider, type: "pulumi:providers:docker", inputs: { host: "ssh://pop@host1.vienna.example.org" } }] };
    expect(untrackedCreatesWarning([container], deployment)).toBe(
      `1 interrupted create(s) have no id to find their object by (${container.urn}); if it was made, nothing tracks it: remove by hand what was made — docker rm -f pop-vienna-small on ssh://pop@host1.vienna.example.org`,
    );
  });

  it("says whose host it is when its provider names none", () => {
    expect(untrackedCreatesWarning([container], { resources: [] })).toContain("docker rm -f pop-vienna-small on the Docker host of its provider (DOCKER_HOST, or the local daemon)");
  });
});

describe("a cancel that crosses the worker's reply", () => {
  it("answers the cancelled up as cancelled, writes nothing, and never hands the killed worker to the next evaluation", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-vaas-offline-cancel-"));
    // One worker: the next up gets the same process unless the cancel retired it.
    const engine = new OfflineEngine({ dataDir, workers: 1 });
    const cancel = new AbortController();
    // The race as the crash trials met it, made certain: the worker's reply has been read and is
    // about to be handed to the engine when the cancel comes (a stop, in the service).
    // eslint-disable-next-line @typescript-eslint/unbound-method -- put back as it was, and called with the process as `this`
    const emit = ChildProcess.prototype.emit;
    ChildProcess.prototype.emit = function (this: ChildProcess, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "message" && (args[0] as { kind?: string } | undefined)?.kind === "finished" && !cancel.signal.aborted) {
        cancel.abort();
      }
      return emit.apply(this, [event, ...args] as Parameters<typeof emit>);
    };
    try {
      const vienna = popStack("Pulumi.pop-vienna.yaml");
      await expect(engine.up(vienna, { signal: cancel.signal })).rejects.toMatchObject({ kind: "cancelled" });
      expect(await engine.outputs(vienna.stack)).toBeUndefined();
      const events: EngineEvent[] = [];
      await engine.up(vienna, { onEvent: (event) => events.push(event) });
      expect(events.filter((event) => event.type === "change").length).toBeGreaterThan(0);
    } finally {
      ChildProcess.prototype.emit = emit;
      await engine.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
