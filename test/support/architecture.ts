import { readFileSync, readdirSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, posix, relative, sep } from "node:path";
import ts from "typescript";

/**
 * The arrows of ARCHITECTURE.md "Layout", checked over source text: which file may import which.
 * Imports are read by TypeScript's own pre-processor, so type-only and dynamic imports count too.
 */

/** What domain/ may import besides itself: validation, addresses, and HMAC for report signatures. */
export const DOMAIN_ALLOWED = ["zod", "ipaddr.js", "node:crypto"] as const;

/** The agent's own entry point; everything it imports, transitively, goes into its image. */
export const INSTANCE_MANAGER_MAIN = "automation/instance-manager/main.ts";

const LAYERS = ["runtime", "domain", "components", "stacks", "automation", "scripts", "test"] as const;

/** Every TypeScript source of the layers, by repository-relative POSIX path. */
export function readSources(root: string): Map<string, string> {
  const sources = new Map<string, string>();
  const visit = (directory: string) => {
    for (const entry of readdirSync(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory() && entry.name !== "node_modules") {
        visit(path);
      } else if (entry.isFile() && entry.name.endsWith(".ts")) {
        sources.set(relative(root, path).split(sep).join("/"), readFileSync(path, "utf8"));
      }
    }
  };
  for (const layer of LAYERS) {
    visit(join(root, layer));
  }
  return sources;
}

/** The module specifiers a file imports: static, type-only, re-exports and dynamic import(). */
export function importsOf(source: string): string[] {
  return ts.preProcessFile(source, true, true).importedFiles.map((file) => file.fileName);
}

/** A relative specifier as a repository path; undefined for a package or builtin. */
function resolve(from: string, specifier: string): string | undefined {
  return specifier.startsWith(".") ? posix.normalize(posix.join(dirname(from), specifier)) : undefined;
}

function isBuiltin(specifier: string): boolean {
  return specifier.startsWith("node:") || builtinModules.includes(specifier);
}

/** A package import's package name ("@scope/name" or "name"). */
function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

const inLayer = (path: string, layer: string) => path.startsWith(`${layer}/`);

/** The service's API shapes: a leaf, which the typed client imports alone. */
export const SERVICE_SCHEMAS = "automation/service/schemas.ts";
/** The one module that registers the service's route modules. */
export const SERVICE_APP = "automation/service/app.ts";
const SERVICE_ROUTES = "automation/service/routes";

/** An import that breaks an arrow, known and passed over until `until` is done. */
export interface PendingArrow {
  file: string;
  specifier: string;
  until: string;
}

/**
 * The imports that break an arrow today, each with what it waits for. The architecture test fails
 * once one of them is gone, so that this list only shrinks.
 */
export const PENDING_ARROWS: readonly PendingArrow[] = [];

/** The violation's line begins so: `<file> imports <specifier>:`. */
export const isPending = (violation: string, pending: readonly PendingArrow[]) => pending.some((arrow) => violation.startsWith(`${arrow.file} imports ${arrow.specifier}: `));

/**
 * Every arrow that the sources break, one line each ("<file> imports <specifier>: <rule>"):
 * domain/ imports only itself and DOMAIN_ALLOWED and uses no clock, randomness or process state,
 * and throws only the domain's own errors; components/ never import automation/ or stacks/;
 * stacks/ never import automation/; runtime/ imports only Node's builtins, since every entry point
 * (stacks/index.ts too) imports it; nothing outside test/ imports test/; the instance manager's
 * import closure stays within domain/ and itself, using only `agentDependencies` and builtins. In
 * the service (STYLE.md 22), schemas.ts imports only domain/ and packages, and a route module is
 * imported by app.ts alone (so by no plugin and no other route). `pending` (PENDING_ARROWS) are
 * passed over.
 */
export function arrowViolations(sources: ReadonlyMap<string, string>, agentDependencies: readonly string[], pending: readonly PendingArrow[] = []): string[] {
  const violations: string[] = [];
  for (const [file, source] of sources) {
    for (const specifier of importsOf(source)) {
      const target = resolve(file, specifier);
      const broken = (rule: string) => violations.push(`${file} imports ${specifier}: ${rule}`);
      if (inLayer(file, "domain")) {
        if (target === undefined ? !(DOMAIN_ALLOWED as readonly string[]).includes(specifier) : !inLayer(target, "domain")) {
          broken(`domain/ imports only itself and ${DOMAIN_ALLOWED.join(", ")}`);
        }
      }
      if (inLayer(file, "components") && target !== undefined && (inLayer(target, "automation") || inLayer(target, "stacks"))) {
        broken("components/ never import automation/ or stacks/");
      }
      if (inLayer(file, "stacks") && target !== undefined && inLayer(target, "automation")) {
        broken("stacks/ never import automation/");
      }
      if (inLayer(file, "runtime") && !specifier.startsWith("node:")) {
        broken("runtime/ imports only Node's builtins: every entry point imports it, stacks/index.ts too");
      }
      if (!inLayer(file, "test") && target !== undefined && inLayer(target, "test")) {
        broken("nothing imports test/");
      }
      if (file === SERVICE_SCHEMAS && target !== undefined && !inLayer(target, "domain")) {
        broken("schemas.ts imports only domain/ and packages: API shapes are a leaf, importing nothing of the store or the service");
      }
      if (file !== SERVICE_APP && !inLayer(file, "test") && target !== undefined && inLayer(target, SERVICE_ROUTES)) {
        broken("only app.ts imports a route module: routes share plugins/ and schemas.ts, never one another");
      }
    }
    if (inLayer(file, "domain")) {
      for (const [, impurity] of source.matchAll(/\b(Date\.now|new Date\(|Math\.random|process\.|new Error\()/g)) {
        violations.push(`${file} uses ${impurity}: domain/ is pure and throws only the errors of domain/errors.ts`);
      }
    }
  }
  violations.push(...agentViolations(sources, agentDependencies));
  return violations.filter((violation) => !isPending(violation, pending));
}

function agentViolations(sources: ReadonlyMap<string, string>, dependencies: readonly string[]): string[] {
  const violations: string[] = [];
  const seen = new Set<string>();
  const pending = [INSTANCE_MANAGER_MAIN];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) {
      continue;
    }
    seen.add(file);
    const source = sources.get(file);
    if (source === undefined) {
      violations.push(`${file} is imported by the instance manager but does not exist`);
      continue;
    }
    for (const specifier of importsOf(source)) {
      const target = resolve(file, specifier);
      if (target === undefined) {
        if (!isBuiltin(specifier) && !dependencies.includes(packageOf(specifier))) {
          violations.push(`${file} imports ${specifier}: the instance manager's image has only its own dependencies (${dependencies.join(", ")})`);
        }
      } else if (!inLayer(target, "domain") && !inLayer(target, "automation/instance-manager")) {
        violations.push(`${file} imports ${specifier}: the instance manager imports only domain/ and itself`);
      } else {
        pending.push(target);
      }
    }
  }
  return violations;
}
