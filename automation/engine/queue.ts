import PQueue from "p-queue";

/**
 * Operations in order (ARCHITECTURE.md "Conference lifecycle"): one at a time per stack — a second
 * operation on a stack waits for the first, it is never rejected — and at most `concurrency` at
 * once over all stacks. The service relies on this, never on the backend's lock, to keep a
 * stack's operations apart.
 */
export class OperationQueue {
  private readonly slots: PQueue;
  /** The last operation queued per stack: the next one on that stack starts after it settles. */
  private readonly tails = new Map<string, Promise<unknown>>();
  private queued = 0;

  constructor(readonly concurrency: number) {
    this.slots = new PQueue({ concurrency });
  }

  /** Runs `work` once every earlier operation on `stack` has settled and a slot is free. */
  run<T>(stack: string, work: () => Promise<T>): Promise<T> {
    this.queued++;
    const previous = this.tails.get(stack) ?? Promise.resolve();
    const result = previous.then(() =>
      this.slots.add(() => {
        this.queued--;
        return work();
      }),
    );
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(stack, tail);
    void tail.then(() => {
      if (this.tails.get(stack) === tail) {
        this.tails.delete(stack);
      }
    });
    return result;
  }

  /** Operations waiting for their stack's turn or for a slot. */
  depth(): number {
    return this.queued;
  }

  /** Operations running now. */
  running(): number {
    return this.slots.pending;
  }

  /** Resolves when nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) {
      await Promise.all([...this.tails.values()]);
    }
  }
}
