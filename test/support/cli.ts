import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** The exit code; null when the process was killed by a signal. */
  code: number | null;
}

export interface CommandOptions {
  /** The whole environment of the process (PATH is added). Defaults to this process's environment. */
  env?: Record<string, string>;
  /** The Node.js binary to run it with. Defaults to this process's own. */
  node?: string;
  /** The repository to run it in (a throwaway copy of this one). Defaults to this repository. */
  cwd?: string;
}

/**
 * Runs a script of the product (a path from the repository's root) as its container or npm runs
 * it, with tsx; never throws. Output is not capped: a plan or a ranking can run to megabytes.
 */
export async function runScript(script: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  try {
    const { stdout, stderr } = await run(options.node ?? process.execPath, ["--import", "tsx", script, ...args], {
      cwd: options.cwd ?? root,
      maxBuffer: Number.POSITIVE_INFINITY,
      ...(options.env === undefined ? {} : { env: { PATH: process.env.PATH ?? "", ...options.env } }),
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number | null };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}

/** Runs one of the product's commands (a script under automation/cli) as npm runs it; never throws. */
export function runCli(script: string, ...args: string[]): Promise<CommandResult> {
  return runScript(`automation/cli/${script}`, args);
}
