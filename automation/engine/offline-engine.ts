import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Engine, EngineError, type OperationOptions, type StackOutputs, type StackSpec } from "./engine.ts";
import { type RecordedResource, type ResourceChange, changesOfDestroy, changesOfUp, stateFile } from "./offline-state.ts";
import type { PlannedResource, WorkerMessage, WorkerReply, WorkerRequest } from "./offline-worker.ts";

/**
 * The offline engine: the stack programs on Pulumi's mock runtime, in a pool of worker processes
 * (one operation per process at a time: the mock runtime is process-global), with every stack's
 * state — what its program registered and its outputs, secrets masked — in a JSON file under
 * `<dataDir>/offline`. A conference's StackReference to the testbed reads the testbed's file.
 * Nothing is deployed; the service says so wherever it uses this engine.
 *
 * Locks follow the DIY backend's: an operation holds `<stack>.lock` (created exclusively) while it
 * runs, a lock left by a process that died stays until `cancel`, as `pulumi cancel` clears one.
 *
 * What an operation changed is told from the state it leaves against the state before it
 * (offline-state.ts changesOfUp: Pulumi's create, update, replace, delete or same per resource).
 */

export interface OfflineEngineOptions {
  dataDir: string;
  /** Worker processes, and so operations at once. Defaults to 2. */
  workers?: number;
}

/** A stack as the offline engine keeps it: what its program registered, and its outputs. */
export interface OfflineStackState {
  stack: string;
  resources: RecordedResource[];
  outputs: StackOutputs;
}

interface Lock {
  pid: number;
  operation: string;
  startedAt: string;
}

const WORKER = join(import.meta.dirname, "offline-worker.ts");
const DEFAULT_WORKERS = 2;
/** The key of the digests of secret inputs (RecordedResource `secretDigests`), beside the states; only the service's user reads it. */
const DIGEST_KEY_FILE = "digest.key";
const DIGEST_KEY_BYTES = 32;

export class OfflineEngine implements Engine {
  readonly kind = "offline";
  private readonly stateDir: string;
  private readonly lockDir: string;
  private readonly idle: Worker[] = [];
  private readonly waiting: ((worker: Worker) => void)[] = [];
  private readonly inFlight = new Set<Promise<unknown>>();
  private workers = 0;
  private readonly maxWorkers: number;
  private readonly digestKey: string;
  private closed = false;

  constructor(options: OfflineEngineOptions) {
    this.stateDir = join(options.dataDir, "offline");
    this.lockDir = join(this.stateDir, "locks");
    mkdirSync(this.lockDir, { recursive: true });
    this.maxWorkers = options.workers ?? DEFAULT_WORKERS;
    this.digestKey = digestKey(this.stateDir);
  }

  /**
   * Progress is the worker's, as it happens: the total its preview planned, then one step for each
   * registration of the program while it runs; `total` grows if the program registers more than
   * the preview did, so that `done` never exceeds it (as the local engine's does). With
   * `skipPreview` the total is what the stack's previous state holds (nothing for a new stack).
   * Once the state is written, a `change` for each custom resource.
   */
  up(spec: StackSpec, options: OperationOptions = {}): Promise<StackOutputs> {
    return this.locked(spec.stack, "up", async () => {
      const before = this.state(spec.stack)?.resources ?? [];
      const skipPreview = options.skipPreview === true;
      let total = 0;
      if (skipPreview) {
        options.signal?.throwIfAborted();
        total = before.length;
        options.onEvent?.({ type: "progress", done: 0, total });
      }
      const request: WorkerRequest = { stack: spec.stack, config: spec.config, stateDir: this.stateDir, digestKey: this.digestKey, ...(skipPreview ? { skipPreview } : {}) };
      const reply = await this.evaluate(request, options.signal, (message) => {
        if (message.kind === "planned") {
          total = message.total;
          if (!message.complete) {
            options.onEvent?.({ type: "diagnostic", severity: "warning", message: "the preview could not plan every step; the progress total grows as the update finds more" });
          }
          options.onEvent?.({ type: "progress", done: 0, total });
        } else {
          total = Math.max(total, message.done);
          options.onEvent?.({ type: "progress", done: message.done, total });
        }
      });
      if (!reply.ok) {
        throw new EngineError("failed", reply.message);
      }
      if (!("resources" in reply)) {
        throw new EngineError("failed", "the offline worker answered an up with a plan");
      }
      this.write({ stack: spec.stack, resources: reply.resources, outputs: reply.outputs });
      report(changesOfUp(before, reply.resources), options);
      return reply.outputs;
    });
  }

  /**
   * What a preview of `spec` registers on the mock runtime, and nothing written: the local engine
   * counts a new stack's steps from it rather than from a `pulumi preview`. Fails as the program
   * fails offline (an invoke the mocks cannot answer, a stack it references that this engine was
   * never told of by `remember`).
   */
  async plan(spec: StackSpec, signal?: AbortSignal): Promise<PlannedResource[]> {
    const reply = await this.evaluate({ stack: spec.stack, config: spec.config, stateDir: this.stateDir, planOnly: true }, signal, () => undefined);
    if (!reply.ok) {
      throw new EngineError("failed", reply.message);
    }
    if (!("planned" in reply)) {
      throw new EngineError("failed", "the offline worker answered a plan with an up");
    }
    return reply.planned;
  }

  /** Starts a worker now, so that the first evaluation does not wait for one to load Pulumi. */
  prestart(): void {
    if (this.workers < this.maxWorkers && !this.closed) {
      this.workers++;
      this.idle.push(new Worker());
    }
  }

  /** Keeps `outputs` as the stack's (a stack deployed elsewhere), for the StackReferences of later evaluations. */
  remember(stack: string, outputs: StackOutputs): void {
    this.write({ stack, resources: [], outputs });
  }

  /**
   * Removing the state file is the destroy, all of its steps in one: progress is nothing done, then
   * everything; then a `change` "delete" for each custom resource the state held.
   */
  destroy(stack: string, options: OperationOptions = {}): Promise<void> {
    return this.locked(stack, "destroy", () => {
      const state = this.state(stack);
      if (state === undefined) {
        return Promise.resolve();
      }
      options.signal?.throwIfAborted();
      const total = state.resources.length;
      options.onEvent?.({ type: "progress", done: 0, total });
      rmSync(stateFile(this.stateDir, stack), { force: true });
      options.onEvent?.({ type: "progress", done: total, total });
      report(changesOfDestroy(state.resources), options);
      return Promise.resolve();
    });
  }

  /** Offline state is written whole or not at all, so an interrupted operation leaves nothing pending to repair. */
  refresh(stack: string): Promise<void> {
    return this.locked(stack, "refresh", () => Promise.resolve());
  }

  cancel(stack: string): Promise<void> {
    rmSync(this.lockFile(stack), { force: true });
    return Promise.resolve();
  }

  outputs(stack: string): Promise<StackOutputs | undefined> {
    return Promise.resolve(this.state(stack)?.outputs);
  }

  stacks(): Promise<string[]> {
    return Promise.resolve(
      readdirSync(this.stateDir)
        .filter((file) => file.endsWith(".json"))
        .map((file) => file.slice(0, -".json".length)),
    );
  }

  /** The stacks whose lock is held, by this process or one that died. */
  locks(): string[] {
    return readdirSync(this.lockDir).map((file) => file.replace(/\.lock$/, ""));
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.inFlight]);
    for (const worker of this.idle.splice(0)) {
      worker.process.kill();
    }
  }

  private lockFile(stack: string): string {
    return join(this.lockDir, `${stack}.lock`);
  }

  /** Runs `work` holding the stack's lock; a lock already held is a conflict, as the DIY backend reports it. */
  private locked<T>(stack: string, operation: string, work: () => Promise<T>): Promise<T> {
    if (this.closed) {
      return Promise.reject(new EngineError("unavailable", "the offline engine is shutting down"));
    }
    const lock: Lock = { pid: process.pid, operation, startedAt: new Date().toISOString() };
    try {
      writeFileSync(this.lockFile(stack), JSON.stringify(lock), { flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") {
        return Promise.reject(new EngineError("conflict", `the stack ${stack} is locked by another operation`));
      }
      throw error;
    }
    const running = Promise.resolve().then(work).finally(() => rmSync(this.lockFile(stack), { force: true }));
    this.inFlight.add(running);
    void running.catch(() => undefined).finally(() => this.inFlight.delete(running));
    return running;
  }

  /** What the stack's program registered and output, as the last `up` left it. */
  state(stack: string): OfflineStackState | undefined {
    try {
      return JSON.parse(readFileSync(stateFile(this.stateDir, stack), "utf8")) as OfflineStackState;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return undefined;
      }
      throw error;
    }
  }

  /** Whole or not at all: a kill between the two calls leaves the previous state. */
  private write(state: OfflineStackState): void {
    const file = stateFile(this.stateDir, state.stack);
    writeFileSync(`${file}.tmp`, JSON.stringify(state));
    renameSync(`${file}.tmp`, file);
  }

  private async evaluate(request: WorkerRequest, signal: AbortSignal | undefined, onProgress: (message: Exclude<WorkerMessage, WorkerReply>) => void): Promise<WorkerReply> {
    signal?.throwIfAborted();
    const worker = await this.acquire();
    try {
      return await worker.run(request, signal, onProgress);
    } finally {
      this.release(worker);
    }
  }

  private acquire(): Promise<Worker> {
    const idle = this.idle.pop();
    if (idle !== undefined) {
      return Promise.resolve(idle);
    }
    if (this.workers < this.maxWorkers) {
      this.workers++;
      return Promise.resolve(new Worker());
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(worker: Worker): void {
    // A worker that was stopped or died is replaced by a fresh one.
    const next = worker.alive ? worker : new Worker();
    const waiter = this.waiting.shift();
    if (waiter !== undefined) {
      waiter(next);
    } else if (this.closed) {
      next.process.kill();
      this.workers--;
    } else {
      this.idle.push(next);
    }
  }
}

function report(changes: readonly ResourceChange[], options: OperationOptions): void {
  for (const change of changes) {
    options.onEvent?.({ type: "change", ...change });
  }
}

/** The key in `<stateDir>/digest.key`, made on first use (as the local engine's passphrase file is). */
function digestKey(stateDir: string): string {
  const path = join(stateDir, DIGEST_KEY_FILE);
  try {
    // "wx": two engines starting at once cannot both write one.
    writeFileSync(path, randomBytes(DIGEST_KEY_BYTES).toString("hex"), { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw error;
    }
  }
  return readFileSync(path, "utf8").trim();
}

/** A worker process and the one request it may be answering. */
class Worker {
  readonly process: ChildProcess;
  alive = true;

  constructor() {
    // The programs are TypeScript: the worker loads them as the service does, through tsx.
    this.process = fork(WORKER, [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "ignore", "ignore", "ipc"], serialization: "advanced" });
    this.process.on("exit", () => (this.alive = false));
    this.process.on("error", () => (this.alive = false));
  }

  /** Sends `request`; passes on what the worker says while it runs, and resolves with its reply. */
  run(request: WorkerRequest, signal: AbortSignal | undefined, onProgress: (message: Exclude<WorkerMessage, WorkerReply>) => void): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        if (message.kind === "finished") {
          // A reply that crossed a cancel is the cancel's: the worker is being killed, and what it
          // answered is not written.
          settle(() => (signal?.aborted ? reject(new EngineError("cancelled", "the operation was cancelled")) : resolve(message)));
        } else if (signal?.aborted !== true) {
          try {
            onProgress(message);
          } catch (error) {
            // Not the program's failure, but the operation's: it ends here, and says why; the
            // worker, cut off mid-program, is replaced.
            this.alive = false;
            this.process.kill("SIGKILL");
            settle(() => reject(error instanceof Error ? error : new EngineError("failed", String(error))));
          }
        }
      };
      const onExit = (code: number | null, how: NodeJS.Signals | null) =>
        settle(() => reject(signal?.aborted ? new EngineError("cancelled", "the operation was cancelled") : new EngineError("failed", `the offline worker stopped (${how ?? `exit ${code}`})`)));
      // Marked dead at once, not when its exit arrives: a reply already on its way would otherwise
      // hand the dying process to the next evaluation, which would fail with "stopped (SIGKILL)".
      const onAbort = () => {
        this.alive = false;
        this.process.kill("SIGKILL");
      };
      const settle = (finish: () => void) => {
        this.process.off("message", onMessage);
        this.process.off("exit", onExit);
        signal?.removeEventListener("abort", onAbort);
        finish();
      };
      this.process.on("message", onMessage);
      this.process.on("exit", onExit);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.process.send(request);
    });
  }
}
