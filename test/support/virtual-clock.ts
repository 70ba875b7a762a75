import type { LoopClock } from "../../automation/service/loops/pop-loop.ts";

/**
 * A clock that moves only when told: the PoP loop's (LoopClock) and the instance managers' (`now`,
 * `sleep`) at once, so that a simulated day runs as fast as the work in it. `advanceTo` wakes every
 * sleeper due by then, earliest first, and lets each run until it sleeps again or waits on I/O.
 */
export class VirtualClock implements LoopClock {
  private at: number;
  private readonly sleepers: { due: number; wake: () => void }[] = [];

  constructor(start: number) {
    this.at = start;
  }

  now(): number {
    return this.at;
  }

  date(): Date {
    return new Date(this.at);
  }

  sleepUntil(due: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted || due <= this.at) {
        resolve();
        return;
      }
      const sleeper = {
        due,
        wake: () => {
          signal.removeEventListener("abort", sleeper.wake);
          const index = this.sleepers.indexOf(sleeper);
          if (index >= 0) {
            this.sleepers.splice(index, 1);
          }
          resolve();
        },
      };
      signal.addEventListener("abort", sleeper.wake, { once: true });
      this.sleepers.push(sleeper);
    });
  }

  /** The instance manager's `sleep`. */
  sleep = (ms: number, signal: AbortSignal): Promise<void> => this.sleepUntil(this.at + ms, signal);

  /**
   * Resolves once `count` tasks sleep on this clock: what a caller waits for before `advanceTo`, so
   * that no task still busy with I/O reads the time after the jump and skips its turn.
   */
  async asleep(count: number, timeoutMs = 60_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.sleepers.length < count) {
      if (performance.now() > deadline) {
        throw new Error(`${count} tasks asleep on the virtual clock within ${timeoutMs} ms; ${this.sleepers.length} are`);
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  /** Moves the clock to `to`, waking each sleeper due by then at its own time, in order. */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      const next = this.sleepers.filter((sleeper) => sleeper.due <= to).sort((a, b) => a.due - b.due)[0];
      if (next === undefined) {
        break;
      }
      this.at = Math.max(this.at, next.due);
      next.wake();
      // Let the woken task run to its next sleep (or its next I/O).
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.at = Math.max(this.at, to);
  }
}
