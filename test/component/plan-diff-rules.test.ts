import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { evaluateOffline } from "../../automation/engine/offline.ts";
import { plannedResources } from "../../automation/engine/offline-plan.ts";
import { type PlanDiff, diffPlans } from "../../automation/engine/plan-diff.ts";

/**
 * The plan diff's identity and replacement rules, on small programs: which resource is which
 * (URNs, aliases, inherited aliases) and how a change is taken (update, replacement, ignored).
 */

class Box extends pulumi.ComponentResource {
  constructor(type: string, name: string, build: (box: Box) => void, opts?: pulumi.ComponentResourceOptions) {
    super(type, name, {}, opts);
    build(this);
  }
}

class Provider extends pulumi.ProviderResource {
  constructor(name: string) {
    super("kubernetes", name, {});
  }
}

class Thing extends pulumi.CustomResource {
  constructor(type: string, name: string, args: Record<string, pulumi.Input<unknown>>, opts?: pulumi.CustomResourceOptions) {
    super(type, name, args, opts);
  }
}

const CONFIG_MAP = "kubernetes:core/v1:ConfigMap";
const DEPLOYMENT = "kubernetes:apps/v1:Deployment";

async function plan(program: () => void) {
  const { registrations } = await evaluateOffline(async () => {
    program();
    return {};
  }, { stack: "rules" });
  return { registrations, resources: plannedResources(registrations) };
}

async function diff(before: () => void, after: () => void): Promise<PlanDiff> {
  return diffPlans((await plan(before)).resources, (await plan(after)).resources);
}

/** "action name" of each resource, sorted: registrations finish in an order the runtime chooses. */
const actions = (found: PlanDiff) => found.resources.map((resource) => `${resource.action} ${resource.name}`).toSorted();
const byName = (found: PlanDiff) => found.resources.toSorted((a, b) => a.name.localeCompare(b.name));

describe("plan diff rules", () => {
  it("names a child by its parent's whole type chain, as the engine does (the mock monitor keeps only the last link)", async () => {
    const { registrations } = await plan(() => {
      new Box("test:index:Outer", "outer", (outer) => {
        new Box("test:index:Inner", "inner", (inner) => {
          new Thing(CONFIG_MAP, "leaf", {}, { parent: inner });
        }, { parent: outer });
      });
    });
    expect(registrations.map((registration) => registration.urn)).toEqual([
      "urn:pulumi:rules::switch-vaas::test:index:Outer::outer",
      "urn:pulumi:rules::switch-vaas::test:index:Outer$test:index:Inner::inner",
      `urn:pulumi:rules::switch-vaas::test:index:Outer$test:index:Inner$${CONFIG_MAP}::leaf`,
    ]);
    expect(registrations[2]!.parent).toBe(registrations[1]!.urn);
  });

  it("a component renamed with an alias keeps its children, those named after it renamed with it", async () => {
    const build = (name: string, opts?: pulumi.ComponentResourceOptions) => () => {
      new Box("test:index:Site", name, (site) => {
        new Thing(CONFIG_MAP, `${name}-config`, { data: { a: "1" } }, { parent: site });
        new Thing(CONFIG_MAP, "shared", { data: { b: "2" } }, { parent: site });
      }, opts);
    };
    const withoutAlias = await diff(build("old"), build("new"));
    // A URN holds its parent's type, not its name: the child not named after its parent stays.
    expect(actions(withoutAlias)).toEqual(["create new", "create new-config", "delete old", "delete old-config", "same shared"]);
    expect(withoutAlias.resources.find((resource) => resource.name === "new-config")?.movedFrom).toBe(`urn:pulumi:rules::switch-vaas::test:index:Site$${CONFIG_MAP}::old-config`);
    const withAlias = await diff(build("old"), build("new", { aliases: [{ name: "old" }] }));
    expect(actions(withAlias)).toEqual(["same new", "same new-config", "same shared"]);
    expect(withAlias.resources.find((resource) => resource.name === "new-config")?.was).toBe(`urn:pulumi:rules::switch-vaas::test:index:Site$${CONFIG_MAP}::old-config`);
    expect(withAlias.summary).toEqual({ create: 0, update: 0, replace: 0, delete: 0, same: 3 });
  });

  it("updates in place what the provider updates, replaces on a field it forces, and says which", async () => {
    const found = await diff(
      () => {
        new Thing(DEPLOYMENT, "app", { spec: { replicas: 1, selector: { matchLabels: { app: "a" } } } });
        new Thing(CONFIG_MAP, "config", { data: { "nginx.conf": "worker_processes 1;\nevents {}\n" } });
      },
      () => {
        new Thing(DEPLOYMENT, "app", { spec: { replicas: 2, selector: { matchLabels: { app: "a" } } } });
        new Thing(CONFIG_MAP, "config", { data: { "nginx.conf": "worker_processes 2;\nevents {}\n" } });
      },
    );
    expect(byName(found).map(({ action, name, replacedBecause, inputs }) => ({ action, name, replacedBecause, inputs }))).toEqual([
      { action: "update", name: "app", replacedBecause: undefined, inputs: [{ path: "spec.replicas", before: 1, after: 2 }] },
      {
        action: "replace",
        name: "config",
        replacedBecause: ['data["nginx.conf"]'],
        inputs: [{ path: 'data["nginx.conf"]', lines: ["@@ -1,2 +1,2 @@", "-worker_processes 1;", "+worker_processes 2;", " events {}"] }],
      },
    ]);
  });

  it("follows ignoreChanges and replaceOnChanges as the engine does", async () => {
    const found = await diff(
      () => {
        new Thing(DEPLOYMENT, "ignored", { spec: { replicas: 1 } }, { ignoreChanges: ["spec.replicas"] });
        new Thing(DEPLOYMENT, "forced", { spec: { replicas: 1 } }, { replaceOnChanges: ["spec.replicas"] });
      },
      () => {
        new Thing(DEPLOYMENT, "ignored", { spec: { replicas: 3 } }, { ignoreChanges: ["spec.replicas"] });
        new Thing(DEPLOYMENT, "forced", { spec: { replicas: 3 } }, { replaceOnChanges: ["spec.replicas"] });
      },
    );
    expect(actions(found)).toEqual(["replace forced", "same ignored"]);
    expect(found.resources.find((resource) => resource.name === "forced")?.replacedBecause).toEqual(["spec.replicas"]);
  });

  it("replaces a resource whose provider changed, and says when a type's rules are unknown offline", async () => {
    const found = await diff(
      () => {
        const provider = new Provider("east");
        new Thing(DEPLOYMENT, "app", {}, { provider });
        new Thing("gcp:container/cluster:Cluster", "cluster", { nodeConfig: { machineType: "n1-standard-1" } });
      },
      () => {
        const provider = new Provider("west");
        new Thing(DEPLOYMENT, "app", {}, { provider });
        new Thing("gcp:container/cluster:Cluster", "cluster", { nodeConfig: { machineType: "n1-standard-2" } });
      },
    );
    expect(actions(found)).toEqual(["create west", "delete east", "replace app", "update cluster"]);
    expect(found.resources.find((resource) => resource.name === "app")?.replacedBecause).toEqual(["its provider changed"]);
    expect(found.resources.find((resource) => resource.name === "cluster")?.rulesKnown).toBe(false);
  });

  it("tells a changed secret from an unchanged one without showing either", async () => {
    const found = await diff(
      () => {
        new Thing(CONFIG_MAP, "same", { password: pulumi.secret("kept-secret-value") });
        new Thing(CONFIG_MAP, "rotated", { password: pulumi.secret("old-secret-value") });
      },
      () => {
        new Thing(CONFIG_MAP, "same", { password: pulumi.secret("kept-secret-value") });
        new Thing(CONFIG_MAP, "rotated", { password: pulumi.secret("new-secret-value") });
      },
    );
    expect(actions(found)).toEqual(["same same", "update rotated"]);
    expect(found.resources.find((resource) => resource.name === "rotated")?.inputs).toEqual([{ path: "password", secret: true }]);
    expect(JSON.stringify(found)).not.toMatch(/secret-value/);
  });
});
