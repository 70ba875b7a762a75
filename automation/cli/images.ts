/**
 * `npm run images -- <dir> [--registry R --tag T [--push]]`: writes the PoP's role image build
 * contexts (generated from the same TypeScript as the tests) to <dir>/<image>/; with a registry,
 * builds each as <R>/pop-<image>:<T> with the Docker CLI, and pushes with --push.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { roleImageContexts } from "../../components/cdn-pop/images.ts";
import { exitWithUsageError, parseCommandLine } from "./command-line.ts";

const REPOSITORY = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const COMMAND_LINE = {
  name: "images",
  usage: "usage: npm run images -- <dir> [--registry <registry> --tag <tag> [--push]]",
  options: { registry: { type: "string" }, tag: { type: "string" }, push: { type: "boolean", default: false } },
} as const;
/** Docker's rule for a tag (https://docs.docker.com/reference/cli/docker/image/tag/). */
const DOCKER_TAG = /^[\w][\w.-]{0,127}$/;
/** A registry host (with an optional port) and repository path, lowercase as Docker requires. */
const REGISTRY = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;

/** Usage problems, one line each, naming the flag and what to give. */
function usageProblems(values: { registry?: string; tag?: string; push: boolean }, positionals: string[]): string[] {
  const problems: string[] = [];
  if (positionals.length !== 1) {
    problems.push(positionals.length === 0 ? "<dir> is missing; give the directory to write the build contexts to, e.g. build/images" : `give one <dir>, not ${positionals.length} (${positionals.join(", ")})`);
  }
  if (values.push && values.registry === undefined) {
    problems.push("--push needs --registry and --tag: images are pushed to <registry>/pop-<image>:<tag>; give both, e.g. --registry localhost:5000/switch-vaas --tag 0.1.0");
  } else if (values.registry !== undefined && values.tag === undefined) {
    problems.push("--registry needs --tag; give the tag to build the images with, e.g. --tag 0.1.0");
  } else if (values.tag !== undefined && values.registry === undefined) {
    problems.push("--tag needs --registry; give the registry to build the images for, e.g. --registry localhost:5000/switch-vaas");
  }
  if (values.registry !== undefined && !REGISTRY.test(values.registry)) {
    problems.push(`--registry ${JSON.stringify(values.registry)} is not a registry and repository; give e.g. localhost:5000/switch-vaas or registry.example.org/switch-vaas`);
  }
  if (values.tag !== undefined && !DOCKER_TAG.test(values.tag)) {
    problems.push(`--tag ${JSON.stringify(values.tag)} is not a Docker tag; use letters, digits, '_', '.' and '-' (at most 128), e.g. 0.1.0`);
  }
  return problems;
}

function docker(args: string[]): void {
  const result = spawnSync("docker", args, { stdio: "inherit" });
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`docker ${args[0]} failed (${result.error?.message ?? `exit ${result.status}`}); building needs the Docker CLI and a running Docker engine`);
  }
}

const { values, positionals } = parseCommandLine(COMMAND_LINE);
const problems = usageProblems(values, positionals);
if (problems.length > 0) {
  exitWithUsageError(COMMAND_LINE, problems);
}
const out = positionals[0]!;

try {
  for (const context of roleImageContexts()) {
    const dir = join(out, context.image);
    mkdirSync(dir, { recursive: true });
    for (const [file, content] of Object.entries(context.files)) {
      writeFileSync(join(dir, file), content, { mode: file.endsWith(".sh") ? 0o755 : 0o644 });
    }
    console.log(`wrote ${dir}`);
    if (values.registry !== undefined && values.tag !== undefined) {
      const name = `${values.registry}/pop-${context.image}:${values.tag}`;
      docker(context.context === "files" ? ["build", "-t", name, dir] : ["build", "-t", name, "-f", join(dir, "Dockerfile"), REPOSITORY]);
      if (values.push) {
        docker(["push", name]);
      }
    }
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}
