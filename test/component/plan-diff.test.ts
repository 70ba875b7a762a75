import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PlanDiffReport, StackDiffReport } from "../../automation/cli/plan-diff-report.ts";
import type { ResourceDiff } from "../../automation/engine/plan-diff.ts";
import { runScript } from "../support/cli.ts";

/**
 * The plan diff (`npm run preview -- <stack> --against <revision>`) run on changes made in a
 * throwaway copy of this working tree, each its own commit, as a pull request would make them.
 * The tests build on each other's commits, in order: run the file whole.
 */

const REPOSITORY = join(import.meta.dirname, "..", "..");
/** The rendered pull-request comment for the changes below, kept for a reader (gitignored). */
const COMMENT_ARTIFACT = join(REPOSITORY, "test-artifacts", "plan-diff", "comment.md");
const EXAMPLE_STACKS = ["testbed", "local", "conf-demo", "pop-vienna", "pop-local"];
/** Planted in a stack file as a TLS key: it must never be printed. */
const PLANTED_KEY = "PLANTED-PRIVATE-KEY-9f2c41d7";

let clone: string;
let baseCommit: string;

const git = (...args: string[]) => execFileSync("git", ["-C", clone, ...args], { encoding: "utf8" }).trim();

/** Edits files of the clone (each a function of its text), then commits them. */
function commit(message: string, edits: Record<string, (text: string) => string>): void {
  for (const [file, edit] of Object.entries(edits)) {
    const path = join(clone, file);
    const before = readFileSync(path, "utf8");
    const after = edit(before);
    // An edit that no longer matches would diff nothing and pass for the wrong reason.
    expect(after, `${file}: the edit "${message}" changed nothing`).not.toBe(before);
    writeFileSync(path, after);
  }
  git("commit", "--quiet", "-am", message);
}

function replaceOnce(text: string, from: string, to: string): string {
  expect(text.split(from), `"${from}" once`).toHaveLength(2);
  return text.replace(from, to);
}

async function planDiff(against: string, ...args: string[]): Promise<{ report: PlanDiffReport; stdout: string; code: number | null }> {
  const { stdout, stderr, code } = await runScript("automation/cli/offline-preview.ts", [...args, "--against", against, "--json"], { cwd: clone });
  expect(stderr).toBe("");
  return { report: JSON.parse(stdout) as PlanDiffReport, stdout, code };
}

function stackOf(report: PlanDiffReport, stack: string): StackDiffReport {
  const found = report.stacks.find((candidate) => candidate.stack === stack);
  expect(found?.failure, JSON.stringify(found?.failure)).toBeUndefined();
  return found!;
}

/** The changed resources, as "action type name". */
function changes(stack: StackDiffReport): string[] {
  return stack.diff!.resources.filter((resource) => resource.action !== "same").map((resource) => `${resource.action} ${resource.type} ${resource.name}`);
}

function resource(stack: StackDiffReport, type: string, name: string): ResourceDiff {
  const found = stack.diff!.resources.find((candidate) => candidate.type === type && candidate.name === name);
  expect(found, `${type} ${name}`).toBeDefined();
  return found!;
}

beforeAll(() => {
  clone = mkdtempSync(join(tmpdir(), "switch-vaas-plan-diff-"));
  // The working tree as it is (tracked and new files), so the diff tested is this one's.
  const files = execFileSync("git", ["-C", REPOSITORY, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], { encoding: "utf8" }).split("\0").filter(Boolean);
  // A tracked file deleted in the working tree is listed still, and left out.
  for (const file of files.filter((name) => existsSync(join(REPOSITORY, name)))) {
    mkdirSync(dirname(join(clone, file)), { recursive: true });
    cpSync(join(REPOSITORY, file), join(clone, file), { dereference: false, errorOnExist: false, force: true });
  }
  symlinkSync(join(REPOSITORY, "node_modules"), join(clone, "node_modules"), "dir");
  execFileSync("git", ["init", "--quiet", "--initial-branch=main", clone]);
  git("config", "user.email", "test@switch-vaas.invalid");
  git("config", "user.name", "plan-diff test");
  git("add", "--all");
  git("commit", "--quiet", "-m", "base");
  baseCommit = git("rev-parse", "HEAD");
});

afterAll(() => {
  rmSync(clone, { recursive: true, force: true });
});

// Each test runs the command two or three times, each evaluating up to ten programs.
describe("plan diff (npm run preview -- <stack> --against <revision>)", { timeout: 120_000 }, () => {
  it("finds no change between a revision and itself, for every example stack", async () => {
    const { report, code } = await planDiff("HEAD", ...EXAMPLE_STACKS);
    expect(code).toBe(0);
    expect(report.against.commit).toBe(baseCommit);
    for (const stack of EXAMPLE_STACKS) {
      const found = stackOf(report, stack);
      expect(changes(found), stack).toEqual([]);
      expect(found.diff!.summary.same, stack).toBeGreaterThan(5);
    }
    // The conference reads its testbed, which is evaluated offline to answer it.
    expect(stackOf(report, "conf-demo").referenced).toEqual(["testbed"]);
  });

  it("a larger JVB share of the pod's memory: the Deployment is updated in place, its limits and heap shown", async () => {
    // jicofo sits at its floor in a 2 GiB pod; a lower floor leaves the bridge the difference.
    commit("jicofo gives the JVB memory", { "domain/jitsi.ts": (text) => replaceOnce(text, "jicofo: { millicores: 200, bytes: 384 * MEBIBYTE }", "jicofo: { millicores: 200, bytes: 256 * MEBIBYTE }") });
    const { report, stdout } = await planDiff("HEAD~1", "conf-demo", "testbed");
    expect(changes(stackOf(report, "testbed"))).toEqual([]);
    const conference = stackOf(report, "conf-demo");
    expect(changes(conference)).toEqual(["update kubernetes:apps/v1:Deployment conf-demo"]);
    const deployment = resource(conference, "kubernetes:apps/v1:Deployment", "conf-demo");
    expect(deployment.rulesKnown).toBe(true);
    // jicofo's and the bridge's memory (limit and request, Guaranteed QoS) and both JVMs' heaps.
    expect(deployment.inputs.map((input) => input.path)).toEqual([
      expect.stringMatching(/^spec\.template\.spec\.containers\[2\]\{jicofo\}\.env\[\d+\]\{JICOFO_MAX_MEMORY\}\.value$/),
      "spec.template.spec.containers[2]{jicofo}.resources.limits.memory",
      "spec.template.spec.containers[2]{jicofo}.resources.requests.memory",
      expect.stringMatching(/^spec\.template\.spec\.containers\[3\]\{jvb\}\.env\[\d+\]\{VIDEOBRIDGE_MAX_MEMORY\}\.value$/),
      "spec.template.spec.containers[3]{jvb}.resources.limits.memory",
      "spec.template.spec.containers[3]{jvb}.resources.requests.memory",
    ]);
    const limits = deployment.inputs.filter((input) => input.path.endsWith("limits.memory"));
    expect(parseMiB(limits[0]!.after)).toBeLessThan(parseMiB(limits[0]!.before));
    expect(parseMiB(limits[1]!.after)).toBeGreaterThan(parseMiB(limits[1]!.before));
    expect(stdout).not.toContain("[secret] changed");
  });

  it("a new NetworkPolicy rule: the policy is updated, the rule shown as the item added", async () => {
    commit("metrics port open to the cluster", {
      "components/conference/jitsi-conference.ts": (text) =>
        replaceOnce(
          text,
          `          ingress: [
            {`,
          `          ingress: [
            { from: [{ ipBlock: { cidr: "10.0.0.0/8" } }], ports: [{ protocol: "TCP", port: 8080 }] },
            {`,
        ),
    });
    const { report } = await planDiff("HEAD~1", "conf-demo");
    const conference = stackOf(report, "conf-demo");
    expect(changes(conference)).toEqual(["update kubernetes:networking.k8s.io/v1:NetworkPolicy conf-demo-allow-public"]);
    const policy = resource(conference, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "conf-demo-allow-public");
    expect(policy.inputs).toEqual([{ path: "spec.ingress", removed: [], added: [{ from: [{ ipBlock: { cidr: "10.0.0.0/8" } }], ports: [{ protocol: "TCP", port: 8080 }] }] }]);
  });

  it("a new PoP host: its provider, network and containers are created, and its report key named as a placeholder", async () => {
    commit("a fourth host in Vienna", {
      "stacks/Pulumi.pop-vienna.yaml": (text) =>
        replaceOnce(
          replaceOnce(
            replaceOnce(
              text,
              "    layout:\n",
              `      - name: host4
        dockerHost: ssh://pop@host4.vienna.example.org
        sshOpts: ["-o", "StrictHostKeyChecking=yes"]
        parentInterface: eth0
        subnet: 192.0.2.0/24
        gateway: 192.0.2.1
    layout:
`,
            ),
            "      host3: [small]\n",
            "      host3: [small]\n      host4: [live]\n",
          ),
          "      host3/small: 192.0.2.24\n",
          "      host3/small: 192.0.2.24\n      host4/im: 192.0.2.34\n      host4/live: 192.0.2.25\n",
        ),
    });
    const { report } = await planDiff("HEAD~1", "pop-vienna", "pop-local");
    expect(changes(stackOf(report, "pop-local"))).toEqual([]);
    const pop = stackOf(report, "pop-vienna");
    expect(changes(pop).toSorted()).toEqual([
      "create docker:index/container:Container pop-host4-im",
      "create docker:index/container:Container pop-host4-live",
      "create docker:index/network:Network pop-host4",
      "create docker:index/remoteImage:RemoteImage pop-host4-edge-live",
      "create docker:index/remoteImage:RemoteImage pop-host4-instance-manager",
      "create pulumi:providers:docker pop-host4",
      // The load balancer's nginx.conf and the DNS's hosts learn the live edge: an upload is ForceNew.
      "replace docker:index/container:Container pop-host1-lb",
      "replace docker:index/container:Container pop-host3-dns",
    ]);
    const balancer = resource(pop, "docker:index/container:Container", "pop-host1-lb");
    expect(balancer.replacedBecause).toEqual(["uploads[0].content"]);
    expect(balancer.inputs.map((input) => input.path)).toEqual(["uploads[0].content"]);
    expect(balancer.inputs[0]!.lines).toEqual(expect.arrayContaining(["-    server 192.0.2.11:80 max_fails=2 fail_timeout=10s;", "+    server 192.0.2.25:80 max_fails=2 fail_timeout=10s;"]));
    expect(resource(pop, "docker:index/container:Container", "pop-host3-dns").inputs[0]!.lines).toContain("+host-record=live.vienna.cdn.example.org,192.0.2.25");
    expect(pop.placeholders.missing).toContain("switch-vaas:reportKeys.host4");
  });

  it("a renamed component type: everything under it is deleted and created, each with the URN it moved from", async () => {
    commit("JitsiConference is renamed", {
      "components/conference/jitsi-conference.ts": (text) => replaceOnce(text, 'super("switch-vaas:conference:JitsiConference"', 'super("switch-vaas:conference:Conference"'),
    });
    const { report } = await planDiff("HEAD~1", "conf-demo");
    const conference = stackOf(report, "conf-demo");
    const created = conference.diff!.resources.filter((found) => found.action === "create");
    const deleted = conference.diff!.resources.filter((found) => found.action === "delete");
    // The component and its nine Kubernetes objects; the provider and the stack reference sit at the top.
    expect(created).toHaveLength(10);
    expect(deleted).toHaveLength(10);
    expect(conference.diff!.summary.same).toBe(1);
    for (const found of created.filter((found) => found.custom)) {
      expect(found.urn).toContain("::switch-vaas:conference:Conference$");
      expect(found.movedFrom, found.name).toBe(found.urn.replace("::switch-vaas:conference:Conference$", "::switch-vaas:conference:JitsiConference$"));
    }
  });

  it("the same rename with an alias: nothing changes", async () => {
    commit("the rename keeps its resources", {
      "components/conference/jitsi-conference.ts": (text) =>
        replaceOnce(text, 'super("switch-vaas:conference:Conference", name, {}, opts)', 'super("switch-vaas:conference:Conference", name, {}, { ...opts, aliases: [{ type: "switch-vaas:conference:JitsiConference" }] })'),
    });
    const { report } = await planDiff("HEAD~2", "conf-demo");
    const conference = stackOf(report, "conf-demo");
    expect(changes(conference)).toEqual([]);
    const component = resource(conference, "switch-vaas:conference:Conference", "conf-demo");
    expect(component.was).toContain("::switch-vaas:conference:JitsiConference::conf-demo");
  });

  it("masks a secret that changed, and never prints it", async () => {
    const stackFile = join(clone, "stacks", "Pulumi.conf-tls.yaml");
    const tls = (key: string) => `  switch-vaas:tls:\n    domain: conf.example.org\n    certificate: "-----BEGIN CERTIFICATE-----\\nAAAA\\n-----END CERTIFICATE-----\\n"\n    key: "-----BEGIN PRIVATE KEY-----\\n${key}\\n-----END PRIVATE KEY-----\\n"\n`;
    writeFileSync(stackFile, readFileSync(join(clone, "stacks", "Pulumi.conf-demo.yaml"), "utf8").replace("config:\n", `config:\n${tls(`${PLANTED_KEY}-old`)}`));
    // -f: the repository ignores conference stack files other than its examples.
    git("add", "-f", stackFile);
    git("commit", "--quiet", "-m", "a conference with TLS");
    commit("its key is rotated", { "stacks/Pulumi.conf-tls.yaml": (text) => replaceOnce(text, `${PLANTED_KEY}-old`, `${PLANTED_KEY}-new`) });
    const { report, stdout } = await planDiff("HEAD~1", "conf-tls");
    const conference = stackOf(report, "conf-tls");
    const secret = conference.diff!.resources.find((found) => found.action !== "same" && found.type === "kubernetes:core/v1:Secret");
    expect(secret?.name).toBe("conf-demo-tls");
    expect(secret?.inputs).toEqual([{ path: "stringData", secret: true }]);
    expect(secret?.action).toBe("replace");
    for (const format of [[], ["--markdown"]]) {
      const { stdout: shown } = await runScript("automation/cli/offline-preview.ts", ["conf-tls", "--against", "HEAD~1", ...format], { cwd: clone });
      expect(shown).toContain("[secret] changed");
      expect(shown).not.toContain(PLANTED_KEY);
    }
    expect(stdout).not.toContain(PLANTED_KEY);
    // The detector: the key is in the stack file the diff read.
    expect(readFileSync(stackFile, "utf8")).toContain(PLANTED_KEY);
  });

  it("renders the pull-request comment for all of these changes (kept as a test artifact)", async () => {
    const { stdout, code } = await runScript("automation/cli/offline-preview.ts", [...EXAMPLE_STACKS, "--against", baseCommit, "--markdown"], { cwd: clone });
    expect(code).toBe(0);
    mkdirSync(dirname(COMMENT_ARTIFACT), { recursive: true });
    writeFileSync(COMMENT_ARTIFACT, stdout);
    console.log(`plan-diff comment: ${COMMENT_ARTIFACT}`);
    expect(stdout.split("\n")[0]).toBe("<!-- switch-vaas plan diff -->");
    expect(stdout).toContain(`### Plan diff against \`${baseCommit}\``);
    expect(stdout).toMatch(/\| `testbed` \| 0 \| 0 \| 0 \| 0 \| 72 \|/);
    expect(stdout).toMatch(/\| `conf-demo` \| 0 \| 2 \| 0 \| 0 \| 9 \|/);
    expect(stdout).toContain("+ create   pulumi:providers:docker  pop-host4");
    expect(stdout).toContain("~ update   kubernetes:networking.k8s.io/v1:NetworkPolicy  conf-demo-allow-public");
    expect(stdout).toContain('+         {"from":[{"ipBlock":{"cidr":"10.0.0.0/8"}}],"ports":[{"port":8080,"protocol":"TCP"}]}');
  });

  it("refuses a revision the repository does not have, naming it", async () => {
    const { stderr, code } = await runScript("automation/cli/offline-preview.ts", ["testbed", "--against", "no-such-branch"], { cwd: clone });
    expect(code).toBe(1);
    expect(stderr).toContain("--against no-such-branch: no such commit in");
  });

  it("says which side's program fails, and goes on with the other stacks", async () => {
    commit("a broken testbed program", { "stacks/testbed.ts": (text) => replaceOnce(text, "export default async function", 'export default async function broken() {\n  throw new Error("broken on purpose");\n}\nasync function') });
    const { report, code } = await planDiff("HEAD~1", "testbed", "pop-local");
    expect(code).toBe(1);
    const failure = report.stacks.find((stack) => stack.stack === "testbed")?.failure;
    expect(failure?.side).toBe("working tree");
    expect(failure?.message).toContain("broken on purpose");
    expect(changes(stackOf(report, "pop-local"))).toEqual([]);
  });
});

/** A memory quantity as the program writes it: bytes, or whole MiB. */
function parseMiB(value: unknown): number {
  const match = /^(\d+)(Mi)?$/.exec(String(value));
  expect(match, String(value)).not.toBeNull();
  return match![2] === undefined ? Number(match![1]) / 2 ** 20 : Number(match![1]);
}
