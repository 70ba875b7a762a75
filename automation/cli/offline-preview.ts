/**
 * `npm run preview -- [stack | path/Pulumi.<stack>.yaml] [--json]`: what a stack would create,
 * evaluated by the offline engine from its stack file (default: stacks/Pulumi.testbed.yaml).
 *
 * `npm run preview -- <stack>... --against <revision> [--json | --markdown]`: the plan diff, what
 * the working tree's change does to each stack against a git revision's program and stack file,
 * both evaluated offline (automation/engine/plan-diff.ts); --markdown renders the pull-request
 * comment. Exits 1 when a stack fails to evaluate on either side (the rest is still printed).
 *
 * Needs no Pulumi CLI, cloud, cluster or secret; creates nothing.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { existsSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { providerName } from "../engine/offline.ts";
import { type StackPlan, type StoodIn, planStack, stackFilesOf, stackOfFile } from "../engine/offline-plan.ts";
import { diffPlans } from "../engine/plan-diff.ts";
import { exitWithUsageError, parseCommandLine } from "./command-line.ts";
import { type PlanDiffReport, type StackDiffReport, renderMarkdown, renderText } from "./plan-diff-report.ts";
import { extractRevision } from "./revision-tree.ts";

const REPOSITORY = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const DEFAULT_STACK = "testbed";
const COMMAND_LINE = {
  name: "preview",
  usage: [
    "usage: npm run preview -- [stack | path/to/Pulumi.<stack>.yaml] [--json]",
    "       npm run preview -- <stack>... --against <git revision> [--json | --markdown]",
    "  stack: a stacks/Pulumi.<stack>.yaml (default testbed), or the path of a stack file",
    "  --against: the plan diff, what the working tree changes against the revision (a branch, tag or commit)",
    "  --markdown: the plan diff as the pull-request comment",
  ].join("\n"),
  options: { json: { type: "boolean", default: false }, markdown: { type: "boolean", default: false }, against: { type: "string" } },
} as const;
const { values, positionals } = parseCommandLine(COMMAND_LINE);
if (values.against === undefined && positionals.length > 1) {
  exitWithUsageError(COMMAND_LINE, [`give one stack, not ${positionals.length} (${positionals.join(", ")}), or several with --against`]);
}
if (values.against === undefined && values.markdown) {
  exitWithUsageError(COMMAND_LINE, ["--markdown renders a plan diff: give --against <revision> too"]);
}
if (values.json && values.markdown) {
  exitWithUsageError(COMMAND_LINE, ["give --json or --markdown, not both"]);
}

try {
  const stacks = (positionals.length === 0 ? [DEFAULT_STACK] : positionals).map(stackFile);
  if (values.against === undefined) {
    const { stack, path } = stacks[0]!;
    const plan = await planStack(REPOSITORY, stack, path);
    if (values.json) {
      const shown = plan.registrations.map(({ type, name, custom, provider, urn }, i) => ({ type, name, custom, urn, ...(provider === undefined ? {} : { provider }), inputs: plan.resources[i]!.inputs }));
      console.log(JSON.stringify({ stack, placeholders: plan.placeholders, referenced: plan.referenced, registrations: shown, outputs: plan.outputs }, null, 2));
    } else {
      printPlan(shownPath(path), plan);
    }
  } else {
    const report = await planDiff(values.against, stacks);
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : values.markdown ? renderMarkdown(report) : renderText(report));
    if (report.stacks.some((stack) => stack.failure !== undefined)) {
      process.exitCode = 1;
    }
  }
} catch (error) {
  // Messages, not stack traces: every refusal here names what to fix. Anything else is a bug,
  // reported by its message alone all the same, since a stack trace can carry config values.
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}

/**
 * Each stack evaluated at the revision and in the working tree. A stack file of this repository is
 * read at each side (a change to it is part of the diff); one from elsewhere is the same file for both.
 */
async function planDiff(revision: string, stacks: { stack: string; path: string }[]): Promise<PlanDiffReport> {
  using tree = extractRevision(REPOSITORY, revision);
  const reports: StackDiffReport[] = [];
  for (const { stack, path } of stacks) {
    const inRepository = relative(REPOSITORY, path);
    const pathAtRevision = inRepository.startsWith("..") ? path : join(tree.root, inRepository);
    const newAtRevision = !existsSync(pathAtRevision);
    const base = { stack, file: shownPath(path), referenced: [] as string[], placeholders: { missing: [], encrypted: [] } as StoodIn };
    let before: StackPlan | undefined;
    try {
      before = newAtRevision ? undefined : await planStack(tree.root, stack, pathAtRevision);
    } catch (error) {
      reports.push({ ...base, failure: { side: "revision", message: messageOf(error) } });
      continue;
    }
    try {
      const after = await planStack(REPOSITORY, stack, path);
      reports.push({
        ...base,
        referenced: after.referenced,
        placeholders: after.placeholders,
        ...(newAtRevision ? { newAtRevision: true as const } : {}),
        diff: diffPlans(before?.resources ?? [], after.resources),
      });
    } catch (error) {
      reports.push({ ...base, failure: { side: "working tree", message: messageOf(error) } });
    }
  }
  return { against: { revision, commit: tree.commit }, notes: tree.notes, stacks: reports };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The stack and its file: a name of stacks/, or a path to a file named as Pulumi names them. */
function stackFile(given: string): { stack: string; path: string } {
  if (given.includes("/") || stackOfFile(given) !== undefined) {
    const name = stackOfFile(basename(given));
    if (name === undefined) {
      throw new InvalidArgumentsError([`${given} is not named Pulumi.<stack>.yaml; name the stack file after its stack, as Pulumi does`]);
    }
    // npm runs scripts in the package's directory; a relative path is the user's, from where npm was run.
    const path = resolve(process.env.INIT_CWD ?? ".", given);
    if (!existsSync(path)) {
      throw new InvalidArgumentsError([`${given} does not exist; give the path of a stack file, or the name of a stack in stacks/`]);
    }
    return { stack: name, path };
  }
  const files = stackFilesOf(REPOSITORY);
  const path = files.get(given);
  if (path === undefined) {
    throw new InvalidArgumentsError([`stack "${given}" has no stacks/Pulumi.${given}.yaml; use one of ${[...files.keys()].join(", ")}`]);
  }
  return { stack: given, path };
}

function shownPath(path: string): string {
  const inRepository = relative(REPOSITORY, path);
  return inRepository.startsWith("..") ? path : inRepository;
}

function printPlan(path: string, plan: StackPlan): void {
  const { stack: stackName, registrations, outputs, placeholders: stoodIn } = plan;
  console.log(`Offline preview of stack "${stackName}" (${path}).`);
  console.log("Nothing was created: this is what `pulumi up` would register. Values only a deployment knows read (known after up).");
  if (stoodIn.missing.length > 0) {
    console.log(`Not set, so a placeholder stood in (pulumi up needs the real ones): ${stoodIn.missing.join(", ")}.`);
  }
  if (stoodIn.encrypted.length > 0) {
    console.log(`Encrypted in the stack file, so a placeholder stood in (offline, nothing is decrypted; pulumi up uses the real ones): ${stoodIn.encrypted.join(", ")}.`);
  }
  if (plan.referenced.length > 0) {
    console.log(`Reads ${plan.referenced.map((name) => `stack "${name}"`).join(", ")}: evaluated offline from its file in stacks/ to answer it.`);
  }
  console.log(`\nResources (${registrations.length}):`);
  const width = registrations.reduce((widest, registration) => Math.max(widest, registration.type.length), 0);
  for (const registration of registrations) {
    const via = registration.provider === undefined ? "" : `  (provider ${providerName(registration) ?? "?"})`;
    console.log(`  + ${registration.type.padEnd(width)}  ${registration.name}${via}`);
  }
  const byType = new Map<string, number>();
  for (const registration of registrations) {
    byType.set(registration.type, (byType.get(registration.type) ?? 0) + 1);
  }
  console.log(`\nBy type:`);
  for (const [type, count] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`  ${String(count).padStart(4)}  ${type}`);
  }
  console.log(`\nOutputs:\n${JSON.stringify(outputs, null, 2)}`);
}
