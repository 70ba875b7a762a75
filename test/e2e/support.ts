import * as k8s from "@kubernetes/client-node";
import * as pulumi from "@pulumi/pulumi";
import { type ConfigMap, LocalWorkspace, type PulumiCommand, type Stack } from "@pulumi/pulumi/automation/index.js";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse } from "yaml";
import type { StackConfigMap } from "../../automation/engine/engine.ts";
import { LocalEngine, type LocalEngineOptions } from "../../automation/engine/local.ts";
import { PROJECT, type ProgramName, qualifiedKey } from "../../domain/contracts/project.ts";
import { poll } from "../support/poll.ts";

/**
 * The e2e tests' world: the real Pulumi CLI through the Automation API, a `file://` backend and
 * passphrase secrets in a temporary directory, and the Kubernetes API server whose kubeconfig
 * SWITCH_E2E_KUBECONFIG names (the global setup, test/e2e/global-setup.ts, sets it for the local
 * cluster). Programs are the stacks' own, run inline.
 */

const root = join(import.meta.dirname, "..", "..");

/** Every wait for the cluster ends in seconds, not the provider's default ten minutes. */
export const AWAIT_TIMEOUT_SECONDS = 90;
/** A whole operation that runs past this is cancelled: a stall fails the test, never hangs it. */
export const OPERATION_TIMEOUT_MS = 5 * 60_000;

export interface E2eWorld {
  kubeconfig: string;
  kubeconfigPath: string;
  backendUrl: string;
  envVars: Record<string, string>;
}

let world: E2eWorld | undefined;

/** The backend, passphrase and plugin home of this test file, made once. */
export function e2eWorld(): E2eWorld {
  if (world !== undefined) {
    return world;
  }
  const kubeconfigPath = process.env.SWITCH_E2E_KUBECONFIG;
  if (kubeconfigPath === undefined) {
    throw new Error("e2e: SWITCH_E2E_KUBECONFIG names no cluster; run the tests through vitest (its global setup finds one) or set it");
  }
  const dir = mkdtempSync(join(tmpdir(), "switch-vaas-e2e-"));
  // A file backend's directory must exist before the first stack is made in it.
  mkdirSync(join(dir, "state"));
  world = {
    kubeconfig: readFileSync(kubeconfigPath, "utf8"),
    kubeconfigPath,
    backendUrl: `file://${join(dir, "state")}`,
    envVars: {
      PULUMI_CONFIG_PASSPHRASE: randomBytes(16).toString("hex"),
      // An empty plugin home: whatever the engine loads comes from PATH, never from a download.
      PULUMI_HOME: join(dir, "home"),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    },
  };
  return world;
}

/** Adjusts a resource's inputs before registration, the way a test needs (a timeout, a fault). */
export type Adjust = (args: pulumi.ResourceTransformArgs) => pulumi.ResourceTransformResult | undefined;

/** Every Kubernetes object awaits at most `seconds` (pulumi-kubernetes' own annotation), not its default ten minutes. */
export const awaitsOf = (seconds: number): Adjust => (args) => {
  if (!args.type.startsWith("kubernetes:") || args.type.startsWith("kubernetes:pulumi") || typeof args.props.metadata !== "object") {
    return undefined;
  }
  const metadata = args.props.metadata as { annotations?: Record<string, string> };
  return {
    props: { ...args.props, metadata: { ...metadata, annotations: { ...metadata.annotations, "pulumi.com/timeoutSeconds": String(seconds) } } },
    opts: args.opts,
  };
};

export const shortAwaits = awaitsOf(AWAIT_TIMEOUT_SECONDS);

export interface StackOptions {
  /** Defaults to shortAwaits alone. */
  adjust?: Adjust[];
  /** The CLI to run. Defaults to the `pulumi` on PATH. */
  pulumiCommand?: PulumiCommand;
}

/** A stack of the project with the stack program `program` run inline, and `config` set. */
export async function e2eStack(stackName: string, program: ProgramName, config: ConfigMap, options: StackOptions = {}): Promise<Stack> {
  const adjust = options.adjust ?? [shortAwaits];
  const { backendUrl, envVars } = e2eWorld();
  const stack = await LocalWorkspace.createOrSelectStack(
    {
      stackName,
      projectName: PROJECT,
      program: async () => {
        for (const transform of adjust) {
          pulumi.runtime.registerResourceTransform(transform);
        }
        const module = (await import(`../../stacks/${program}.ts`)) as { default: () => Promise<Record<string, unknown>> };
        return module.default();
      },
    },
    {
      projectSettings: { name: PROJECT, runtime: "nodejs", backend: { url: backendUrl } },
      secretsProvider: "passphrase",
      envVars,
      ...(options.pulumiCommand === undefined ? {} : { pulumiCommand: options.pulumiCommand }),
    },
  );
  await stack.setAllConfig({ [qualifiedKey("program")]: { value: program }, ...config });
  return stack;
}

/** The `local` testbed stack's config, as stacks/Pulumi.local.yaml has it, with the cluster's kubeconfig. */
export function localTestbedConfig(): ConfigMap {
  const file = parse(readFileSync(join(root, "stacks", "Pulumi.local.yaml"), "utf8")) as { config: Record<string, unknown> };
  const config: ConfigMap = {};
  for (const [key, value] of Object.entries(file.config)) {
    config[key] = { value: typeof value === "string" ? value : JSON.stringify(value) };
  }
  config[qualifiedKey("kubeconfigs")] = { value: JSON.stringify({ local: e2eWorld().kubeconfig }), secret: true };
  return config;
}

/** The operation's options every e2e run uses: a bound on its time, its output kept for the failure message. */
export function bounded(): { signal: AbortSignal; onOutput: (text: string) => void; output: () => string } {
  let text = "";
  return { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS), onOutput: (chunk) => (text += chunk), output: () => text };
}

/** Typed clients of the cluster's API. */
export function kubernetes(): { core: k8s.CoreV1Api; apps: k8s.AppsV1Api; rbac: k8s.RbacAuthorizationV1Api; scheduling: k8s.SchedulingV1Api } {
  const config = new k8s.KubeConfig();
  config.loadFromFile(e2eWorld().kubeconfigPath);
  return {
    core: config.makeApiClient(k8s.CoreV1Api),
    apps: config.makeApiClient(k8s.AppsV1Api),
    rbac: config.makeApiClient(k8s.RbacAuthorizationV1Api),
    scheduling: config.makeApiClient(k8s.SchedulingV1Api),
  };
}

/** The API's answer to a call that should fail: its HTTP status and message. */
export async function refusalOf(call: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof k8s.ApiException) {
      const body = typeof error.body === "string" ? (JSON.parse(error.body) as { message?: string }) : (error.body as { message?: string });
      return { status: error.code, message: body.message ?? "" };
    }
    throw error;
  }
  throw new Error("the API server accepted what it should have refused");
}

/** Polls `check` every half second until it gives a value (an error counts as not yet), for at most `seconds`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, seconds = AWAIT_TIMEOUT_SECONDS): Promise<T> {
  const value = await poll(`${what} did not happen`, () => check().catch(() => undefined), (seen) => seen !== undefined, seconds * 1000, 500);
  return value!;
}

/** A ConfigMap as the engines take it (automation/engine/engine.ts): every entry says whether it is secret. */
export function asStackConfig(config: ConfigMap): StackConfigMap {
  return Object.fromEntries(Object.entries(config).map(([key, { value, secret }]) => [key, { value, secret: secret ?? false }]));
}

/** Runs `work` with a local engine of `options`, closed afterwards (the service's own engine, for setup and checks). */
export async function withLocalEngine<T>(options: LocalEngineOptions, work: (engine: LocalEngine) => Promise<T>): Promise<T> {
  const engine = await LocalEngine.create(options);
  try {
    return await work(engine);
  } finally {
    await engine.close();
  }
}

/** Shorter values match by chance, and their base64 cores would be a character or two. */
const MIN_SCANNED_LENGTH = 8;

/**
 * The forms a secret can take in text: itself, and its base64 at each of the three alignments a
 * longer encoded value may put it at (the characters that depend on it alone), so that a secret
 * inside a base64 blob — a Kubernetes Secret's data, a Pulumi checkpoint's — is found too.
 */
function formsOf(secret: string): string[] {
  if (secret.length < MIN_SCANNED_LENGTH) {
    throw new Error(`a value of ${secret.length} characters is too short to scan for; every text would seem to hold it`);
  }
  const bytes = Buffer.from(secret, "latin1");
  const encoded = [0, 1, 2].map((shift) => {
    const text = Buffer.concat([Buffer.alloc(shift), bytes]).toString("base64");
    return text.slice(Math.ceil((8 * shift) / 6), Math.floor((8 * (shift + bytes.length)) / 6));
  });
  return [secret, ...encoded];
}

/** Where each of `secrets` (by name) appears in `places` (texts by where they are), as itself or in base64. */
export function secretsIn(places: ReadonlyMap<string, string>, secrets: Readonly<Record<string, string>>): { where: string; name: string }[] {
  const found: { where: string; name: string }[] = [];
  for (const [name, secret] of Object.entries(secrets)) {
    const forms = formsOf(secret);
    for (const [where, text] of places) {
      if (forms.some((form) => text.includes(form))) {
        found.push({ where, name });
      }
    }
  }
  return found;
}
