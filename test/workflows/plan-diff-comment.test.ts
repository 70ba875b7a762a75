import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, expect, it } from "vitest";
import { parse } from "yaml";

/**
 * The script of plan-diff-comment.yml, run as actions/github-script runs it (an async function of
 * require, github, context and core), against an artifact written here and a GitHub that records
 * every call. It is the one place that stands between a pull request's artifact and a comment
 * written with this repository's token, so each refusal is shown, beside the comment it makes when
 * all is well.
 */

const MARKER = "<!-- switch-vaas plan diff -->";
const HEAD = "a".repeat(40);
const BOT = "github-actions[bot]";
/** What plan-diff-comment.yml cuts a body to, note included. */
const LIMIT = 65_000;

const workflow = parse(readFileSync(join(import.meta.dirname, "..", "..", ".github", "workflows", "plan-diff-comment.yml"), "utf8")) as {
  jobs: Record<string, { steps: { with?: { script?: string } }[] }>;
};
const SCRIPT = Object.values(workflow.jobs)
  .flatMap((job) => job.steps)
  .flatMap((step) => (step.with?.script === undefined ? [] : [step.with.script]))[0]!;

type AsyncFunction = (...args: unknown[]) => Promise<unknown>;
const AsyncFunctionOf = (Object.getPrototypeOf(async () => {}) as { constructor: new (...params: string[]) => AsyncFunction }).constructor;

interface Comment {
  id: number;
  body: string;
  user: { login: string };
  html_url: string;
}

interface Outcome {
  failed: string[];
  calls: string[];
  comments: Comment[];
}

let artifact: string;
beforeEach(() => {
  artifact = mkdtempSync(join(tmpdir(), "switch-plan-diff-artifact-"));
});
afterEach(() => rmSync(artifact, { recursive: true, force: true }));

/** Runs the script on an artifact of `number` and `body`, for a pull request #7 whose head is `head` and whose comments are `comments`. */
async function comment(number: string, body: string, { head = HEAD, comments = [] as Comment[] } = {}): Promise<Outcome> {
  writeFileSync(join(artifact, "pr-number"), number);
  writeFileSync(join(artifact, "plan-diff.md"), body);
  const outcome: Outcome = { failed: [], calls: [], comments: comments.map((each) => ({ ...each })) };
  const listComments = Symbol("listComments");
  const github = {
    rest: {
      pulls: {
        get: ({ pull_number }: { pull_number: number }) => {
          outcome.calls.push(`pulls.get ${pull_number}`);
          return Promise.resolve({ data: { number: pull_number, head: { sha: pull_number === 7 ? head : "b".repeat(40) } } });
        },
      },
      issues: {
        listComments,
        createComment: ({ issue_number, body: text }: { issue_number: number; body: string }) => {
          outcome.calls.push(`issues.createComment ${issue_number}`);
          const created = { id: 1000 + outcome.comments.length, body: text, user: { login: BOT }, html_url: "https://example.invalid/c" };
          outcome.comments.push(created);
          return Promise.resolve({ data: created });
        },
        updateComment: ({ comment_id, body: text }: { comment_id: number; body: string }) => {
          outcome.calls.push(`issues.updateComment ${comment_id}`);
          outcome.comments.find((each) => each.id === comment_id)!.body = text;
          return Promise.resolve({ data: {} });
        },
      },
    },
    paginate: {
      // Two comments a page, so that a comment on a later page must be found too.
      iterator: async function* (method: symbol, { issue_number }: { issue_number: number }) {
        expect(method).toBe(listComments);
        outcome.calls.push(`issues.listComments ${issue_number}`);
        for (let at = 0; at < outcome.comments.length; at += 2) {
          yield { data: outcome.comments.slice(at, at + 2) };
        }
      },
    },
  };
  const context = { repo: { owner: "switch", repo: "vaas" }, payload: { workflow_run: { head_sha: HEAD } } };
  const core = { setFailed: (message: string) => outcome.failed.push(message), info: () => {} };
  const previous = process.env.ARTIFACT;
  process.env.ARTIFACT = artifact;
  try {
    await new AsyncFunctionOf("require", "github", "context", "core", SCRIPT)(createRequire(import.meta.url), github, context, core);
  } finally {
    process.env.ARTIFACT = previous;
  }
  return outcome;
}

const plan = `${MARKER}\n## Plan diff\n\n| stack | changes |\n|---|---|\n| testbed | 2 to create |\n`;

it("comments the body on the pull request the artifact names, once, and edits that comment after", async () => {
  const first = await comment("7\n", plan);
  expect(first.failed).toEqual([]);
  expect(first.comments).toEqual([expect.objectContaining({ body: plan, user: { login: BOT } })]);

  const human = { id: 1, body: `${MARKER}\nquoted by a person`, user: { login: "someone" }, html_url: "" };
  const other = { id: 2, body: "looks good", user: { login: BOT }, html_url: "" };
  const ours = { id: 3, body: `${MARKER}\nthe last push's diff`, user: { login: BOT }, html_url: "" };
  const again = await comment("7", `${plan}| local | no changes |\n`, { comments: [human, other, ours] });
  expect(again.failed).toEqual([]);
  expect(again.calls).toEqual(["pulls.get 7", "issues.listComments 7", "issues.updateComment 3"]);
  expect(again.comments.map((each) => each.body)).toEqual([human.body, other.body, `${plan}| local | no changes |\n`]);
});

it.each([
  ["a command", "7; rm -rf /"],
  ["nothing", ""],
  ["zero", "0"],
  ["a negative number", "-7"],
  ["a fraction", "7.5"],
  ["a number with a sign", "+7"],
  ["a number too large", "99999999999"],
  ["more than its first bytes show", `7${" ".repeat(40)}8`],
])("refuses a pr-number holding %s, before any call to GitHub", async (_what, number) => {
  const outcome = await comment(number, plan);
  expect(outcome.failed).toEqual(["the artifact's pr-number holds no pull-request number"]);
  expect(outcome.calls).toEqual([]);
});

it("refuses an artifact naming a pull request whose head is not the commit the run was for", async () => {
  // Pull request #8's head is another commit: a forged number must not reach #8.
  const forged = await comment("8", plan);
  expect(forged.failed).toEqual([expect.stringMatching(/^pull request #8's head is b{40}, not a{40}, the commit the plan-diff run was for/)]);
  expect(forged.calls).toEqual(["pulls.get 8"]);
  // #7 moved on since the run: its newer run comments, not this one.
  const stale = await comment("7", plan, { head: "c".repeat(40) });
  expect(stale.failed).toHaveLength(1);
  expect(stale.calls).toEqual(["pulls.get 7"]);
});

it.each([
  ["no marker", "## Plan diff\n"],
  ["the marker after other text", `hello\n${MARKER}\n`],
  ["the marker not alone on its line", `${MARKER} and more\n`],
])("refuses a body with %s", async (_what, body) => {
  const outcome = await comment("7", body);
  expect(outcome.failed).toEqual([`the artifact's plan-diff.md does not start with the line ${MARKER}`]);
  expect(outcome.comments).toEqual([]);
});

it("cuts a body longer than a comment holds at a line's end, closes an open code block and says so", async () => {
  const line = "~ kubernetes:apps/v1:Deployment edge-ljubljana 🙂 replicas 2 → 3\n";
  const body = `${MARKER}\n\`\`\`diff\n${line.repeat(Math.ceil((10 * LIMIT) / line.length))}\`\`\`\n`;
  const outcome = await comment("7", body);
  expect(outcome.failed).toEqual([]);
  const posted = outcome.comments[0]!.body;
  expect(posted.length).toBeLessThanOrEqual(LIMIT);
  expect(posted.length).toBeGreaterThan(LIMIT - 2 * line.length - 200);
  const [kept, note] = posted.split("```\n\n_");
  expect(note).toMatch(/^The plan diff was cut here: it is longer than a comment holds\./);
  expect(kept!.startsWith(`${MARKER}\n\`\`\`diff\n`)).toBe(true);
  // Whole lines only: what is kept is the body's start, ending where a line ends.
  expect(body.startsWith(kept!)).toBe(true);
  expect(kept!.endsWith(line)).toBe(true);
});

it("keeps a body that fits whole", async () => {
  const body = `${MARKER}\n${"x".repeat(LIMIT - MARKER.length - 1)}`;
  const outcome = await comment("7", body);
  expect(outcome.comments[0]!.body).toBe(body);
});
