import type { StoodIn } from "../engine/offline-plan.ts";
import { type InputChange, PLAN_ACTIONS, type PlanAction, type PlanDiff, type ResourceDiff } from "../engine/plan-diff.ts";

/**
 * A plan diff of one or more stacks, as `npm run preview -- … --against <revision>` prints it: for
 * a terminal, as JSON, or as the Markdown of the pull-request comment (.github/workflows/plan-diff.yml).
 */

export interface StackDiffReport {
  stack: string;
  /** The working tree's stack file, as shown. */
  file: string;
  /** Where a side's program refused or failed: the message alone (the programs name keys, never values). */
  failure?: { side: "working tree" | "revision"; message: string };
  /** Absent where a side failed. */
  diff?: PlanDiff;
  /** The revision has no such stack file: everything is created. */
  newAtRevision?: true;
  /** Placeholders that stood in for secrets in the working tree's evaluation. */
  placeholders: StoodIn;
  /** Stacks evaluated to answer this one's stack references. */
  referenced: string[];
}

export interface PlanDiffReport {
  against: { revision: string; commit: string };
  notes: string[];
  stacks: StackDiffReport[];
}

/** The first line of every comment: how the workflow finds its own comment to edit. */
export const COMMENT_MARKER = "<!-- switch-vaas plan diff -->";

const SYMBOL: Record<PlanAction, string> = { create: "+", update: "~", replace: "±", delete: "-", same: " " };
/** A long text's diff or a list's items are cut here: the comment is for reading, the JSON has it all. */
const MAX_LINES_PER_INPUT = 40;

const HOW =
  "Both sides are evaluated offline from the stack files, as `pulumi up` would register them; nothing is read from a deployment, so drift and what only a provider decides at run time do not show. Secrets are masked; values only a deployment knows read (known after up).";

export function renderText(report: PlanDiffReport): string {
  const out: string[] = [`Plan diff: the working tree against ${report.against.revision} (${report.against.commit.slice(0, 12)}).`, HOW, ...report.notes.map((note) => `Note: ${note}.`)];
  for (const stack of report.stacks) {
    out.push("", `Stack "${stack.stack}" (${stack.file}):`, ...contextOf(stack).map((line) => `  ${line}`));
    if (stack.failure !== undefined) {
      out.push(`  The ${stack.failure.side}'s program fails:`, ...indent(stack.failure.message.split("\n"), "    "));
      continue;
    }
    const diff = stack.diff!;
    for (const resource of changed(diff)) {
      out.push(`  ${SYMBOL[resource.action]} ${resource.action.padEnd(7)}  ${resource.type}  ${resource.name}`, ...indent(underSign(detailsOf(resource)), "  "));
    }
    out.push(`  ${summaryOf(diff)}`);
  }
  return `${out.join("\n")}\n`;
}

export function renderMarkdown(report: PlanDiffReport): string {
  const out: string[] = [
    COMMENT_MARKER,
    `### Plan diff against \`${report.against.revision}\` (${report.against.commit.slice(0, 12)})`,
    "",
    `${HOW} The same diff on a machine: \`npm run preview -- <stack> --against ${report.against.revision}\`.`,
    ...report.notes.map((note) => `\n> [!NOTE]\n> ${escapeHtml(note)}.`),
    "",
    "| Stack | Create | Update | Replace | Delete | Unchanged |",
    "| --- | ---: | ---: | ---: | ---: | ---: |",
    ...report.stacks.map((stack) =>
      stack.diff === undefined
        ? `| \`${stack.stack}\` | ${stack.failure!.side}'s program fails | | | | |`
        : `| \`${stack.stack}\` | ${(["create", "update", "replace", "delete", "same"] as const).map((action) => stack.diff!.summary[action]).join(" | ")} |`,
    ),
  ];
  for (const stack of report.stacks) {
    const context = contextOf(stack);
    if (stack.failure !== undefined) {
      out.push("", `#### \`${stack.stack}\`: the ${stack.failure.side}'s program fails`, "", ...fenced("text", stack.failure.message.split("\n")));
      continue;
    }
    const resources = changed(stack.diff!);
    if (resources.length === 0 && context.length === 0) {
      continue;
    }
    out.push("", `<details${resources.length > 0 ? " open" : ""}><summary><code>${escapeHtml(stack.stack)}</code> (${escapeHtml(stack.file)}): ${escapeHtml(summaryOf(stack.diff!))}</summary>`, "");
    out.push(...context.map((line) => `- ${escapeHtml(line)}`));
    if (resources.length > 0) {
      out.push("", ...fenced("diff", resources.flatMap((resource) => [`${SYMBOL[resource.action]} ${resource.action.padEnd(7)}  ${resource.type}  ${resource.name}`, ...underSign(detailsOf(resource))])));
    }
    out.push("", "</details>");
  }
  return `${out.join("\n")}\n`;
}

function changed(diff: PlanDiff): ResourceDiff[] {
  return diff.resources.filter((resource) => resource.action !== "same");
}

function summaryOf(diff: PlanDiff): string {
  const counts = PLAN_ACTIONS.filter((action) => action !== "same" && diff.summary[action] > 0).map((action) => `${diff.summary[action]} to ${action}`);
  return counts.length === 0 ? `no changes; ${diff.summary.same} unchanged.` : `${counts.join(", ")}; ${diff.summary.same} unchanged.`;
}

/** What stood in and what else was evaluated: the reader's caveats for one stack. */
function contextOf(stack: StackDiffReport): string[] {
  return [
    ...(stack.newAtRevision ? ["New: the revision has no such stack file, so everything is created."] : []),
    ...(stack.referenced.length > 0 ? [`Reads ${stack.referenced.map((name) => `stack "${name}"`).join(", ")}: evaluated offline from its file in stacks/, at each side.`] : []),
    ...(stack.placeholders.missing.length > 0 ? [`Not set, so a placeholder stood in (pulumi up needs the real ones): ${stack.placeholders.missing.join(", ")}.`] : []),
    ...(stack.placeholders.encrypted.length > 0 ? [`Encrypted in the stack file, so a placeholder stood in (nothing is decrypted offline): ${stack.placeholders.encrypted.join(", ")}.`] : []),
  ];
}

/** Why and how a resource changes, one line each, starting with "-" for what goes, "+" for what comes, else " ". */
function detailsOf(resource: ResourceDiff): string[] {
  const lines: string[] = [];
  if (resource.was !== undefined) {
    lines.push(`  (kept by an alias: it was ${shortUrn(resource.was)})`);
  }
  if (resource.movedFrom !== undefined) {
    lines.push(`  (it was ${shortUrn(resource.movedFrom)}, most likely: Pulumi deletes that and creates this, unless an alias names the old URN)`);
  }
  if (resource.replacedBecause !== undefined) {
    lines.push(`  (replaced: ${resource.replacedBecause.join(", ")} ${resource.replacedBecause.length === 1 && !resource.replacedBecause[0]!.startsWith("its ") ? "forces" : "force"} a replacement)`);
  }
  if (!resource.rulesKnown) {
    lines.push(`  (an update as far as offline can tell: ${resource.type}'s replacement rules are not written down here; pulumi preview decides)`);
  }
  for (const input of resource.inputs) {
    lines.push(...inputLines(input));
  }
  return lines;
}

function inputLines(input: InputChange): string[] {
  if (input.secret) {
    return [`  ${input.path}: [secret] changed`];
  }
  if (input.lines !== undefined) {
    return [`  ${input.path}:`, ...capped(input.lines).map((line) => (/^[+-]/.test(line) ? `${line[0]!}   ${line.slice(1)}` : `    ${line}`))];
  }
  if (input.removed !== undefined || input.added !== undefined) {
    return [
      `  ${input.path}:`,
      ...capped([...(input.removed ?? []).map((item) => `-   ${shown(item)}`), ...(input.added ?? []).map((item) => `+   ${shown(item)}`)]),
    ];
  }
  return [
    ...("before" in input ? [`- ${input.path}: ${shown(input.before)}`] : []),
    ...("after" in input ? [`+ ${input.path}: ${shown(input.after)}`] : []),
  ];
}

/** A URN without its stack and project, the same on both sides: "<parent types>$<type>::<name>". */
function shortUrn(urn: string): string {
  return urn.split("::").slice(2).join("::");
}

function capped(lines: string[]): string[] {
  return lines.length <= MAX_LINES_PER_INPUT ? lines : [...lines.slice(0, MAX_LINES_PER_INPUT), `  … ${lines.length - MAX_LINES_PER_INPUT} more lines (--json has them all)`];
}

function shown(value: unknown): string {
  return JSON.stringify(value) ?? "undefined";
}

function indent(lines: string[], by: string): string[] {
  return lines.map((line) => `${by}${line}`);
}

/** Detail lines under their resource, each keeping its sign ("+", "-" or " ") first, where a diff's colours look for it. */
function underSign(lines: string[]): string[] {
  return lines.map((line) => `${line[0]!}      ${line.slice(1)}`);
}

/** A fenced block whose fence is longer than any backtick run in it, so no content can close it. */
function fenced(language: string, lines: string[]): string[] {
  const longest = Math.max(2, ...lines.map((line) => Math.max(0, ...[...line.matchAll(/`+/g)].map((run) => run[0].length))));
  const fence = "`".repeat(longest + 1);
  return [`${fence}${language}`, ...lines, fence];
}

function escapeHtml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
