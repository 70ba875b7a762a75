/**
 * The automation service's process (`npm start`): reads its environment, opens the store and an
 * engine, finishes what a previous process left, serves the API, and on SIGINT/SIGTERM stops
 * taking work, cancels what runs (resumed at the next start) and waits for it.
 */
import "../../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import Database from "better-sqlite3";
import closeWithGrace from "close-with-grace";
import type { FastifyBaseLogger } from "fastify";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { DEFAULT_SITES, TESTBED_CONFIG, parseSites } from "../../domain/contracts/testbed.ts";
import { PROGRAM_KEY, PROJECT, qualifiedKey } from "../../domain/contracts/project.ts";
import { isDomainError } from "../../domain/errors.ts";
import { type Engine, type StackConfigMap, isAbandonedProgramCall, isEngineError } from "../engine/engine.ts";
import type { LocalEngineOptions } from "../engine/local.ts";
import { OfflineEngine } from "../engine/offline-engine.ts";
import { PLACEHOLDER_KUBECONFIG } from "../engine/placeholders.ts";
import { OperationQueue } from "../engine/queue.ts";
import { MmdbIpLocator } from "../geolocation/ip-locator.ts";
import { Store } from "../store/store.ts";
import { buildApp } from "./app.ts";
import { TokenRegistry, embeddedTokens } from "./auth.ts";
import { OperationRunner, type RetryPolicy } from "../operations/runner.ts";
import { ConferenceManager } from "./conferences.ts";
import { OrphanStacks } from "./orphans.ts";
import { type ServiceEnvironment, readEnvironment } from "./environment.ts";
import { serviceMetrics } from "./metrics.ts";
import { ClusterRegistry, type RegistrySource } from "./registry.ts";
import { highsSolver } from "../solver/highs.ts";
import { loadPops } from "./loops/pop-config.ts";
import { type LoopClock, type PopLoopSettings, PopLoops } from "./loops/pop-loop.ts";

const DEFAULT_TESTBED = "testbed";

export interface RunningService {
  url: string;
  close: () => Promise<void>;
  /** The service's logger, for what its process notices outside a request. */
  log: FastifyBaseLogger;
}

/** A SWITCH_TESTBED naming a file rather than a stack. */
function isFile(testbed: string): boolean {
  return testbed.includes("/") && !testbed.startsWith("organization/") ? true : /\.(json|ya?ml)$/.test(testbed);
}

/** The stack a conference's StackReference names: on a DIY backend, "organization/<project>/<stack>". */
function qualifiedStack(stack: string): string {
  return stack.includes("/") ? stack : `organization/${PROJECT}/${stack}`;
}

/** The file in the data directory that says which engine its records were made with. */
const ENGINE_FILE = "engine";

/**
 * The engine of the data directory's records, if it has any: the local engine's conferences are
 * real stacks that the offline engine knows nothing of (it would end them as if they never
 * existed), and the offline engine's are evaluations the local engine cannot find.
 */
function recordedEngine(dataDir: string): Engine["kind"] | undefined {
  const path = join(dataDir, ENGINE_FILE);
  if (!existsSync(path)) {
    // A data directory from before this file was kept: each engine leaves its own directory in it.
    return existsSync(join(dataDir, "workspaces")) ? "local" : existsSync(join(dataDir, "offline")) ? "offline" : undefined;
  }
  const kind = readFileSync(path, "utf8").trim();
  if (kind !== "local" && kind !== "offline") {
    throw new Error(`${path} names no engine ("${kind.slice(0, 40)}"); write local or offline into it, as the records in ${dataDir} were made`);
  }
  return kind;
}

function recordEngine(dataDir: string, kind: Engine["kind"]): void {
  writeFileSync(join(dataDir, ENGINE_FILE), `${kind}\n`, { mode: 0o600 });
}

/**
 * SWITCH_ENGINE, or for `auto`: the data directory's engine if it has one; else the local engine
 * when a Pulumi CLI is found and the service's backend has the testbed the registry reads; else the offline
 * engine, saying why. A platform engineer's machine has a CLI long before it has a testbed.
 */
async function chooseEngine(environment: ServiceEnvironment, dataDir: string, notice: (text: string) => void, local: ServiceOverrides["localEngine"]): Promise<Engine> {
  const offline = () => new OfflineEngine({ dataDir, workers: environment.SWITCH_CONCURRENCY });
  const recorded = recordedEngine(dataDir);
  const wanted = environment.SWITCH_ENGINE === "auto" ? recorded : environment.SWITCH_ENGINE;
  if (recorded !== undefined && wanted !== recorded) {
    throw new Error(
      `SWITCH_ENGINE: the records in ${dataDir} were made with the ${recorded} engine, and the ${wanted} engine would not find their stacks; start with SWITCH_ENGINE=${recorded}, or give another SWITCH_DATA_DIR`,
    );
  }
  if (wanted === "offline") {
    return offline();
  }
  const { LocalEngine } = await import("../engine/local.ts");
  let engine: Engine;
  try {
    engine = await LocalEngine.create({ ...local, dataDir, ...(environment.SWITCH_BACKEND_URL === undefined ? {} : { backendUrl: environment.SWITCH_BACKEND_URL }) });
  } catch (error) {
    if (wanted === "local" || !isEngineError(error) || error.kind !== "unavailable") {
      throw error;
    }
    notice(`no Pulumi CLI found (${error.message}); using the offline engine: conferences are evaluated on Pulumi's mock runtime and nothing is deployed`);
    return offline();
  }
  if (wanted === undefined && environment.SWITCH_TESTBED === undefined && (await engine.outputs(DEFAULT_TESTBED)) === undefined) {
    await engine.close();
    notice(
      `the backend ${environment.SWITCH_BACKEND_URL ?? `file://${join(dataDir, "state")}`} (SWITCH_BACKEND_URL) has no stack "${DEFAULT_TESTBED}", so there is no cluster to deploy to; using the offline engine (nothing is deployed). ` +
        `For real conferences bring a testbed up (README, "One machine: the local stack") and start with SWITCH_ENGINE=local and another SWITCH_DATA_DIR; SWITCH_ENGINE=offline silences this`,
    );
    return offline();
  }
  return engine;
}

/** The paper's seven-site testbed, evaluated offline, with stand-ins for the kubeconfigs it lacks. */
function offlineTestbedConfig(): StackConfigMap {
  const kubeconfigSites = parseSites(DEFAULT_SITES, TESTBED_CONFIG.sites).filter((site) => site.provider === "kubeconfig");
  return {
    [qualifiedKey(PROGRAM_KEY)]: { value: "testbed", secret: false },
    [qualifiedKey(TESTBED_CONFIG.kubeconfigs)]: { value: JSON.stringify(Object.fromEntries(kubeconfigSites.map((site) => [site.name, PLACEHOLDER_KUBECONFIG]))), secret: true },
  };
}

/**
 * One service per data directory: a second one would run the first one's operations again. The
 * lock is SQLite's exclusive lock on `service.lock` (a POSIX record lock): the kernel releases it
 * when the process dies, however it dies, so a restart right after kill -9 is never refused and a
 * live service always is — unlike a pid file, which a zombie or a reused pid keeps "alive".
 */
function lockDataDir(dataDir: string): () => void {
  // timeout 0: a held lock is a refusal now, not after better-sqlite3's default five seconds.
  const lock = new Database(join(dataDir, "service.lock"), { timeout: 0 });
  try {
    lock.pragma("locking_mode = EXCLUSIVE");
    lock.exec("BEGIN EXCLUSIVE");
  } catch (error) {
    lock.close();
    if ((error as { code?: string }).code?.startsWith("SQLITE_BUSY") === true) {
      throw new Error(`another switch-vaas service is using ${dataDir}; stop it or give another SWITCH_DATA_DIR`);
    }
    throw error;
  }
  return () => {
    if (lock.open) {
      lock.close();
    }
  };
}

/** How often ended conferences past their retention are deleted. */
const PRUNE_INTERVAL_MS = 60 * 60_000;
/** The most conferences one pass deletes: a pass never holds the store for long. */
const PRUNE_BATCH = 500;

/** Deletes the records of conferences that ended more than `days` ago and left no stack; returns how many. */
export function pruneEnded(store: Store, days: number, now = new Date()): number {
  return store.prune(new Date(now.getTime() - days * 24 * 60 * 60_000), PRUNE_BATCH);
}

/** What a test may change about the service it starts; the process itself takes none. */
export interface ServiceOverrides {
  /** Options of the local engine the environment did not set (the e2e tests shorten its awaits). */
  localEngine?: Pick<LocalEngineOptions, "transforms" | "pulumiHome">;
  /** Wraps the engine the environment chose (to inject failures, or to watch operations). */
  wrapEngine?: (engine: Engine) => Engine;
  retry?: RetryPolicy;
  /** How often unfinished operations nobody runs are looked for. Defaults to the manager's. */
  reconcileIntervalMs?: number;
  /** Where the notices go (the created token among them). Defaults to stderr. */
  print?: (text: string) => void;
  /** Where the log lines go (pino's destination), at SWITCH_LOG_LEVEL. Defaults to stdout. */
  logStream?: { write: (line: string) => void };
  /** The PoP loop's clock (a benchmark's accelerated day) and settings beyond SWITCH_POP_PERIOD_SECONDS. */
  popClock?: LoopClock;
  popLoop?: Partial<PopLoopSettings>;
}

export async function startService(env: NodeJS.ProcessEnv, overrides: ServiceOverrides = {}): Promise<RunningService> {
  const print = overrides.print ?? ((text: string) => process.stderr.write(`${text}\n`));
  const environment = readEnvironment(env);
  // Refused before anything is opened, so a refusal leaves nothing behind.
  const configuredTokens = environment.SWITCH_API_TOKENS === undefined ? undefined : TokenRegistry.parse(environment.SWITCH_API_TOKENS, "SWITCH_API_TOKENS");
  const served = loadPops(env);
  const dataDir = resolve(environment.SWITCH_DATA_DIR);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  // Records, state and tokens are the service's alone, whatever mode the directory had before.
  chmodSync(dataDir, 0o700);
  const unlock = lockDataDir(dataDir);

  // What is open so far; `close` ends exactly that, after a refusal at start as after a stop.
  let engine: Engine | undefined;
  let store: Store | undefined;
  let registry: ClusterRegistry | undefined;
  let runner: OperationRunner | undefined;
  let pops: PopLoops | undefined;
  let orphans: OrphanStacks | undefined;
  let app: Awaited<ReturnType<typeof buildApp>> | undefined;
  let pruning: NodeJS.Timeout | undefined;
  let serving = false;
  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      serving = false;
      registry?.close();
      clearInterval(pruning);
      await pops?.close();
      await runner?.close();
      await orphans?.close();
      await app?.close();
      await engine?.close();
      store?.close();
      unlock();
    })());

  try {
    const chosen = await chooseEngine(environment, dataDir, print, overrides.localEngine);
    engine = overrides.wrapEngine?.(chosen) ?? chosen;
    recordEngine(dataDir, chosen.kind);
    store = new Store({ path: join(dataDir, "switch.db") });
    const queue = new OperationQueue(environment.SWITCH_CONCURRENCY);

    const testbed = environment.SWITCH_TESTBED ?? DEFAULT_TESTBED;
    // A clusters file only says where conferences may go; their stacks still read their clusters'
    // kubeconfigs from a testbed stack's outputs, the default one's.
    const testbedStack = isFile(testbed) ? DEFAULT_TESTBED : testbed;
    const source: RegistrySource = isFile(testbed) ? { kind: "file", path: resolve(testbed), testbed: { engine, stack: testbedStack } } : { kind: "stack", engine, stack: testbed };
    if (engine.kind === "offline" && testbedStack === DEFAULT_TESTBED && (await engine.outputs(DEFAULT_TESTBED)) === undefined) {
      // Nothing of this process runs yet and the data directory is ours: a lock is a dead process's.
      await engine.cancel(DEFAULT_TESTBED);
      await engine.up({ stack: DEFAULT_TESTBED, config: offlineTestbedConfig() });
    }
    registry = new ClusterRegistry(source);
    await registry.load();

    const embedded = configuredTokens === undefined ? embeddedTokens(join(dataDir, "tokens")) : undefined;
    const tokens = configuredTokens ?? embedded!.registry;

    orphans = new OrphanStacks(engine, store, queue);
    const { registry: metrics, observer, popObserver } = serviceMetrics(store, queue, orphans);
    const locator = await MmdbIpLocator.open();
    // The app's logger exists only once the app does, and the app needs the manager.
    let reportError: (error: unknown, context: object) => void = () => undefined;
    const manager = new ConferenceManager({ store, registry, testbedStack: qualifiedStack(testbedStack), locator });
    // A PoP's loop, when SWITCH_POPS names any: HiGHS is loaded only for them.
    pops =
      served.length === 0
        ? undefined
        : new PopLoops({
            store,
            pops: served,
            solver: await highsSolver(),
            ...(overrides.popClock === undefined ? {} : { clock: overrides.popClock }),
            settings: { periodMs: environment.SWITCH_POP_PERIOD_SECONDS * 1000, ...overrides.popLoop },
            observer: popObserver,
            onError: (error, pop) => reportError(error, { pop }),
          });
    runner = new OperationRunner({
      store,
      engine,
      queue,
      owners: pops === undefined ? [manager] : [manager, pops],
      observer,
      ...(overrides.retry === undefined ? {} : { retry: overrides.retry }),
      // Already recorded on the operation; the log says where it happened.
      onError: (error, context) => reportError(error, context),
    });
    manager.runWith(runner);
    pops?.runWith(runner);
    const application = await buildApp({ manager, pops, store, registry, engine, tokens, metrics, orphans, limits: environment, onBackgroundError: (error) => reportError(error, {}), logger: { level: environment.SWITCH_LOG_LEVEL, ...(overrides.logStream === undefined ? {} : { stream: overrides.logStream }) }, ready: () => serving });
    app = application;
    reportError = (error, context) => application.log.error({ err: error, ...context }, "background operation failed");
    // Listening first: a port that is taken refuses the start before any work is resumed.
    const address = await application.listen({ host: environment.HOST, port: environment.PORT });
    const resumed = runner.reconcile();
    if (resumed > 0) {
      application.log.info({ stacks: resumed }, "resuming operations a previous process left unfinished");
    }
    // After the reconciler took up what a previous process left, so that the loop sees its `up`s.
    pops?.start();
    runner.watch(overrides.reconcileIntervalMs, (error) => application.log.error({ err: error }, "reconciling the records with the stacks failed"));
    // What exists is compared with what is recorded once, at start: a stack no record owns was left
    // by a database lost or replaced, and only an admin may destroy it.
    for (const orphan of await orphans.scan()) {
      application.log.warn({ stack: orphan.name }, "a conference stack no record owns; destroy it with DELETE /v1/orphan-stacks/:name once no backup of the records owns it");
    }
    const prunedStore = store;
    pruning = setInterval(() => {
      try {
        pruneEnded(prunedStore, environment.SWITCH_RETENTION_DAYS);
      } catch (error) {
        application.log.error({ err: error }, "pruning ended conferences failed");
      }
    }, PRUNE_INTERVAL_MS).unref();
    registry.watch(undefined, (error) => application.log.warn({ err: error }, "the testbed registry could not be re-read; keeping the last one"));
    if (embedded?.created !== undefined) {
      embedded.created.keep();
      // Printed once, here, to the terminal that started the service; only its digest is kept.
      print(`Created an admin token (shown once; its SHA-256 is in ${join(dataDir, "tokens")}):\n\n  ${embedded.created.token}\n`);
    }
    serving = true;
    if (engine.kind === "offline") {
      print(`switch-vaas is serving on ${address} with the offline engine: conferences are evaluated, nothing is deployed.`);
    } else {
      print(`switch-vaas is serving on ${address} with the local engine.`);
    }
    return { url: address, close, log: application.log };
  } catch (error) {
    await close();
    throw error;
  }
}

if (import.meta.main) {
  try {
    const service = await startService(process.env);
    // Unhandled rejections are sorted out below; what remains of them reaches this as an uncaught exception.
    closeWithGrace({ delay: 60_000, skip: ["unhandledRejection"] }, async ({ err }) => {
      if (err !== undefined) {
        process.stderr.write(`switch-vaas: ${err.message}\n`);
      }
      await service.close();
    });
    process.on("unhandledRejection", (reason) => {
      if (isAbandonedProgramCall(reason)) {
        service.log.warn({ err: reason }, "a stack program's call outlived its operation's CLI; the operation's outcome is the CLI's");
        return;
      }
      // Anything else is a defect: the service stops as on an uncaught exception.
      throw reason;
    });
  } catch (error) {
    // Refusals name the variable and the fix; anything else by its message alone (no config in a trace).
    process.stderr.write(`switch-vaas: ${isDomainError(error) || error instanceof Error ? error.message : String(error)}\n`);
    // startService closed what it had opened; whatever a library left behind must not keep a refused start alive.
    process.exit(1);
  }
}
