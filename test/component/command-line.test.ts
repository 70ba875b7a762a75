import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { alternatives } from "../../automation/cli/command-line.ts";
import { SwitchClient } from "../../automation/client/client.ts";
import { type CommandResult, runScript } from "../support/cli.ts";

/**
 * One command-line convention for every command (issue 16, found by a new user): -h/--help prints
 * the usage to stdout and exits 0, after a subcommand too; a usage error prints "<command>: <what
 * is wrong>", a blank line and the usage to stderr and exits 2, and an unknown subcommand or
 * benchmark is one, naming the known ones.
 */

const COMMANDS = {
  switchctl: "automation/cli/switchctl.ts",
  preview: "automation/cli/offline-preview.ts",
  place: "automation/cli/place.ts",
  images: "automation/cli/images.ts",
  cluster: "scripts/cluster.ts",
  bench: "test/bench/run.ts",
} as const;
type Command = keyof typeof COMMANDS;

/** The benchmarks, as `npm run bench` names them: every module of test/bench but its runner and helpers. */
const BENCHMARKS = readdirSync(join(import.meta.dirname, "..", "bench"))
  .filter((file) => file.endsWith(".ts") && !["run.ts", "measure.ts"].includes(file))
  .map((file) => file.slice(0, -".ts".length));

/**
 * Runs a command as npm does, in an environment of PATH alone: no SWITCH_TOOLCHAIN, so that a
 * cluster command that did not take --help as help fails instead of starting a cluster.
 */
const run = (command: Command, args: string[], env: Record<string, string> = {}): Promise<CommandResult> => runScript(COMMANDS[command], args, { env });

/** What a usage error must look like: its one line, a blank line, then the usage the command's --help prints. */
async function expectUsageError(command: Command, args: string[], line: string, env: Record<string, string> = {}): Promise<void> {
  const [refused, help] = await Promise.all([run(command, args, env), run(command, ["--help"])]);
  expect(help.code).toBe(0);
  expect(refused).toEqual({ code: 2, stdout: "", stderr: `${command}: ${line}\n\n${help.stdout}` });
}

describe("-h and --help print the usage to stdout and exit 0", () => {
  it.each([
    ["switchctl", ["--help"]],
    ["switchctl", ["-h"]],
    ["switchctl", ["create", "--help"]],
    ["switchctl", ["list", "-h"]],
    ["switchctl", ["get", "--help"]],
    ["switchctl", ["watch", "--help"]],
    ["switchctl", ["stop", "--help"]],
    ["switchctl", ["place", "--help"]],
    ["switchctl", ["clusters", "--help"]],
    ["switchctl", ["token", "create", "--help"]],
    ["preview", ["--help"]],
    ["preview", ["-h"]],
    ["preview", ["local", "--help"]],
    ["place", ["--help"]],
    ["place", ["46.05,14.51", "-h"]],
    ["images", ["--help"]],
    ["images", ["build", "--registry", "localhost:5000/switch-vaas", "-h"]],
    ["cluster", ["--help"]],
    ["cluster", ["up", "--help"]],
    ["cluster", ["down", "-h"]],
    ["cluster", ["kubeconfig", "--help"]],
    ["bench", ["--help"]],
    ["bench", ["testbed", "-h"]],
  ] satisfies [Command, string[]][])("%s %j", async (command, args) => {
    const { code, stdout, stderr } = await run(command, args);
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    expect(stdout).toMatch(new RegExp(`^usage: npm run ${command} -- `));
  });
});

it("knows the benchmarks", () => {
  expect(BENCHMARKS).toEqual(expect.arrayContaining(["conference", "engine", "placement", "pop", "service", "testbed", "wae"]));
});

describe("a usage error says what is wrong, on a line of its own after the command's name, then the usage, with exit 2", () => {
  it.each([
    ["switchctl", ["launch"], '"launch" is not a command; use create, list, get, watch, stop, place, clusters, token or pop'],
    ["switchctl", [], "give a command: create, list, get, watch, stop, place, clusters, token or pop"],
    ["switchctl", ["list", "--colour"], '--colour is not an option (an argument that starts with "-" goes after --)'],
    ["switchctl", ["token", "revoke", "alice"], '"revoke" is not a token command; use create'],
    ["switchctl", ["token", "create"], "token create needs a SUBJECT, who the token is for"],
    ["preview", ["testbed", "local"], "give one stack, not 2 (testbed, local), or several with --against"],
    ["preview", ["--jsn"], '--jsn is not an option (an argument that starts with "-" goes after --)'],
    ["place", [], 'give at least one participant, "lat,lon" or an IP address, or a file of them with --participants'],
    ["place", ["46,14", "--expected"], "Option '--expected <value>' argument missing"],
    ["images", [], "<dir> is missing; give the directory to write the build contexts to, e.g. build/images"],
    ["cluster", [], "give a command: up, down or kubeconfig"],
    ["cluster", ["start"], '"start" is not a command; use up, down or kubeconfig'],
    ["cluster", ["up", "now"], "give one command, not 2 (up, now)"],
    ["bench", ["testbd"], `"testbd" is not a benchmark; use ${alternatives(BENCHMARKS)} (or the start of one)`],
    ["bench", ["--all"], '--all is not an option (an argument that starts with "-" goes after --)'],
  ] satisfies [Command, string[], string][])("%s %j", async (command, args, line) => {
    await expectUsageError(command, args, line);
  });

  it("names the bad SWITCH_URL, which needs a scheme, and what it should be", async () => {
    for (const url of ["127.0.0.1:8080", "localhost:8080", "ftp://127.0.0.1:8080", "http//127.0.0.1:8080"]) {
      await expectUsageError(
        "switchctl",
        ["list"],
        `SWITCH_URL ${JSON.stringify(url)} is not an absolute http(s) URL; give e.g. http://127.0.0.1:8080`,
        { SWITCH_URL: url, SWITCH_TOKEN: "svt_any" },
      );
    }
  });
});

describe("the typed client", () => {
  it.each(["127.0.0.1:8080", "/v1", "ftp://127.0.0.1"])("refuses the service URL %j, naming it", (url) => {
    expect(() => new SwitchClient({ url, token: "svt_any" })).toThrow(`url ${JSON.stringify(url)} is not an absolute http(s) URL; give e.g. http://127.0.0.1:8080`);
  });

  it.each(["http://127.0.0.1:8080", "https://switch-vaas.example.org/"])("takes %j", (url) => {
    expect(() => new SwitchClient({ url, token: "svt_any" })).not.toThrow();
  });
});
