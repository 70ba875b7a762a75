import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { e2eWorld } from "./support.ts";

/**
 * What a reviewer reads on a pull request: `pulumi preview` run by the CLI on the project's
 * Pulumi.yaml (main stacks/index.ts), through the Node.js language host, for the `local` stack —
 * set up the way the README says, against the local cluster.
 */

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

/**
 * The project as a checkout has it, in a directory of its own: the stack file gets the stack's
 * encryption salt and secrets, which must not land in the repository's copy.
 */
function checkout(): string {
  const dir = mkdtempSync(join(tmpdir(), "switch-vaas-checkout-"));
  for (const entry of ["Pulumi.yaml", "package.json"]) {
    copyFileSync(join(root, entry), join(dir, entry));
  }
  for (const entry of ["node_modules", "domain", "components"]) {
    symlinkSync(join(root, entry), join(dir, entry));
  }
  mkdirSync(join(dir, "stacks"));
  for (const file of readdirSync(join(root, "stacks"))) {
    if (file.endsWith(".ts")) {
      symlinkSync(join(root, "stacks", file), join(dir, "stacks", file));
    }
  }
  copyFileSync(join(root, "stacks", "Pulumi.local.yaml"), join(dir, "stacks", "Pulumi.local.yaml"));
  return dir;
}

interface PreviewStep {
  op: string;
  urn: string;
}

describe("pulumi preview of the local stack, by the CLI", () => {
  it("plans the testbed's bootstrap through the cluster's own provider", async () => {
    const { kubeconfig, backendUrl, envVars } = e2eWorld();
    const cwd = checkout();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...envVars,
      PULUMI_BACKEND_URL: backendUrl,
    };
    // Nothing of the test's own node options: the CLI runs the program as it runs for a user. The
    // toolchain's language host (sdk v3.68.0, scripts/toolchain/versions.env) passes no nodeargs;
    // Node 24 strips the program's types itself.
    delete env.NODE_OPTIONS;
    const pulumi = (...args: string[]) => run("pulumi", [...args, "--non-interactive"], { cwd, env, maxBuffer: 64 * 1024 * 1024 });
    await pulumi("stack", "init", "local", "--secrets-provider", "passphrase");
    // As the README has it: pulumi config set --secret --path 'kubeconfigs.local' "$(kind get kubeconfig)".
    await pulumi("config", "set", "--secret", "--path", "kubeconfigs.local", kubeconfig, "--stack", "local");
    const { stdout } = await pulumi("preview", "--stack", "local", "--json");
    const plan = JSON.parse(stdout) as { steps: PreviewStep[]; diagnostics?: { severity: string; message: string }[] };
    // urn:pulumi:<stack>::<project>::<parent types, $-joined>$<type>::<name>
    const created = plan.steps.filter((step) => step.op === "create").map((step) => {
      const [, , types = "", name] = step.urn.split("::");
      return `${types.split("$").at(-1)}::${name}`;
    });
    expect(created.sort()).toEqual(
      [
        "pulumi:pulumi:Stack::switch-vaas-local",
        "switch-vaas:testbed:Testbed::testbed",
        "switch-vaas:testbed:ExistingCluster::local",
        "pulumi:providers:kubernetes::local",
        "switch-vaas:testbed:ClusterBootstrap::local",
        "kubernetes:core/v1:Namespace::local-system",
        "kubernetes:core/v1:ServiceAccount::local-deployer",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole::local-deployer",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding::local-deployer",
        "kubernetes:scheduling.k8s.io/v1:PriorityClass::local-conference",
      ].sort(),
    );
    expect((plan.diagnostics ?? []).filter((diagnostic) => diagnostic.severity === "error")).toEqual([]);
    // The kubeconfig went in as a secret and comes out as one.
    expect(stdout).not.toContain(kubeconfig.split("\n").find((line) => line.includes("client-key-data")) ?? "client-key-data-absent");

    // Bad config: the program's one line, naming the key and the fix, and no stack trace.
    await pulumi("config", "set", "--path", "sites[0].nodes", "0", "--stack", "local");
    const failed = await pulumi("preview", "--stack", "local").then(
      () => undefined,
      (error: unknown) => error as { stdout: string; stderr: string },
    );
    expect(failed?.stdout).toContain("switch-vaas:sites[0].nodes 0 is not allowed; give a whole number of nodes of at least 1");
    expect(`${failed?.stdout}${failed?.stderr}`).not.toMatch(/^\s+at /m);
  });
});
