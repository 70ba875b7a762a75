import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { isSupported } from "../../runtime/node-version.ts";
import { type CommandResult, runScript } from "../support/cli.ts";

/**
 * A platform engineer's first hour (issue 16): on a Node the product does not support, every entry
 * point refuses with one line naming the Node it needs and where to get it, and `npm ci` refuses
 * before installing anything. The machine's own Node (/usr/bin/node, Node 20 here) is the
 * unsupported one they run on; tsx, which every entry point runs on, supports it.
 */

const root = join(import.meta.dirname, "..", "..");
const OLD_NODE = "/usr/bin/node";
const OLD_NPM = "/usr/bin/npm";
const manifest = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { name: string; version: string; engines: { node: string }; scripts: Record<string, string> };
const range = manifest.engines.node;

/** Every entry point: the scripts npm runs with tsx, and the Pulumi program the CLI runs. */
const ENTRY_POINTS = [
  ...Object.values(manifest.scripts).flatMap((script) => /^tsx (\S+\.ts)$/.exec(script)?.[1] ?? []),
  (parse(readFileSync(join(root, "Pulumi.yaml"), "utf8")) as { main: string }).main,
];

let oldVersion: string;

beforeAll(async () => {
  const found = await promisify(execFile)(OLD_NODE, ["-p", "process.versions.node"]).catch((error: Error) => {
    throw new Error(`this test runs the entry points with a Node that package.json's engines.node (${range}) excludes, at ${OLD_NODE} (Node 20 in this workplace); running it failed: ${error.message}`);
  });
  oldVersion = found.stdout.trim();
  if (isSupported(oldVersion, range)) {
    throw new Error(`this test needs a Node that package.json's engines.node (${range}) excludes at ${OLD_NODE}, e.g. Node 20; it is ${oldVersion}`);
  }
});

describe("the supported range", () => {
  it.each([
    ["24.2.0", ">=24.2", true],
    ["24.22.3", ">=24.2", true],
    ["24.10.0", ">=24.2", true],
    ["25.0.0", ">=24.2", true],
    ["100.0.0", ">=24.2", true],
    ["24.1.9", ">=24.2", false],
    ["23.99.99", ">=24.2", false],
    ["20.20.2", ">=24.2", false],
    ["24.2.0", ">=24.2.1", false],
    ["24.2.1", ">=24.2.1", true],
  ])("Node %s is in %s: %s", (version, given, supported) => {
    expect(isSupported(version, given)).toBe(supported);
  });

  it("is a lower bound, the one form the check compares with", () => {
    expect(() => isSupported("24.2.0", "^24.2.0")).toThrow(
      'package.json engines.node "^24.2.0" is not of the form >=MAJOR.MINOR[.PATCH], the only form runtime/node-version.ts compares with',
    );
  });

  it("is this project's: the Node of .nvmrc and of the toolchain is in it, and the check reads it from package.json", () => {
    expect(range).toBe(">=24.2");
    expect(isSupported(process.versions.node, range)).toBe(true);
    expect(readFileSync(join(root, ".npmrc"), "utf8")).toMatch(/^engine-strict=true$/m);
  });
});

describe(`every entry point on the machine's own Node (${OLD_NODE})`, () => {
  it("covers the npm scripts' commands and the Pulumi program", () => {
    expect(ENTRY_POINTS.toSorted()).toEqual([
      "automation/cli/images.ts",
      "automation/cli/offline-preview.ts",
      "automation/cli/place.ts",
      "automation/cli/switchctl.ts",
      "automation/service/server.ts",
      "scripts/cluster.ts",
      "stacks/index.ts",
      "test/bench/run.ts",
    ]);
  });

  it.each(ENTRY_POINTS)("%s refuses with one line naming the Node it needs and how to get it", async (entry) => {
    // --help would be answered (exit 0) by a command that ran at all.
    const result: CommandResult = await runScript(entry, ["--help"], { node: OLD_NODE });
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr:
        `${manifest.name} needs Node ${range}, not ${oldVersion}: ` +
        `put a newer Node on PATH with env_file="$(scripts/setup)" && source "$env_file", or with nvm install (it reads .nvmrc)\n`,
    });
  });
});

describe(`npm ci on the machine's own Node (${OLD_NPM})`, () => {
  it("refuses the project with EBADENGINE before it removes or installs anything", async () => {
    const dir = mkdtempSync(join(tmpdir(), "node-version-"));
    for (const file of ["package.json", "package-lock.json", ".npmrc"]) {
      copyFileSync(join(root, file), join(dir, file));
    }
    // npm ci starts by deleting node_modules: this file surviving shows it refused first.
    mkdirSync(join(dir, "node_modules"));
    writeFileSync(join(dir, "node_modules", "planted"), "");
    const result = await promisify(execFile)(OLD_NODE, [OLD_NPM, "ci", "--offline"], { cwd: dir, env: { ...process.env, npm_config_update_notifier: "false" } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr.split("\n").slice(0, 6)).toEqual([
      "npm error code EBADENGINE",
      "npm error engine Unsupported engine",
      `npm error engine Not compatible with your version of node/npm: ${manifest.name}@${manifest.version}`,
      `npm error notsup Not compatible with your version of node/npm: ${manifest.name}@${manifest.version}`,
      `npm error notsup Required: {"node":"${range}"}`,
      // npm 10 names npm first, npm 11 node.
      expect.stringMatching(new RegExp(`^npm error notsup Actual: +\\{.*"node":"v${oldVersion.replaceAll(".", "\\.")}".*\\}$`)),
    ]);
    expect(existsSync(join(dir, "node_modules", "planted"))).toBe(true);
  });
});
