import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCli } from "../support/cli.ts";

/** Runs the command the way npm does. */
const preview = (...args: string[]) => runCli("offline-preview.ts", ...args);

interface Plan {
  registrations: { type: string; name: string; inputs: Record<string, unknown> }[];
  outputs: { clusters: Record<string, { kubeconfig: unknown; exposure: string }> };
}

describe("offline preview (npm run preview)", () => {
  it("plans the paper's testbed from its embedded defaults, secrets masked", async () => {
    const { stdout, code } = await preview("testbed", "--json");
    expect(code).toBe(0);
    const plan = JSON.parse(stdout) as Plan;
    expect(plan.registrations).toHaveLength(72);
    expect(plan.registrations.filter((r) => r.type === "gcp:container/cluster:Cluster")).toHaveLength(5);
    expect(Object.keys(plan.outputs.clusters)).toHaveLength(7);
    for (const cluster of Object.values(plan.outputs.clusters)) {
      expect(cluster.kubeconfig).toBe("[secret]");
    }
    for (const provider of plan.registrations.filter((r) => r.type === "pulumi:providers:kubernetes")) {
      expect(provider.inputs.kubeconfig, provider.name).toMatch(/^\[secret\]$|^\(known after up\)$/);
    }
    expect(stdout).not.toContain("not readable offline");
  });

  it("says which kubeconfigs it stood in for, in the human-readable plan", async () => {
    const { stdout, code } = await preview();
    expect(code).toBe(0);
    expect(stdout).toContain("Nothing was created");
    expect(stdout).toContain("Not set, so a placeholder stood in (pulumi up needs the real ones): switch-vaas:kubeconfigs.flexiops-edinburgh, switch-vaas:kubeconfigs.arnes-ljubljana.");
    expect(stdout).toContain("Resources (72):");
  });

  it("plans the one-machine stack", async () => {
    const { stdout, code } = await preview("local", "--json");
    expect(code).toBe(0);
    const plan = JSON.parse(stdout) as Plan;
    expect(Object.keys(plan.outputs.clusters)).toEqual(["local"]);
    expect(plan.outputs.clusters.local?.exposure).toBe("nodePort");
  });

  it("plans the Vienna PoP: eleven containers on three hosts", async () => {
    const { stdout, code } = await preview("pop-vienna", "--json");
    expect(code).toBe(0);
    const plan = JSON.parse(stdout) as Plan;
    expect(plan.registrations.filter((r) => r.type === "docker:index/container:Container")).toHaveLength(11);
    expect(stdout).not.toContain("offline-placeholder-not-a-key");
    expect(plan.registrations.filter((r) => r.type === "pulumi:providers:docker")).toHaveLength(3);
  });

  it("previews a conference against its testbed, which it evaluates offline from stacks/", async () => {
    const { stdout, code } = await preview("conf-demo", "--json");
    expect(code).toBe(0);
    const plan = JSON.parse(stdout) as Plan & { referenced: string[] };
    expect(plan.referenced).toEqual(["testbed"]);
    expect(plan.registrations.filter((r) => r.type === "kubernetes:apps/v1:Deployment")).toHaveLength(1);
    expect(plan.registrations.find((r) => r.type === "pulumi:providers:kubernetes")?.inputs.kubeconfig).toBe("[secret]");
  });

  it("says plainly when the testbed a conference reads has no stack file to evaluate", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "offline-preview-")), "Pulumi.conf-elsewhere.yaml");
    writeFileSync(path, readFileSync(join(import.meta.dirname, "..", "..", "stacks", "Pulumi.conf-demo.yaml"), "utf8").replace("organization/switch-vaas/testbed", "organization/switch-vaas/elsewhere"));
    const { stderr, code } = await preview(path);
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('conf-elsewhere: the stack "organization/switch-vaas/elsewhere" it reads cannot be evaluated offline: stacks/ has no Pulumi.elsewhere.yaml to evaluate in its place');
  });

  it("previews a stack file given by its path, named after its stack", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "offline-preview-")), "Pulumi.mine.yaml");
    copyFileSync(join(import.meta.dirname, "..", "..", "stacks", "Pulumi.local.yaml"), path);
    const { stdout, code } = await preview(path);
    expect(code).toBe(0);
    expect(stdout).toContain(`Offline preview of stack "mine" (${path}).`);
    expect(stdout).toContain("Not set, so a placeholder stood in (pulumi up needs the real ones): switch-vaas:kubeconfigs.local.");
  });

  it("takes one stack, with exit 2 and the usage for more", async () => {
    const { stderr, code } = await preview("testbed", "local");
    expect(code).toBe(2);
    expect(stderr.split("\n")[0]).toBe("preview: give one stack, not 2 (testbed, local), or several with --against");
    expect(stderr).toContain("usage: npm run preview --");
  });

  it("fails with a clear message, and a non-zero exit, for a stack that does not exist", async () => {
    const { stderr, code } = await preview("nope");
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('stack "nope" has no stacks/Pulumi.nope.yaml; use one of conf-demo, conf-local, local, pop-local, pop-vienna, testbed');
  });
});
