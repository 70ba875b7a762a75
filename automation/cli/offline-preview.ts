/**
 * `npm start -- [stack] [--json]`: what a stack would create, evaluated by the offline engine from
 * its stacks/Pulumi.<stack>.yaml (default: the testbed). Needs no Pulumi CLI, cloud or cluster;
 * creates nothing.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";
import { kubeconfigWithoutCredentials } from "../../components/testbed/existing-cluster.ts";
import { parsePopSpec } from "../../domain/contracts/cdn-pop.ts";
import { DEFAULT_PROGRAM } from "../../domain/contracts/project.ts";
import { DEFAULT_SITES, parseSites } from "../../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { type Registration, displayInputs, displayOutputs, evaluateOffline, providerName } from "../engine/offline.ts";
import { type StackConfig, readStackConfig } from "../engine/stack-config.ts";

const STACKS_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "stacks");
const DEFAULT_STACK = "testbed";
/** Stands in for a report key the stack file does not set (secret, so never shown). */
const PLACEHOLDER_REPORT_KEY = "offline-placeholder-not-a-key";
/** Stands in for a kubeconfig the stack file does not set; its server name says so wherever it shows. */
const PLACEHOLDER_KUBECONFIG = kubeconfigWithoutCredentials("https://kubeconfig-not-set.invalid", "placeholder");

const USAGE = "usage: npm start -- [stack] [--json]   (stack: a stacks/Pulumi.<stack>.yaml; default testbed)";
let parsed: ReturnType<typeof parseArgs<{ options: { json: { type: "boolean"; default: false } }; allowPositionals: true }>>;
try {
  parsed = parseArgs({ options: { json: { type: "boolean", default: false } }, allowPositionals: true });
} catch (error) {
  console.error(`${(error as Error).message}\n${USAGE}`);
  process.exit(2);
}
const { values, positionals } = parsed;
const stack = positionals[0] ?? DEFAULT_STACK;

try {
  const configPath = join(STACKS_DIR, `Pulumi.${stack}.yaml`);
  if (!existsSync(configPath)) {
    const known = readdirSync(STACKS_DIR).flatMap((file) => /^Pulumi\.(.+)\.yaml$/.exec(file)?.[1] ?? []);
    throw new InvalidArgumentsError([`stack "${stack}" has no stacks/Pulumi.${stack}.yaml; use one of ${known.join(", ")}`]);
  }
  const { config, secretKeys } = readStackConfig(configPath);
  const stoodIn = standInForMissingSecrets(config, secretKeys);

  const { registrations, outputs } = await evaluateOffline(async () => (await import("../../stacks/index.ts")).default(), {
    stack,
    config,
    secretKeys,
  });
  const shownOutputs = await displayOutputs(outputs);

  if (values.json) {
    const shown = registrations.map((registration) => ({ ...registration, inputs: displayInputs(registration.inputs) }));
    console.log(JSON.stringify({ stack, registrations: shown, outputs: shownOutputs }, null, 2));
  } else {
    printPlan(stack, registrations, shownOutputs, stoodIn);
  }
} catch (error) {
  // Messages, not stack traces: every error here names what to fix.
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
}

/**
 * Kubeconfigs and report keys are secrets an operator sets per stack, so an example stack file
 * has none. Offline, where nothing is contacted, a placeholder stands in for each missing one, and
 * the plan says which.
 */
function standInForMissingSecrets(config: StackConfig["config"], secretKeys: string[]): string[] {
  const program = config["switch-vaas:program"] ?? DEFAULT_PROGRAM;
  const fill = (key: string, names: string[], placeholder: string): string[] => {
    const given = z.record(z.string(), z.string()).parse(JSON.parse(config[key] ?? "{}"));
    const missing = names.filter((name) => !(name in given));
    for (const name of missing) {
      given[name] = placeholder;
    }
    config[key] = JSON.stringify(given);
    secretKeys.push(key);
    return missing.map((name) => `${key}.${name}`);
  };
  if (program === "testbed") {
    const sites = parseSites(JSON.parse(config["switch-vaas:sites"] ?? JSON.stringify(DEFAULT_SITES)), "switch-vaas:sites");
    return fill("switch-vaas:kubeconfigs", sites.filter((site) => site.provider === "kubeconfig").map((site) => site.name), PLACEHOLDER_KUBECONFIG);
  }
  if (program === "cdn-pop") {
    const pop = parsePopSpec(JSON.parse(config["switch-vaas:pop"] ?? "null"), "switch-vaas:pop");
    return fill("switch-vaas:reportKeys", pop.hosts.map((host) => host.name), PLACEHOLDER_REPORT_KEY);
  }
  return [];
}

function printPlan(stackName: string, registrations: Registration[], outputs: unknown, stoodIn: string[]): void {
  console.log(`Offline preview of stack "${stackName}" (stacks/Pulumi.${stackName}.yaml).`);
  console.log("Nothing was created: this is what `pulumi up` would register. Values only a deployment knows read (known after up).");
  if (stoodIn.length > 0) {
    console.log(`Not set, so a placeholder stood in (pulumi up needs the real ones): ${stoodIn.join(", ")}.`);
  }
  console.log(`\nResources (${registrations.length}):`);
  const width = Math.max(...registrations.map((registration) => registration.type.length));
  for (const registration of registrations) {
    const via = registration.provider === undefined ? "" : `  (provider ${providerName(registration) ?? "?"})`;
    console.log(`  + ${registration.type.padEnd(width)}  ${registration.name}${via}`);
  }
  const byType = new Map<string, number>();
  for (const registration of registrations) {
    byType.set(registration.type, (byType.get(registration.type) ?? 0) + 1);
  }
  console.log(`\nBy type:`);
  for (const [type, count] of [...byType].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`  ${String(count).padStart(4)}  ${type}`);
  }
  console.log(`\nOutputs:\n${JSON.stringify(outputs, null, 2)}`);
}
