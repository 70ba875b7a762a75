/**
 * Refuses to run on a Node.js that package.json's `engines.node` excludes, with one line on
 * stderr and exit 1. Every entry point imports this module first: ESM evaluates a module's
 * imports in order, depth first, so nothing else of the entry point has run when it exits. Without
 * it Node 20 runs the service to its `if (import.meta.main)` (undefined before 24.2), prints
 * nothing and exits 0.
 *
 * It must itself run on an old Node (Debian 12 and Ubuntu 24.04 ship 18.19, on which tsx still
 * runs), so it uses nothing newer: not import.meta.dirname (20.11) nor import attributes (18.20).
 * `npm ci` refuses the same range through .npmrc's engine-strict.
 */
import { readFileSync } from "node:fs";

const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { name: string; engines: { node: string } };

/** Whether `version` (as process.versions.node gives it) is in `range`, which must be ">=MAJOR.MINOR[.PATCH]". */
export function isSupported(version: string, range: string): boolean {
  const minimum = /^>=(\d+)\.(\d+)(?:\.(\d+))?$/.exec(range);
  if (minimum === null) {
    // A full semver range would need the semver package, and so a dependency, for one comparison.
    throw new Error(`package.json engines.node "${range}" is not of the form >=MAJOR.MINOR[.PATCH], the only form runtime/node-version.ts compares with`);
  }
  const wanted = [minimum[1], minimum[2], minimum[3] ?? "0"].map(Number);
  const actual = version.split(".").map(Number);
  const differing = wanted.findIndex((part, index) => actual[index] !== part);
  return differing === -1 || actual[differing]! > wanted[differing]!;
}

if (!isSupported(process.versions.node, manifest.engines.node)) {
  process.stderr.write(
    `${manifest.name} needs Node ${manifest.engines.node}, not ${process.versions.node}: ` +
      `put a newer Node on PATH with env_file="$(scripts/setup)" && source "$env_file", or with nvm install (it reads .nvmrc)\n`,
  );
  process.exit(1);
}
