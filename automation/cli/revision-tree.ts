import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InvalidArgumentsError } from "../../domain/errors.ts";

/**
 * A revision's files, extracted from git into a directory of their own: what a plan diff evaluates
 * the "before" side from. Its node_modules is the working tree's (a link): evaluating two
 * revisions' programs in one process needs one @pulumi/pulumi, whose runtime state is global.
 */
export interface RevisionTree {
  /** The revision as given ("main", "HEAD~1", a commit). */
  revision: string;
  commit: string;
  root: string;
  /** What the reader should know about how it was evaluated (differing dependencies). */
  notes: string[];
  /** Removes the extracted files. */
  [Symbol.dispose](): void;
}

/** Extracts `revision` of the repository at `repository` (a commit, branch, tag or any git revision). */
export function extractRevision(repository: string, revision: string): RevisionTree {
  const git = (...args: string[]) => execFileSync("git", ["-C", repository, ...args], { encoding: "buffer", maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "pipe"] });
  let commit: string;
  try {
    commit = git("rev-parse", "--verify", "--quiet", "--end-of-options", `${revision}^{commit}`).toString("utf8").trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new InvalidArgumentsError(["--against needs git on PATH, to read the revision's files"]);
    }
    throw new InvalidArgumentsError([
      `--against ${revision}: no such commit in ${repository}; name a branch, tag or commit it has (a shallow clone may need git fetch origin <branch> first)`,
    ]);
  }
  const root = mkdtempSync(join(tmpdir(), `switch-vaas-${commit.slice(0, 12)}-`));
  try {
    execFileSync("tar", ["-x", "-C", root], { input: git("archive", "--format=tar", commit), stdio: ["pipe", "ignore", "pipe"] });
    symlinkSync(join(repository, "node_modules"), join(root, "node_modules"), "dir");
  } catch (error) {
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
  const notes: string[] = [];
  if (read(join(root, "package-lock.json")) !== read(join(repository, "package-lock.json"))) {
    notes.push(`${revision}'s package-lock.json differs from the working tree's; both sides were evaluated with the working tree's node_modules`);
  }
  return {
    revision,
    commit,
    root,
    notes,
    [Symbol.dispose]() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
