import * as pulumi from "@pulumi/pulumi";
import {
  CommandError,
  ConcurrentUpdateError,
  type EngineEvent as PulumiEvent,
  type ImportResource,
  LocalWorkspace,
  type LocalWorkspaceOptions,
  PulumiCommand,
  type Stack,
  StackAlreadyExistsError,
  StackNotFoundError,
  type StackSettings,
} from "@pulumi/pulumi/automation/index.js";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, delimiter, isAbsolute, join, resolve } from "node:path";
import { promisify } from "node:util";
import { PROJECT } from "../../domain/contracts/project.ts";
import stackProgram from "../../stacks/index.ts";
import {
  type ChangeAction,
  type Engine,
  EngineError,
  type EngineEvent,
  type OperationKind,
  type OperationOptions,
  SECRET_MASK,
  type StackConfigMap,
  type StackOutputs,
  type StackSpec,
  isEngineError,
  reportsChange,
} from "./engine.ts";
import { OfflineEngine } from "./offline-engine.ts";
import type { PlannedResource } from "./offline-worker.ts";
import { isSecretEnvelope } from "./offline.ts";

/**
 * The local engine: the stack programs run inline by the real Pulumi CLI through the Automation
 * API (../shared/reference/pulumi.md §1), against any Pulumi backend, with passphrase secrets.
 *
 * Each stack has a workspace directory of its own (`<dataDir>/workspaces/<stack>`): the CLI keeps
 * per-directory state in PULUMI_HOME that concurrent `stack select`s in one directory corrupt
 * (pulumi/pulumi#8186), and the stack file there keeps the stack's config and encryption salt.
 * One PulumiCommand serves every workspace, so no operation pays a `pulumi version` first.
 */

export interface LocalEngineOptions {
  /** The service's data directory; workspaces go to <dataDir>/workspaces/<stack>, the default file backend to <dataDir>/state. */
  dataDir: string;
  /** Any Pulumi backend URL (file://, gs://, s3://…). Defaults to file://<dataDir>/state (created if missing). */
  backendUrl?: string;
  /** Passphrase for secrets. Defaults to env PULUMI_CONFIG_PASSPHRASE, else the file <dataDir>/passphrase, created on first run with 32 random bytes (hex) and mode 0600. */
  passphrase?: string;
  /** PULUMI_HOME for every CLI call; defaults to the user's. */
  pulumiHome?: string;
  /** Resource transforms registered before the program runs (tests use them to shorten awaits). */
  transforms?: pulumi.ResourceTransform[];
}

const execFileAsync = promisify(execFile);

/** Where `pulumi` is missing or unusable, what to do about it. */
export const NO_CLI_FIX =
  'run `env_file=$(scripts/setup) && source "$env_file"` (the project\'s pinned toolchain), or install Pulumi 3.x from https://www.pulumi.com/docs/iac/download-install/';

const PASSPHRASE_FILE = "passphrase";
const PASSPHRASE_BYTES = 32;
/** The project's stacks as `pulumi stack ls` sees them: a workspace of the project with no stack of its own. */
const LISTING_DIR = "project";
/** Where stack outputs are read (`pulumi stack output`): a workspace of the project whose files nothing rewrites while it reads. */
const OUTPUTS_DIR = "outputs";
/** How long `pulumi stack output` may take: it reads one file of the backend. */
const OUTPUTS_TIMEOUT_MS = 60_000;
/** The most of its output read: a stack's outputs are a few kilobytes. */
const OUTPUTS_MAX_BYTES = 16 * 1024 * 1024;
/** The CLI's words for a stack the backend does not have (as automation/errors.js notFoundRegex reads them). */
const STACK_NOT_FOUND = /no stack named.*found/;
/** Where the planner (an offline engine) keeps the outputs it was told of: <dataDir>/planner. */
const PLANNER_DIR = "planner";
/** The types of provider resources ("pulumi:providers:kubernetes"): a provider needs none. */
const PROVIDER_TYPE_PREFIX = "pulumi:providers:";
/** The resource whose outputs are the stack's. */
const ROOT_TYPE = "pulumi:pulumi:Stack";
/** The file bucket's sidecar of a blob's attributes. */
const ATTRS_SUFFIX = ".attrs";
/**
 * The CLI warns of every plugin it takes from PATH rather than its plugin directory
 * (sdk/go/common/workspace/plugins.go GetPluginPath). PATH is where scripts/setup puts them, on
 * purpose, so the warning says nothing to a user of the service.
 */
const AMBIENT_PLUGIN = /^using pulumi-[a-z]+-[a-z0-9-]+ from \$PATH at /;

/** What a stack name must look like to be a directory name as well: no separators, no `..`. */
const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Whole secret values shorter than this are not masked: masking "1" would mangle every message. */
const MIN_MASKED_LENGTH = 4;
/** Lines of a multi-line secret (a kubeconfig's key data, say) are masked on their own from this length. */
const MIN_MASKED_FRAGMENT = 16;
/** How CommandError's message (automation/cmd.js CommandResult.toString) starts each of its parts. */
const COMMAND_RESULT_FIELD = /^ (stdout|stderr|err\?): /;
/** Error messages are stored and shown; the CLI's error lines are cut to this. */
const MAX_MESSAGE_LENGTH = 4000;

/** How execa reports a command it could not start (automation/cmd.js passes its message on as stderr). */
const NOT_STARTED = "Command failed with ENOENT";

/** Any per-stack call; each holds the stack for as long as it runs. */
type Call = OperationKind | "cancel" | "outputs" | "stacks";

interface Context {
  call: Call;
  stack: string;
  signal: AbortSignal | undefined;
  /** Texts to replace by SECRET_MASK in whatever leaves the engine. */
  secrets: readonly string[];
}

/**
 * How an error of an operation becomes an EngineError: the first row whose `when` holds decides,
 * as the Pulumi Kubernetes Operator keeps its one table from CLI errors to codes
 * (agent/pkg/server/pulumi_errors.go). The Automation API has already classified the CLI's stderr
 * (automation/errors.js createCommandError: "no stack named.*found", "the stack is currently locked
 * by", "[409] Conflict").
 */
const ERROR_TABLE: readonly { when: (error: unknown, context: Context) => boolean; then: (error: unknown, context: Context) => EngineError }[] = [
  {
    // Whatever the CLI said after its SIGINT, the caller asked for it.
    when: (_, context) => context.signal?.aborted === true,
    then: (_, context) => {
      const timedOut = (context.signal?.reason as { name?: unknown } | undefined)?.name === "TimeoutError";
      return new EngineError("cancelled", `${context.call} of ${context.stack} was cancelled${timedOut ? ": it ran past its time limit" : ""}`);
    },
  },
  {
    when: (error) => error instanceof ConcurrentUpdateError,
    then: (error, context) =>
      new EngineError("conflict", `${context.stack} is locked by another operation (${errorLines(error) || "the backend holds its lock"}); it may be retried once that ends, or after cancel if the lock's process died`),
  },
  {
    // Only up creates a stack; every other call is told apart before it reaches here.
    when: (error) => error instanceof StackNotFoundError,
    then: (_, context) => new EngineError("failed", `the stack ${context.stack} does not exist; there is nothing to ${context.call}`),
  },
  {
    // execa could not start the CLI at all (a binary removed since create(), say).
    when: (error) => error instanceof CommandError && error.message.includes(NOT_STARTED),
    then: () => new EngineError("unavailable", `the Pulumi CLI could not be started; ${NO_CLI_FIX}`),
  },
  {
    when: () => true,
    then: (error, context) => new EngineError("failed", errorLines(error) || `${context.call} of ${context.stack} failed: ${fallbackReason(error)}`),
  },
];

export class LocalEngine implements Engine {
  readonly kind = "local";
  /** The stacks with a call running, and the call's settling. */
  private readonly running = new Map<string, Promise<void>>();
  /** The workspace `outputs` reads in, made once. */
  private outputsWorkspace: Promise<LocalWorkspace> | undefined;
  private closed = false;

  private constructor(
    private readonly command: PulumiCommand,
    private readonly dataDir: string,
    private readonly backendUrl: string,
    private readonly passphrase: string,
    private readonly pulumiHome: string | undefined,
    private readonly transforms: readonly pulumi.ResourceTransform[],
    private readonly planner: OfflineEngine,
  ) {}

  /** Finds the CLI, the backend and the passphrase. Throws EngineError("unavailable") when there is no usable CLI. */
  static async create(options: LocalEngineOptions): Promise<LocalEngine> {
    let command: PulumiCommand;
    try {
      const cli = onPath("pulumi");
      command = await PulumiCommand.get(cli === undefined ? undefined : { root: ownSessionCli(cli, options.dataDir) });
    } catch (error) {
      // The SDK's own refusals (a CLI of another major version…) name the version; a missing
      // binary is execa's ENOENT. Neither message carries anything secret, nor a stack trace.
      const reason = error instanceof CommandError && error.message.includes(NOT_STARTED) ? "no `pulumi` on PATH" : firstLine(error);
      throw new EngineError("unavailable", `the local engine needs the Pulumi CLI: ${reason}; ${NO_CLI_FIX}`);
    }
    const backendUrl = options.backendUrl ?? `file://${join(options.dataDir, "state")}`;
    if (options.backendUrl === undefined) {
      // The file backend refuses a directory that does not exist.
      mkdirSync(join(options.dataDir, "state"), { recursive: true });
    }
    mkdirSync(join(options.dataDir, "workspaces"), { recursive: true });
    // An empty passphrase is one Pulumi accepts and anyone can guess: it counts as none.
    const passphrase = nonEmpty(options.passphrase) ?? nonEmpty(process.env.PULUMI_CONFIG_PASSPHRASE) ?? passphraseFile(options.dataDir);
    // One worker: plans are a few dozen milliseconds each, and a worker holds a whole Node.js.
    const planner = new OfflineEngine({ dataDir: join(options.dataDir, PLANNER_DIR), workers: 1 });
    // Loading Pulumi in the worker takes a second or two; the first conference should not wait for it.
    planner.prestart();
    return new LocalEngine(command, options.dataDir, backendUrl, passphrase, options.pulumiHome, options.transforms ?? [], planner);
  }

  /**
   * Creates the stack if it is new, writes its config, and runs `up`. A new stack's steps are
   * counted offline (`planner`), exactly as the update will take them and in milliseconds; only a
   * stack with state, whose steps depend on what it has, pays for a `pulumi preview` — unless the
   * caller skips it (OperationOptions `skipPreview`: every step counts then, of the planner's
   * count of what the program registers, or of the previous state's resources where the program
   * cannot be evaluated offline). The outputs and the changes come from the update's own events.
   */
  up(spec: StackSpec, options: OperationOptions = {}): Promise<StackOutputs> {
    const secrets = secretTexts(spec.config, this.passphrase);
    return this.exclusive({ call: "up", stack: spec.stack, signal: options.signal, secrets }, async (context) => {
      const { stack, created } = await this.createOrSelect(spec.stack);
      await this.applyConfig(stack, spec.config);
      const skipPreview = options.skipPreview === true && !created;
      const total = skipPreview
        ? ((await this.plannedCreates(spec, context)) ?? resourceCount((await stack.exportStack()).deployment))
        : ((created ? await this.plannedCreates(spec, context) : undefined) ?? (await this.plannedSteps(stack, context, options.onEvent)));
      context.signal?.throwIfAborted();
      const report = this.reporter(total, context, options.onEvent, skipPreview);
      const changes = new ChangeLog();
      let outputs: StackOutputs | undefined;
      await withoutSummary(stack).up({
        signal: context.signal,
        color: "never",
        onEvent: (event) => {
          report(event);
          changes.record(event);
          const step = event.resOutputsEvent?.metadata;
          if (step?.type === ROOT_TYPE && step.new !== undefined) {
            outputs = masked(step.new.outputs ?? {}) as StackOutputs;
          }
        },
      });
      // The engine reports the root's outputs when the program registers them; should an update
      // ever end without, the state has them.
      outputs ??= stackOutputs((await stack.exportStack()).deployment);
      this.planner.remember(spec.stack, outputs);
      changes.report(options.onEvent);
      return outputs;
    });
  }

  destroy(stack: string, options: OperationOptions = {}): Promise<void> {
    return this.exclusive({ call: "destroy", stack, signal: options.signal, secrets: [this.passphrase] }, async (context) => {
      const selected = await this.selectIfExists(stack);
      if (selected === undefined) {
        return;
      }
      context.secrets = await this.stackSecrets(selected);
      const state = await selected.exportStack();
      // A destroy without a refresh first (after a kill) would forget these objects with the stack.
      const adopted = await this.adoptInterruptedCreates(selected, state.deployment, context, options.onEvent);
      const report = this.reporter(resourceCount(state.deployment) + adopted, context, options.onEvent);
      const changes = new ChangeLog();
      await withoutSummary(selected).destroy({
        signal: context.signal,
        color: "never",
        onEvent: (event) => {
          report(event);
          changes.record(event);
        },
      });
      await selected.workspace.removeStack(stack);
      rmSync(this.workDir(stack), { recursive: true, force: true });
      changes.report(options.onEvent);
    });
  }

  refresh(stack: string, options: OperationOptions = {}): Promise<void> {
    return this.exclusive({ call: "refresh", stack, signal: options.signal, secrets: [this.passphrase] }, async (context) => {
      const selected = await this.selectIfExists(stack);
      if (selected === undefined) {
        throw new EngineError("failed", `the stack ${stack} does not exist; there is nothing to refresh`);
      }
      context.secrets = await this.stackSecrets(selected);
      const state = await selected.exportStack();
      const adopted = await this.adoptInterruptedCreates(selected, state.deployment, context, options.onEvent);
      const onEvent = this.reporter(resourceCount(state.deployment) + adopted, context, options.onEvent);
      // The pending operations are all stale now: their objects are adopted or never were.
      await withoutSummary(selected).refresh({ clearPendingCreates: true, signal: context.signal, color: "never", onEvent });
    });
  }

  cancel(stack: string): Promise<void> {
    return this.exclusive({ call: "cancel", stack, signal: undefined, secrets: [this.passphrase] }, async () => {
      this.repairFileBackend(stack);
      // On a DIY backend this deletes the stack's lock files and nothing else
      // (pkg/backend/diy/backend.go CancelCurrentUpdate); a stack without a lock is no error.
      await (await this.selectIfExists(stack))?.cancel();
    });
  }

  /**
   * Read beside whatever operation runs on the stack, never refused for one: `pulumi stack output`
   * takes no lock (pkg/backend/diy/backend.go locks only in CreateStack, RemoveStack, Update,
   * Import, Refresh, Destroy and ImportDeployment; diyStack.SnapshotStackOutputs reads the last
   * checkpoint), selects no stack, and without --show-secrets reads the state through a blinding
   * secrets provider, printing every secret, nested ones too, as "[secret]"
   * (pkg/cmd/pulumi/stack/stack_output.go, display.MassageSecrets). During an `up` these are the
   * outputs of the last checkpoint written: the previous update's until this one registers its own.
   */
  async outputs(stack: string): Promise<StackOutputs | undefined> {
    const context: Context = { call: "outputs", stack, signal: undefined, secrets: [this.passphrase] };
    if (this.closed) {
      throw new EngineError("unavailable", "the local engine is shutting down");
    }
    if (!STACK_NAME.test(stack)) {
      throw new EngineError("failed", `${JSON.stringify(stack)} is not a stack name; use letters, digits, '-', '_' and '.', starting with a letter or digit`);
    }
    let outputs: StackOutputs;
    try {
      const workspace = await (this.outputsWorkspace ??= LocalWorkspace.create(this.workspaceOptions(join(this.dataDir, OUTPUTS_DIR))));
      const result = await execFileAsync(this.command.command, ["stack", "output", "--json", "--stack", stack], {
        cwd: workspace.workDir,
        env: { ...process.env, ...this.commandEnv() },
        timeout: OUTPUTS_TIMEOUT_MS,
        maxBuffer: OUTPUTS_MAX_BYTES,
      });
      outputs = masked(JSON.parse(result.stdout)) as StackOutputs;
    } catch (error) {
      const { code, stderr, killed } = error as { code?: unknown; stderr?: unknown; killed?: unknown };
      if (typeof stderr === "string" && STACK_NOT_FOUND.test(stderr)) {
        return undefined;
      }
      if (code === "ENOENT") {
        throw new EngineError("unavailable", `the Pulumi CLI could not be started; ${NO_CLI_FIX}`);
      }
      const reason = typeof stderr === "string" ? errorLines(new Error(stderr)) : "";
      throw toEngineError(new EngineError("failed", reason || `reading the outputs of ${stack} failed: ${killed === true ? `the CLI ran past ${OUTPUTS_TIMEOUT_MS} ms` : firstLine(error)}`), context);
    }
    // The testbed's, above all: the conferences' plans read their clusters from it.
    this.planner.remember(stack, outputs);
    return outputs;
  }

  async stacks(): Promise<string[]> {
    try {
      const workspace = await LocalWorkspace.create(this.workspaceOptions(join(this.dataDir, LISTING_DIR)));
      const summaries = await workspace.listStacks();
      // A DIY backend may answer with "organization/<project>/<stack>".
      return summaries.map((summary) => summary.name.split("/").at(-1)!);
    } catch (error) {
      throw toEngineError(error, { call: "stacks", stack: PROJECT, signal: undefined, secrets: [this.passphrase] });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running.values()]);
    await this.planner.close();
  }

  /**
   * Brings into the state the objects of creates an interrupted run left pending, so that a
   * destroy deletes them; returns how many it adopted.
   *
   * A create the CLI was killed in (kill -9, a lost machine) stays pending through every
   * later update and refresh (pkg/backend/snapshot.go: "we don't want to clear pending CREATE
   * operations"), and its object, if the create reached the cluster, is in no resource a
   * destroy deletes. Without a terminal a refresh can clear such creates or import them by
   * id (pkg/cmd/pulumi/operations/refresh.go, --clear-pending-creates and
   * --import-pending-creates), but the Node Automation API offers `clearPendingCreates` alone
   * (automation/stack.js refresh; `importPendingCreates` is the Go SDK's). Clearing alone
   * leaks: a conference killed while its namespace was being created keeps that namespace
   * after its destroy. So each interrupted Kubernetes create is imported first, by the id the
   * provider gives every object ("<namespace>/<name>", or "<name>"), from the name its inputs
   * already hold; `pulumi import` answers "does not exist" for a create that never reached
   * the cluster. A refresh then clears the pending operations, all stale; a destroy removes
   * them with the stack.
   *
   * Why not upsert instead, by an `up` after clearing? @pulumi/kubernetes 4.25 does create by
   * server-side apply, a PATCH that upserts (provider/pkg/await/await.go Creation: "we
   * currently always upsert the object"; 4.29 and later fail with AlreadyExists instead), but
   * under a new field manager, so an object whose values differ (a freshly drawn password) is
   * refused as a field conflict; and an up runs the whole program only to repair. Nor by
   * editing the exported state: Stack.importStack writes the decrypted state to os.tmpdir()
   * and leaves it there when the import fails (automation/localWorkspace.js importStack).
   */
  private async adoptInterruptedCreates(
    stack: Stack,
    deployment: unknown,
    context: Context,
    onEvent: ((event: EngineEvent) => void) | undefined,
  ): Promise<number> {
    let adopted = 0;
    const forgotten: PendingCreate[] = [];
    for (const create of pendingCreates(deployment)) {
      context.signal?.throwIfAborted();
      const adoption = importOf(create);
      if (adoption === undefined) {
        forgotten.push(create);
        continue;
      }
      try {
        await stack.import({ ...adoption, protect: false, generateCode: false, color: "never" });
        adopted++;
      } catch (error) {
        // Never made (pkg/resource/deploy/step.go ImportStep); anything else leaves the pending
        // create where it is, for a retry.
        if (!(error instanceof CommandError && error.message.includes(`resource '${adoption.resources[0]!.id}' does not exist`))) {
          throw error;
        }
      }
    }
    if (forgotten.length > 0) {
      onEvent?.({ type: "diagnostic", severity: "warning", message: mask(untrackedCreatesWarning(forgotten, deployment), context.secrets) });
    }
    return adopted;
  }

  /**
   * Removes what a CLI killed mid-write leaves in a file backend: the file bucket writes a blob's
   * `.attrs` sidecar with os.Create and then its JSON (gocloud.dev blob/fileblob/attrs.go
   * setAttrs), so a kill in between leaves it empty, and every later read of the stack fails with
   * "failed to load checkpoint: EOF" — `pulumi stack ls` too. A missing sidecar reads as no
   * attributes (getAttrs), so an empty one is deleted; the checkpoint itself is renamed into
   * place whole and stays as the last completed write left it.
   */
  private repairFileBackend(stack: string): void {
    const root = fileBackendRoot(this.backendUrl);
    if (root === undefined) {
      return;
    }
    const pulumiDir = join(root, ".pulumi");
    const candidates = [
      ...filesIn(join(pulumiDir, "stacks", PROJECT)).filter((file) => basename(file).startsWith(`${stack}.json`)),
      ...["locks/organization", "history", "backups"].flatMap((dir) => filesIn(join(pulumiDir, dir, PROJECT, stack))),
    ];
    for (const file of candidates) {
      if (file.endsWith(ATTRS_SUFFIX) && statSync(file).size === 0) {
        rmSync(file, { force: true });
      }
    }
  }

  /**
   * Runs `work` as the stack's one call: a second call on a stack that has one running is refused
   * at once (the service queues them; this is the safety net), and every error leaves as an
   * EngineError with the stack's secrets masked.
   */
  private exclusive<T>(context: Context, work: (context: Context) => Promise<T>): Promise<T> {
    if (this.closed) {
      return Promise.reject(new EngineError("unavailable", "the local engine is shutting down"));
    }
    if (!STACK_NAME.test(context.stack)) {
      return Promise.reject(
        new EngineError("failed", `${JSON.stringify(context.stack)} is not a stack name; use letters, digits, '-', '_' and '.', starting with a letter or digit`),
      );
    }
    if (this.running.has(context.stack)) {
      return Promise.reject(new EngineError("conflict", `${context.stack} is already running an operation in this engine; wait for it to end`));
    }
    let settled!: () => void;
    this.running.set(context.stack, new Promise<void>((resolve) => (settled = resolve)));
    return (async () => {
      try {
        context.signal?.throwIfAborted();
        return await work(context);
      } catch (error) {
        throw toEngineError(error, context);
      } finally {
        // Before the caller resumes, so that its next call on the stack is not refused.
        this.running.delete(context.stack);
        settled();
      }
    })();
  }

  /** The stack, or undefined (and no workspace directory left behind) when the backend has no such stack. */
  private async selectIfExists(stack: string): Promise<Stack | undefined> {
    const existed = existsSync(this.workDir(stack));
    try {
      return await LocalWorkspace.selectStack(this.inlineArgs(stack), this.workspaceOptions(this.workDir(stack)));
    } catch (error) {
      if (error instanceof StackNotFoundError) {
        if (!existed) {
          rmSync(this.workDir(stack), { recursive: true, force: true });
        }
        return undefined;
      }
      throw error;
    }
  }

  private inlineArgs(stack: string) {
    const transforms = this.transforms;
    return {
      stackName: stack,
      projectName: PROJECT,
      // stacks/index.ts picks the stack program from config `switch-vaas:program`, which the
      // service's config always sets.
      program: async () => {
        for (const transform of transforms) {
          pulumi.runtime.registerResourceTransform(transform);
        }
        return stackProgram();
      },
    };
  }

  /** The environment of a CLI call made outside a workspace's methods, as a workspace's own (LocalWorkspace runPulumiCmd). */
  private commandEnv(): Record<string, string> {
    const { envVars, pulumiHome } = this.workspaceOptions(join(this.dataDir, OUTPUTS_DIR));
    return { ...(pulumiHome === undefined ? {} : { PULUMI_HOME: pulumiHome }), ...envVars };
  }

  /** Options of a workspace in `workDir` (made if missing; the SDK refuses one that does not exist). */
  private workspaceOptions(workDir: string): LocalWorkspaceOptions {
    mkdirSync(workDir, { recursive: true });
    return {
      workDir,
      pulumiCommand: this.command,
      ...(this.pulumiHome === undefined ? {} : { pulumiHome: this.pulumiHome }),
      projectSettings: { name: PROJECT, runtime: "nodejs", backend: { url: this.backendUrl } },
      secretsProvider: "passphrase",
      envVars: {
        PULUMI_CONFIG_PASSPHRASE: this.passphrase,
        // The environment's PULUMI_BACKEND_URL would win over the project's backend
        // (pkg/workspace/creds.go GetCurrentCloudURLWithSource), so it is set to the same.
        PULUMI_BACKEND_URL: this.backendUrl,
        PULUMI_SKIP_UPDATE_CHECK: "true",
        // Plugins are what the machine has (scripts/setup puts them on PATH), never a download mid-operation.
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
      },
    };
  }

  private workDir(stack: string): string {
    return join(this.dataDir, "workspaces", stack);
  }

  /** The stack, made if the backend has none (one `stack init`; a `stack select` only when it exists). */
  private async createOrSelect(stack: string): Promise<{ stack: Stack; created: boolean }> {
    try {
      return { stack: await LocalWorkspace.createStack(this.inlineArgs(stack), this.workspaceOptions(this.workDir(stack))), created: true };
    } catch (error) {
      if (!(error instanceof StackAlreadyExistsError)) {
        throw error;
      }
      return { stack: await LocalWorkspace.selectStack(this.inlineArgs(stack), this.workspaceOptions(this.workDir(stack))), created: false };
    }
  }

  /**
   * Makes the stack's config exactly `config`. Without secrets it is written to the stack file
   * directly, as `pulumi config set` would write it: only a secret needs the CLI, to encrypt it.
   */
  private async applyConfig(stack: Stack, config: StackConfigMap): Promise<void> {
    const workspace = stack.workspace as LocalWorkspace;
    // A stack made by `stack init` has a stack file with its encryption salt, and no config yet.
    const settings: StackSettings = await workspace.stackSettings(stack.name).catch(() => ({}));
    if (Object.values(config).every((entry) => entry.secret !== true)) {
      await workspace.saveStackSettings(stack.name, { ...settings, config: Object.fromEntries(Object.entries(config).map(([key, entry]) => [key, entry.value])) });
      return;
    }
    const stale = Object.keys(settings.config ?? {}).filter((key) => !(key in config));
    if (stale.length > 0) {
      await stack.removeAllConfig(stale);
    }
    await stack.setAllConfig(config);
  }

  /**
   * The steps of a new stack's `up`, from what a preview of its program registers offline: one
   * create (or read) for each, the root stack's, and one default provider for each package a
   * resource uses without naming its provider, as the engine makes them. Undefined when the
   * program cannot be evaluated offline, so that the caller asks `pulumi preview`.
   */
  private async plannedCreates(spec: StackSpec, context: Context): Promise<number | undefined> {
    let planned: PlannedResource[];
    try {
      planned = await this.planner.plan(spec, context.signal);
    } catch (error) {
      context.signal?.throwIfAborted();
      if (isEngineError(error) && error.kind === "failed") {
        return undefined;
      }
      throw error;
    }
    const defaultProviders = new Set(planned.filter((resource) => resource.custom && resource.provider === undefined && !resource.type.startsWith(PROVIDER_TYPE_PREFIX)).map((resource) => resource.type.split(":")[0]));
    return planned.length + 1 + defaultProviders.size;
  }

  /**
   * The steps `up` will take. It runs with --skip-preview (automation/stack.js up), so only a
   * preview of its own can tell: the steps its summary counts, "same" aside. A preview can fail
   * where the update succeeds — a Kubernetes dry-run cannot see the namespace the same update
   * creates first, and pulumi-kubernetes then hands the program its inputs instead of the live
   * object (provider/pkg/await/await.go, "If the namespace hasn't been created yet, the preview
   * will always fail") — so a failed preview only bounds the total from below: the steps it had
   * planned when it stopped. The update then raises the total as it finds more.
   */
  private async plannedSteps(stack: Stack, context: Context, onEvent: ((event: EngineEvent) => void) | undefined): Promise<number> {
    let planned = 0;
    try {
      const preview = await stack.preview({
        signal: context.signal,
        color: "never",
        onEvent: (event) => {
          if (event.resourcePreEvent?.planning === true && event.resourcePreEvent.metadata.op !== "same") {
            planned++;
          }
        },
      });
      return Object.entries(preview.changeSummary)
        .filter(([op]) => op !== "same")
        .reduce((sum, [, count]) => sum + (count ?? 0), 0);
    } catch (error) {
      const refusal = toEngineError(error, context);
      if (refusal.kind !== "failed") {
        throw refusal;
      }
      // The update reports the program's own errors, if it has any, as its failure.
      onEvent?.({ type: "diagnostic", severity: "warning", message: "the preview could not plan every step; the progress total grows as the update finds more" });
      return planned;
    }
  }

  /**
   * The stack's secret config values (its kubeconfigs, say) and the passphrase: what no message may
   * show. Only a stack file holding secrets costs a CLI call, to decrypt them.
   */
  private async stackSecrets(stack: Stack): Promise<string[]> {
    const settings = await (stack.workspace as LocalWorkspace).stackSettings(stack.name).catch(() => undefined);
    const encrypted = settings === undefined || Object.values(settings.config ?? {}).some((value) => typeof value === "object" && value !== null && "secure" in value);
    if (!encrypted) {
      return [this.passphrase];
    }
    const config = await stack.getAllConfig();
    return secretTexts(
      Object.fromEntries(Object.entries(config).map(([key, value]) => [key, { value: value.value, secret: value.secret ?? false }])),
      this.passphrase,
    );
  }

  /**
   * Turns the engine's events into ours: a step is done when its outputs or its failure arrive
   * (pkg/engine/update.go sets `planning` on the preview's events only), "same" ones only when
   * `countSame` (a total planned without a preview counts every resource), and warnings and errors
   * are passed on, masked. `total` grows when more steps happen than were planned (a replacement
   * is three steps, planned as one), so that `done` never exceeds it.
   */
  private reporter(planned: number, context: Context, onEvent: ((event: EngineEvent) => void) | undefined, countSame = false): (event: PulumiEvent) => void {
    let done = 0;
    let total = planned;
    onEvent?.({ type: "progress", done, total });
    return (event) => {
      const step = event.resOutputsEvent?.planning === true ? undefined : (event.resOutputsEvent?.metadata ?? event.resOpFailedEvent?.metadata);
      if (step !== undefined && (countSame || step.op !== "same")) {
        done++;
        total = Math.max(total, done);
        onEvent?.({ type: "progress", done, total });
      }
      const diagnostic = event.diagnosticEvent;
      if (diagnostic !== undefined && (diagnostic.severity === "warning" || diagnostic.severity === "error") && !AMBIENT_PLUGIN.test(diagnostic.message)) {
        onEvent?.({ type: "diagnostic", severity: diagnostic.severity, message: mask(stripAnsi(diagnostic.message).trim(), context.secrets) });
      }
    };
  }
}

/**
 * A step's op (apitype.OpType) as the change it makes: a replacement's steps (delete-replaced,
 * replace, create-replacement, in either order) are one "replace"; reads, refreshes, imports and
 * discards change nothing a program declared, and are no change.
 */
const CHANGE_OF_OP: Partial<Record<PulumiOp, ChangeAction>> = {
  create: "create",
  update: "update",
  same: "same",
  delete: "delete",
  replace: "replace",
  "create-replacement": "replace",
  "delete-replaced": "replace",
};

type PulumiOp = NonNullable<PulumiEvent["resOutputsEvent"]>["metadata"]["op"];

/**
 * The changes an operation made, from its engine events: each step's outputs event (the step is
 * done; the preview's, marked `planning`, are not steps) for custom resources (reportsChange),
 * one per resource in the order they were first stepped on, a replacement's steps as one.
 */
class ChangeLog {
  private readonly changes = new Map<string, { resource: string; resourceType: string; action: ChangeAction }>();

  record(event: PulumiEvent): void {
    const step = event.resOutputsEvent?.planning === true ? undefined : event.resOutputsEvent?.metadata;
    const action = step === undefined ? undefined : CHANGE_OF_OP[step.op];
    if (step === undefined || action === undefined || !reportsChange(step.type, (step.new ?? step.old)?.custom === true)) {
      return;
    }
    if (action === "replace" || !this.changes.has(step.urn)) {
      // A URN ends in "::<name>" (resource/urn.go).
      this.changes.set(step.urn, { resource: step.urn.slice(step.urn.lastIndexOf("::") + 2), resourceType: step.type, action });
    }
  }

  /** Tells `onEvent` of every change; call once the operation has succeeded. */
  report(onEvent: ((event: EngineEvent) => void) | undefined): void {
    for (const change of this.changes.values()) {
      onEvent?.({ type: "change", ...change });
    }
  }
}

/** The first executable `name` on PATH, as the shell would run it; undefined when there is none. */
function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const path = join(dir || ".", name);
    try {
      accessSync(path, constants.X_OK);
      return isAbsolute(path) ? path : resolve(path);
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/**
 * An installation root (`<dataDir>/cli/bin/pulumi`) whose `pulumi` runs `cli` in a session of its
 * own, so that a terminal's Ctrl-C reaches the service alone: the service then cancels each
 * operation with one SIGINT to its CLI and waits, as a graceful stop does. Without it the CLI and
 * its providers take the terminal's SIGINT too, and the programs the service runs for them fail
 * mid-call. util-linux's setsid(1) execs in place (the caller is no group leader), so the CLI keeps
 * the pid the Automation API signals. Where there is no setsid, the CLI runs as it is.
 */
function ownSessionCli(cli: string, dataDir: string): string | undefined {
  const setsid = onPath("setsid");
  if (setsid === undefined) {
    return undefined;
  }
  const root = join(dataDir, "cli");
  mkdirSync(join(root, "bin"), { recursive: true });
  const quoted = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;
  writeFileSync(join(root, "bin", "pulumi"), `#!/bin/sh\nexec ${quoted(setsid)} ${quoted(cli)} "$@"\n`, { mode: 0o700 });
  return root;
}

/**
 * The stack as the service runs its operations: the Automation API follows an `up`, a `destroy`
 * and a `refresh` with `pulumi stack history`, and an `up` with `pulumi stack output` twice
 * (automation/stack.js up, destroy, refresh) — CLI processes that each decrypt the state, for a
 * summary and outputs the engine takes from the operation's own events instead. Both are left
 * out here, on a view of the stack, never on the stack itself.
 */
function withoutSummary(stack: Stack): Stack {
  return Object.assign(Object.create(stack) as Stack, {
    outputs: () => Promise.resolve({}),
    info: () => Promise.resolve(undefined),
  });
}

/** The passphrase in `<dataDir>/passphrase`, made on first use; only the service's user can read it. */
function passphraseFile(dataDir: string): string {
  const path = join(dataDir, PASSPHRASE_FILE);
  mkdirSync(dataDir, { recursive: true });
  try {
    // "wx": two services starting at once cannot both write one.
    writeFileSync(path, randomBytes(PASSPHRASE_BYTES).toString("hex"), { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new EngineError("unavailable", `the passphrase file ${path} cannot be written (${(error as NodeJS.ErrnoException).code}); make ${dataDir} writable or give a passphrase`);
    }
  }
  return readFileSync(path, "utf8").trim();
}

function nonEmpty(text: string | undefined): string | undefined {
  return text === "" ? undefined : text;
}

function toEngineError(error: unknown, context: Context): EngineError {
  if (error instanceof EngineError) {
    return new EngineError(error.kind, mask(error.message, context.secrets), error.transient);
  }
  const row = ERROR_TABLE.find((candidate) => candidate.when(error, context))!;
  const mapped = row.then(error, context);
  return new EngineError(mapped.kind, mask(mapped.message, context.secrets), mapped.transient);
}

/**
 * The CLI's `error:` lines (and the lines indented under them, where a provider lists its
 * reasons), without the rest of its output: the diagnostics section and the stderr of a failed
 * command, as automation/errors.js CommandError carries them in its message.
 */
function errorLines(error: unknown): string {
  if (!(error instanceof Error)) {
    return "";
  }
  const lines = stripAnsi(error.message).split("\n");
  const kept: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const at = line.search(/\berror: /);
    if (at < 0 || line.slice(0, at).trim() !== "") {
      continue;
    }
    kept.push(line.slice(at + "error: ".length).trim());
    const indent = at;
    for (let j = i + 1; j < lines.length; j++) {
      const next = lines[j]!;
      const nextIndent = next.length - next.trimStart().length;
      if (next.trim() === "" || nextIndent <= indent || COMMAND_RESULT_FIELD.test(next)) {
        break;
      }
      kept.push(next.trim());
      i = j;
    }
  }
  const unique = [...new Set(kept.filter((line) => line !== ""))];
  const text = unique.join("\n");
  return text.length > MAX_MESSAGE_LENGTH ? `${text.slice(0, MAX_MESSAGE_LENGTH)}…` : text;
}

/** What execa said of a CLI that failed without an error line: its exit code, or the signal that killed it. */
function fallbackReason(error: unknown): string {
  if (error instanceof CommandError) {
    const how = /Command (failed with [^:\n]+|was killed with [^:\n]+)/.exec(error.message)?.[1];
    return how === undefined ? "the CLI failed and said why nowhere" : `the CLI ${how}`;
  }
  return firstLine(error);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0]!.trim();
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}

/**
 * The texts a message must not show: each secret value whole, the strings inside a JSON one (a
 * kubeconfig among the `kubeconfigs`), and the long lines and `key: value` values of a multi-line
 * one (a key's data), which an error may quote on their own; longest first, so a whole value is
 * masked before its parts.
 */
function secretTexts(config: StackConfigMap, passphrase: string): string[] {
  const texts = new Set<string>([passphrase]);
  const add = (text: string, min: number) => {
    if (text.length >= min) {
      texts.add(text);
    }
  };
  const visit = (value: unknown): void => {
    if (typeof value === "string") {
      add(value, MIN_MASKED_LENGTH);
      for (const line of value.split("\n")) {
        add(line.trim(), MIN_MASKED_FRAGMENT);
        const separator = line.indexOf(": ");
        if (separator >= 0) {
          add(line.slice(separator + 2).trim(), MIN_MASKED_FRAGMENT);
        }
      }
    } else if (typeof value === "object" && value !== null) {
      Object.values(value).forEach(visit);
    }
  };
  for (const { value, secret } of Object.values(config)) {
    if (!secret) {
      continue;
    }
    visit(value);
    try {
      visit(JSON.parse(value));
    } catch {
      // Not JSON: the value itself is all there is to mask.
    }
  }
  return [...texts].sort((a, b) => b.length - a.length);
}

function mask(text: string, secrets: readonly string[]): string {
  return secrets.reduce((masked, secret) => masked.replaceAll(secret, SECRET_MASK), text);
}

/**
 * The stack's outputs as the state holds them (the root resource's outputs in `pulumi stack
 * export`), every secret in them — nested ones too — replaced by SECRET_MASK. Stack.outputs()
 * cannot do this: it flags a secret only at the top level and returns nested secrets in
 * plaintext (automation/localWorkspace.js stackOutputs).
 */
function stackOutputs(deployment: unknown): StackOutputs {
  const root = ((deployment as ExportedDeployment | undefined)?.resources ?? []).find((resource) => resource.type === ROOT_TYPE);
  return masked(root?.outputs ?? {}) as StackOutputs;
}

function masked(value: unknown): unknown {
  if (isSecretEnvelope(value)) {
    return SECRET_MASK;
  }
  if (Array.isArray(value)) {
    return value.map(masked);
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, masked(inner)]));
  }
  return value;
}

/** The untyped deployment of `pulumi stack export` (apitype.DeploymentV3), as far as it is read here. */
export interface ExportedDeployment {
  resources?: { urn?: string; type?: string; inputs?: Record<string, unknown>; outputs?: Record<string, unknown> }[];
  pending_operations?: { type?: string; resource?: PendingCreate }[];
}

function resourceCount(deployment: unknown): number {
  return (deployment as ExportedDeployment | undefined)?.resources?.length ?? 0;
}

/** A resource the CLI was killed while creating (apitype.OperationTypeCreating), as the state records it. */
export interface PendingCreate {
  urn: string;
  type?: string;
  custom?: boolean;
  parent?: string;
  provider?: string;
  /** A Kubernetes object's `metadata`, a Docker container's `name`. */
  inputs?: { metadata?: { name?: unknown; namespace?: unknown }; name?: unknown };
}

function pendingCreates(deployment: unknown): PendingCreate[] {
  return ((deployment as ExportedDeployment | undefined)?.pending_operations ?? [])
    .filter((operation) => operation.type === "creating" && typeof operation.resource?.urn === "string")
    .map((operation) => operation.resource!);
}

/** Names in an import file's name table; they never meet a resource's own name. */
const IMPORT_PARENT = "interrupted-create-parent";
const IMPORT_PROVIDER = "interrupted-create-provider";

/**
 * The `pulumi import` that adopts an interrupted Kubernetes create under its own URN: its type,
 * logical name, parent and provider, and the id pulumi-kubernetes gives the object it creates
 * (provider/pkg/provider/provider.go Create: fqObjName, "<namespace>/<name>" or "<name>"). None
 * for anything else: other providers' ids (a Docker container's, say) are the provider's to make.
 */
function importOf(create: PendingCreate): { resources: ImportResource[]; nameTable: Record<string, string> } | undefined {
  const name = create.inputs?.metadata?.name;
  const namespace = create.inputs?.metadata?.namespace;
  if (create.custom !== true || !create.type?.startsWith("kubernetes:") || typeof name !== "string" || create.provider === undefined) {
    return undefined;
  }
  // A provider reference is "<provider urn>::<provider id>".
  const provider = create.provider.slice(0, create.provider.lastIndexOf("::"));
  const nameTable: Record<string, string> = { [IMPORT_PROVIDER]: provider, ...(create.parent === undefined ? {} : { [IMPORT_PARENT]: create.parent }) };
  const logicalName = create.urn.slice(create.urn.lastIndexOf("::") + 2);
  return {
    nameTable,
    resources: [
      {
        type: create.type,
        name: logicalName,
        logicalName,
        id: typeof namespace === "string" && namespace !== "" ? `${namespace}/${name}` : name,
        provider: IMPORT_PROVIDER,
        ...(create.parent === undefined ? {} : { parent: IMPORT_PARENT }),
      },
    ],
  };
}

const DOCKER_CONTAINER = "docker:index/container:Container";

/**
 * What to tell of interrupted creates no import can adopt (importOf): each by its URN, and for a
 * Docker container — whose id Docker draws at random, so that none can be derived to import it
 * by — the command that removes it by the name it was created with, and the host of its provider
 * (its `host` input; the provider's own default, DOCKER_HOST or the local daemon, where it has
 * none). A container's name is fixed (components/cdn-pop), so a later `up` fails to create one
 * where it was made until it is removed.
 */
export function untrackedCreatesWarning(creates: readonly PendingCreate[], deployment: unknown): string {
  const resources = (deployment as ExportedDeployment | undefined)?.resources ?? [];
  const hostOf = (create: PendingCreate) => {
    const providerUrn = create.provider?.slice(0, create.provider.lastIndexOf("::"));
    const host = resources.find((resource) => resource.urn === providerUrn)?.inputs?.host;
    return typeof host === "string" && host !== "" ? host : "the Docker host of its provider (DOCKER_HOST, or the local daemon)";
  };
  const advice = creates
    .filter((create) => create.type === DOCKER_CONTAINER && typeof create.inputs?.name === "string")
    .map((create) => `docker rm -f ${String(create.inputs!.name)} on ${hostOf(create)}`);
  return (
    `${creates.length} interrupted create(s) have no id to find their object by (${creates.map((create) => create.urn).join(", ")}); if it was made, nothing tracks it` +
    (advice.length === 0 ? "" : `: remove by hand what was made — ${advice.join("; ")}`)
  );
}

/** The directory of a file:// backend (with `~` for the home directory, as the CLI reads it), or undefined for any other. */
function fileBackendRoot(url: string): string | undefined {
  if (!url.startsWith("file://")) {
    return undefined;
  }
  const path = decodeURIComponent(url.slice("file://".length).split("?")[0]!);
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

function filesIn(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(dir, entry.name));
  } catch {
    return [];
  }
}
