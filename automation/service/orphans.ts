import { conferenceName } from "../../domain/contracts/conference.ts";
import { NotFoundError } from "../../domain/errors.ts";
import type { Engine } from "../engine/engine.ts";
import type { OperationQueue } from "../engine/queue.ts";
import type { Store } from "../store/store.ts";

/**
 * Conference stacks the backend holds and no record owns (ARCHITECTURE.md "Engines"; the Pulumi
 * Kubernetes Operator's rule that what exists is reconciled with what is recorded): left when the
 * database was lost or replaced while stacks ran. The service never destroys one on its own — a
 * record restored from a backup would own it again — it reports them (log, metric, the admin route)
 * and an admin destroys each by name.
 */

/** The names the service gives conference stacks; other stacks of the project are not its own. */
const CONFERENCE_STACK = new RegExp(`^${conferenceName("[a-z0-9]{1,40}")}$`);

export interface OrphanStack {
  name: string;
  /** found: nothing runs on it; destroying: an admin asked; failed: the last destroy failed (`error` says why). */
  state: "found" | "destroying" | "failed";
  error?: string;
}

export class OrphanStacks {
  private readonly known = new Map<string, OrphanStack>();
  private readonly work = new Set<Promise<unknown>>();

  constructor(
    private readonly engine: Pick<Engine, "stacks" | "destroy">,
    private readonly store: Pick<Store, "stacks">,
    private readonly queue: OperationQueue,
  ) {}

  /** Compares the backend's conference stacks with the records; returns the orphans, each once. */
  async scan(): Promise<OrphanStack[]> {
    const stacks = (await this.engine.stacks()).filter((stack) => CONFERENCE_STACK.test(stack));
    // Read after the listing: a conference created meanwhile has its record before its stack.
    const owned = this.store.stacks();
    const orphans = new Set(stacks.filter((stack) => !owned.has(stack)));
    for (const name of this.known.keys()) {
      if (!orphans.has(name) && this.known.get(name)!.state !== "destroying") {
        this.known.delete(name);
      }
    }
    for (const name of orphans) {
      if (!this.known.has(name)) {
        this.known.set(name, { name, state: "found" });
      }
    }
    return this.list();
  }

  /** The orphans of the last scan, by name. */
  list(): OrphanStack[] {
    return [...this.known.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Destroys an orphan in the background, through the stack's queue; it leaves the list when the
   * destroy succeeds. A stack that is no orphan (scanned again when the last scan did not find it)
   * is not found.
   */
  async destroy(name: string, onError: (error: unknown) => void): Promise<OrphanStack> {
    if (!this.known.has(name)) {
      await this.scan();
    }
    const orphan = this.known.get(name);
    if (orphan === undefined) {
      throw new NotFoundError(`${name} is not a stack without a record; list them with GET /v1/orphan-stacks`);
    }
    if (orphan.state !== "destroying") {
      const destroying: OrphanStack = { name, state: "destroying" };
      this.known.set(name, destroying);
      const running = this.queue
        .run(name, () => this.engine.destroy(name))
        .then(
          () => this.known.delete(name),
          (error: unknown) => {
            this.known.set(name, { name, state: "failed", error: error instanceof Error ? error.message : String(error) });
            onError(error);
          },
        )
        .finally(() => this.work.delete(running));
      this.work.add(running);
    }
    return this.known.get(name)!;
  }

  /** Waits for the destroys under way (a shutdown lets them finish: no record would resume them). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.work]);
  }
}
