/**
 * `npm run images -- <dir> [--registry R --tag T [--push]]`: writes the PoP's role image build
 * contexts (generated from the same TypeScript as the tests) to <dir>/<image>/; with a registry,
 * builds each as <R>/pop-<image>:<T> with the Docker CLI, and pushes with --push.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { roleImageContexts } from "../../components/cdn-pop/images.ts";

const REPOSITORY = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const USAGE = "usage: npm run images -- <dir> [--registry <registry> --tag <tag> [--push]]";

function docker(args: string[]): void {
  const result = spawnSync("docker", args, { stdio: "inherit" });
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`docker ${args[0]} failed (${result.error?.message ?? `exit ${result.status}`}); building needs the Docker CLI and a running Docker engine`);
  }
}

try {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { registry: { type: "string" }, tag: { type: "string" }, push: { type: "boolean", default: false } },
  });
  const out = positionals[0];
  if (out === undefined || (values.registry === undefined) !== (values.tag === undefined)) {
    throw new Error(USAGE);
  }
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
