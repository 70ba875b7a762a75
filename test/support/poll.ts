import { setTimeout as delay } from "node:timers/promises";

/** Short enough that a test notices at once, long enough not to busy the machine. */
const POLL_INTERVAL_MS = 50;

/** Reads until `done` holds, every `intervalMs`, for at most `timeoutMs`; the error says `what` did not happen and what was seen last. */
export async function poll<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, intervalMs = POLL_INTERVAL_MS): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) {
      return value;
    }
    if (performance.now() > deadline) {
      throw new Error(`${what} within ${timeoutMs} ms; last seen: ${JSON.stringify(value)}`);
    }
    await delay(intervalMs);
  }
}
