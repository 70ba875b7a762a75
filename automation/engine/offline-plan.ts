import { createHmac, randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { CDN_POP_CONFIG, parsePopSpec } from "../../domain/contracts/cdn-pop.ts";
import { CONFIG_KEYS } from "../../domain/contracts/config-keys.ts";
import { CONFERENCE_CONFIG } from "../../domain/contracts/conference.ts";
import { CONFIG_NAMESPACE, PROGRAM_KEY, programOfStack, qualifiedKey } from "../../domain/contracts/project.ts";
import { DEFAULT_SITES, TESTBED_CONFIG, parseSites } from "../../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { type Registration, RecordingMocks, STACK_REFERENCE, displayInputs, displayOutputs, evaluateOffline, secretDigests } from "./offline.ts";
import type { RecordedResource } from "./offline-state.ts";
import { stateFile } from "./offline-state.ts";
import { offlineMocks, referencedOutputs } from "./offline-worker.ts";
import { PLACEHOLDER_KUBECONFIG, PLACEHOLDER_PEM, PLACEHOLDER_REPORT_KEY } from "./placeholders.ts";
import { ENCRYPTED_PLACEHOLDER, type StackConfig, readStackConfig } from "./stack-config.ts";

/**
 * What a stack file would make, evaluated offline from a source tree (the working tree, or a
 * revision's, see automation/cli/revision-tree.ts): the registrations `pulumi up` would receive,
 * the outputs, and which secrets placeholders stood in for. Shared by `npm run preview` and its
 * plan diff, so both sides of a diff are evaluated exactly as a preview is.
 */

/** Placeholders that stood in for secrets, by why: not in the stack file, or encrypted in it. */
export interface StoodIn {
  missing: string[];
  encrypted: string[];
}

/** A registration as a plan diff compares it: displayed inputs, and digests that tell a changed secret from an unchanged one. */
export interface PlannedResource extends RecordedResource, Pick<Registration, "urn" | "parent" | "aliases" | "provider" | "ignoreChanges" | "replaceOnChanges"> {
  custom: boolean;
}

export interface StackPlan {
  stack: string;
  registrations: Registration[];
  /** The registrations as a plan diff compares them. */
  resources: PlannedResource[];
  /** The stack's outputs, secrets masked and unknowns named. */
  outputs: unknown;
  placeholders: StoodIn;
  /** Stacks whose outputs this one reads, evaluated offline from their files in the same tree's stacks/ to answer it. */
  referenced: string[];
}

/** Each secret's digest is keyed by this process's own key: equal secrets digest equally within one run, and a digest says nothing of its secret. */
const DIGEST_KEY = randomBytes(32);
const digest = (text: string) => createHmac("sha256", DIGEST_KEY).update(text).digest("hex");

/** How deep stack references are followed (a conference reads its testbed: one). */
const MAX_REFERENCE_DEPTH = 3;

const STACK_FILE = /^Pulumi\.(.+)\.ya?ml$/;

/** Every key of the project's namespace that a stack program reads (Pulumi.yaml declares or documents each). */
const KNOWN_KEYS: readonly string[] = CONFIG_KEYS.map((key) => qualifiedKey(key));

/** The stack files of a tree's stacks/, by stack name. */
export function stackFilesOf(root: string): Map<string, string> {
  const dir = join(root, "stacks");
  return new Map(readdirSync(dir).flatMap((file) => {
    const stack = STACK_FILE.exec(file)?.[1];
    return stack === undefined ? [] : [[stack, join(dir, file)] as const];
  }));
}

/** The stack a file is named for (Pulumi.<stack>.yaml), or undefined. */
export function stackOfFile(file: string): string | undefined {
  return STACK_FILE.exec(file)?.[1];
}

/**
 * Evaluates the stack file at `path` with the stack program of the tree at `root` (its
 * stacks/index.ts). A stack reference is answered with the outputs of the referenced stack's own
 * file in the tree's stacks/, evaluated as an `up` would leave them: a conference previews against
 * its testbed without either existing. As a preview (`preview`, the default) values only a
 * deployment knows stay unknown.
 */
export async function planStack(root: string, stack: string, path: string, options: { preview?: boolean; depth?: number } = {}): Promise<StackPlan> {
  const { config, secretKeys } = readStackConfig(path);
  refuseUnknownKeys(path, config);
  const placeholders = standInForSecrets(stack, config, secretKeys);
  const program = async () => ((await import(pathToFileURL(join(root, "stacks", "index.ts")).href)) as { default: () => Promise<unknown> }).default();
  const stateDir = mkdtempSync(join(tmpdir(), "switch-vaas-plan-"));
  const referenced: string[] = [];
  try {
    for (;;) {
      // A previewed stack gets no simulated values (they would read as known); a referenced one is
      // evaluated as the offline engine's `up`, whose outputs its readers need whole.
      const mocks = options.preview === false ? offlineMocks(stateDir, stack) : new RecordingMocks(answerReferences(stateDir));
      try {
        const { registrations, outputs } = await evaluateOffline(program, { stack, config, secretKeys, preview: options.preview ?? true, mocks });
        return {
          stack,
          registrations,
          resources: plannedResources(registrations),
          outputs: await displayOutputs(outputs),
          placeholders,
          referenced,
        };
      } catch (error) {
        const wanted = mocks.unansweredReferences.at(0);
        if (wanted === undefined) {
          throw error;
        }
        const name = wanted.split("/").at(-1)!;
        const file = stackFilesOf(root).get(name);
        const depth = options.depth ?? 0;
        if (file === undefined || referenced.includes(name) || depth >= MAX_REFERENCE_DEPTH) {
          const why = file === undefined ? `stacks/ has no Pulumi.${name}.yaml to evaluate in its place` : `its references go ${MAX_REFERENCE_DEPTH} stacks deep or round in a circle`;
          throw new InvalidArgumentsError([`${stack}: the stack "${wanted}" it reads cannot be evaluated offline: ${why}`]);
        }
        const plan = await planStack(root, name, file, { preview: false, depth: depth + 1 });
        writeFileSync(stateFile(stateDir, name), JSON.stringify({ outputs: plan.outputs }));
        referenced.push(name, ...plan.referenced);
      }
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** Registrations as a plan diff compares them: secrets masked, each secret's digest kept. */
export function plannedResources(registrations: readonly Registration[]): PlannedResource[] {
  return registrations.map((registration) => ({
    type: registration.type,
    name: registration.name,
    custom: registration.custom,
    urn: registration.urn,
    ...(registration.parent === undefined ? {} : { parent: registration.parent }),
    aliases: registration.aliases,
    ignoreChanges: registration.ignoreChanges,
    replaceOnChanges: registration.replaceOnChanges,
    ...(registration.provider === undefined ? {} : { provider: registration.provider }),
    inputs: displayInputs(registration.inputs),
    secretDigests: secretDigests(registration.inputs, digest),
  }));
}

/** Stack references answered from the state files in `stateDir`, and nothing else simulated. */
function answerReferences(stateDir: string) {
  return (args: { type: string; inputs: unknown }): Record<string, unknown> => (args.type === STACK_REFERENCE ? referencedOutputs(stateDir, args.inputs) : {});
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
