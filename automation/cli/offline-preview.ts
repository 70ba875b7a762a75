/**
 * `npm run preview -- [stack | path/Pulumi.<stack>.yaml] [--json]`: what a stack would create, evaluated
 * by the offline engine from its stack file (default: stacks/Pulumi.testbed.yaml). Needs no Pulumi
 * CLI, cloud or cluster; creates nothing.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { existsSync, readdirSync } from "node:fs";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { CDN_POP_CONFIG, parsePopSpec } from "../../domain/contracts/cdn-pop.ts";
import { CONFIG_KEYS } from "../../domain/contracts/config-keys.ts";
import { CONFERENCE_CONFIG } from "../../domain/contracts/conference.ts";
import { CONFIG_NAMESPACE, PROGRAM_KEY, programOfStack, qualifiedKey } from "../../domain/contracts/project.ts";
import { DEFAULT_SITES, TESTBED_CONFIG, parseSites } from "../../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { type Registration, displayInputs, displayOutputs, evaluateOffline, providerName } from "../engine/offline.ts";
import { PLACEHOLDER_KUBECONFIG, PLACEHOLDER_PEM, PLACEHOLDER_REPORT_KEY } from "../engine/placeholders.ts";
import { ENCRYPTED_PLACEHOLDER, type StackConfig, readStackConfig } from "../engine/stack-config.ts";
import { exitWithUsageError, parseCommandLine } from "./command-line.ts";

const REPOSITORY = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const STACKS_DIR = join(REPOSITORY, "stacks");
const DEFAULT_STACK = "testbed";
const STACK_FILE = /^Pulumi\.(.+)\.ya?ml$/;
const COMMAND_LINE = {
  name: "preview",
  usage: "usage: npm run preview -- [stack | path/to/Pulumi.<stack>.yaml] [--json]   (stack: a stacks/Pulumi.<stack>.yaml; default testbed)",
  options: { json: { type: "boolean", default: false } },
} as const;
const { values, positionals } = parseCommandLine(COMMAND_LINE);
if (positionals.length > 1) {
  exitWithUsageError(COMMAND_LINE, [`give one stack, not ${positionals.length} (${positionals.join(", ")})`]);
}

/** Every key of the project's namespace that a stack program reads (Pulumi.yaml declares or documents each). */
const KNOWN_KEYS: readonly string[] = CONFIG_KEYS.map((key) => qualifiedKey(key));

/** Placeholders that stood in for secrets, by why: not in the stack file, or encrypted in it. */
interface StoodIn {
  missing: string[];
  encrypted: string[];
}

try {
  const { stack, path } = stackFile(positionals[0] ?? DEFAULT_STACK);
  const { config, secretKeys } = readStackConfig(path);
  refuseUnknownKeys(path, config);
  const stoodIn = standInForSecrets(stack, config, secretKeys);

  const { registrations, outputs } = await evaluateOffline(async () => (await import("../../stacks/index.ts")).default(), {
    stack,
    config,
    secretKeys,
  });
  const shownOutputs = await displayOutputs(outputs);

  if (values.json) {
    const shown = registrations.map((registration) => ({ ...registration, inputs: displayInputs(registration.inputs) }));
    console.log(JSON.stringify({ stack, placeholders: stoodIn, registrations: shown, outputs: shownOutputs }, null, 2));
  } else {
    printPlan(stack, shownPath(path), registrations, shownOutputs, stoodIn);
  }
} catch (error) {
  // Messages, not stack traces: every refusal here names what to fix. Anything else is a bug,
  // reported by its message alone all the same, since a stack trace can carry config values.
  console.error(error instanceof Error ? error.message : String(error));
  process.exitCode = 1;
}

/**
 * A misspelt key of the project's namespace is read by no program, so the stack would silently
 * run on defaults (a misspelt program key: the testbed's seven sites).
 */
function refuseUnknownKeys(path: string, config: StackConfig["config"]): void {
  const unknown = Object.keys(config).filter((key) => key.startsWith(`${CONFIG_NAMESPACE}:`) && !KNOWN_KEYS.includes(key));
  if (unknown.length > 0) {
    throw new InvalidArgumentsError(
      unknown.map((key) => `${path}: ${key} is not a config key of this project; correct its spelling or remove it (the keys are ${KNOWN_KEYS.join(", ")})`),
    );
  }
}

/** The stack and its file: a name of stacks/, or a path to a file named as Pulumi names them. */
function stackFile(given: string): { stack: string; path: string } {
  if (given.includes("/") || STACK_FILE.test(given)) {
    const name = STACK_FILE.exec(basename(given))?.[1];
    if (name === undefined) {
      throw new InvalidArgumentsError([`${given} is not named Pulumi.<stack>.yaml; name the stack file after its stack, as Pulumi does`]);
    }
    // npm runs scripts in the package's directory; a relative path is the user's, from where npm was run.
    const path = resolve(process.env.INIT_CWD ?? ".", given);
    if (!existsSync(path)) {
      throw new InvalidArgumentsError([`${given} does not exist; give the path of a stack file, or the name of a stack in stacks/`]);
    }
    return { stack: name, path };
  }
  const path = join(STACKS_DIR, `Pulumi.${given}.yaml`);
  if (!existsSync(path)) {
    const known = readdirSync(STACKS_DIR).flatMap((file) => STACK_FILE.exec(file)?.[1] ?? []);
    throw new InvalidArgumentsError([`stack "${given}" has no stacks/Pulumi.${given}.yaml; use one of ${known.join(", ")}`]);
  }
  return { stack: given, path };
}

function shownPath(path: string): string {
  const inRepository = relative(REPOSITORY, path);
  return inRepository.startsWith("..") ? path : inRepository;
}

/**
 * Kubeconfigs, report keys and TLS keys are secrets an operator sets per stack, so an example
 * stack file has none, and a real one has them encrypted, which nothing offline can read. A
 * placeholder stands in for each one the program needs, and the plan says which. Config the
 * program cannot read at all is left as it is, for the program to report by its key.
 */
function standInForSecrets(stack: string, config: StackConfig["config"], secretKeys: string[]): StoodIn {
  const stoodIn: StoodIn = { missing: [], encrypted: [] };
  // The program the stack will run, or none where its config contradicts it (the program refuses that).
  const program = config[qualifiedKey(PROGRAM_KEY)] ?? programOfStack(stack);
  /** Fills in an entry of the map at `key` for each of `names` that is missing or encrypted. */
  const fill = (key: string, names: readonly string[], placeholder: string) => {
    const text = config[key];
    const wholeEncrypted = text === ENCRYPTED_PLACEHOLDER;
    const given = text === undefined || wholeEncrypted ? {} : valueOf(text);
    if (!isMap(given)) {
      return;
    }
    for (const name of names) {
      if (wholeEncrypted || given[name] === ENCRYPTED_PLACEHOLDER) {
        stoodIn.encrypted.push(`${key}.${name}`);
      } else if (given[name] === undefined) {
        stoodIn.missing.push(`${key}.${name}`);
      } else {
        continue;
      }
      given[name] = placeholder;
    }
    config[key] = JSON.stringify(given);
    if (!secretKeys.includes(key)) {
      secretKeys.push(key);
    }
  };
  if (program === "testbed") {
    const key = qualifiedKey(TESTBED_CONFIG.sites);
    const sites = parsedOrUndefined(() => parseSites(config[key] === undefined ? DEFAULT_SITES : valueOf(config[key]), key));
    fill(
      qualifiedKey(TESTBED_CONFIG.kubeconfigs),
      (sites ?? []).filter((site) => site.provider === "kubeconfig").map((site) => site.name),
      PLACEHOLDER_KUBECONFIG,
    );
  } else if (program === "cdn-pop") {
    const key = qualifiedKey(CDN_POP_CONFIG.pop);
    const pop = parsedOrUndefined(() => parsePopSpec(config[key] === undefined ? undefined : valueOf(config[key]), key));
    fill(qualifiedKey(CDN_POP_CONFIG.reportKeys), (pop?.hosts ?? []).map((host) => host.name), PLACEHOLDER_REPORT_KEY);
  } else if (program === "conference") {
    const key = qualifiedKey(CONFERENCE_CONFIG.tls);
    if (config[key] === ENCRYPTED_PLACEHOLDER) {
      // Its domain is unknown too: previewed without TLS.
      delete config[key];
      stoodIn.encrypted.push(key);
      return stoodIn;
    }
    const tls = config[key] === undefined ? undefined : valueOf(config[key]);
    if (isMap(tls)) {
      for (const [field, label] of [["certificate", "CERTIFICATE"], ["key", "PRIVATE KEY"]] as const) {
        if (tls[field] === ENCRYPTED_PLACEHOLDER) {
          tls[field] = PLACEHOLDER_PEM(label);
          stoodIn.encrypted.push(`${key}.${field}`);
        }
      }
      config[key] = JSON.stringify(tls);
    }
  }
  return stoodIn;
}

/** A config value as the stacks read it (stacks/config.ts): JSON, else the text itself. */
function valueOf(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** What `parse` returns, or undefined when the config is invalid: the program reports that itself, by key. */
function parsedOrUndefined<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (error instanceof InvalidArgumentsError) {
      return undefined;
    }
    throw error;
  }
}

function printPlan(stackName: string, path: string, registrations: Registration[], outputs: unknown, stoodIn: StoodIn): void {
  console.log(`Offline preview of stack "${stackName}" (${path}).`);
  console.log("Nothing was created: this is what `pulumi up` would register. Values only a deployment knows read (known after up).");
  if (stoodIn.missing.length > 0) {
    console.log(`Not set, so a placeholder stood in (pulumi up needs the real ones): ${stoodIn.missing.join(", ")}.`);
  }
  if (stoodIn.encrypted.length > 0) {
    console.log(`Encrypted in the stack file, so a placeholder stood in (offline, nothing is decrypted; pulumi up uses the real ones): ${stoodIn.encrypted.join(", ")}.`);
  }
  console.log(`\nResources (${registrations.length}):`);
  const width = registrations.reduce((widest, registration) => Math.max(widest, registration.type.length), 0);
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
