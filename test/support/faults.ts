import { spawn } from "node:child_process";
import { join } from "node:path";

/**
 * Real faults for the store and the service (never a mock of the fault): another process holding
 * a database's write lock, as an operator's `sqlite3` shell in a transaction or a backup tool does.
 */

const root = join(import.meta.dirname, "..", "..");

/** A process of its own holding `path`'s write lock (BEGIN IMMEDIATE) until released or killed. */
export interface HeldLock {
  pid: number;
  /** Rolls back, closes and waits for the process to exit. */
  release: () => Promise<void>;
}

/** Bounded: a lock that is not taken within this fails the test rather than hanging it. */
const LOCK_TIMEOUT_MS = 30_000;

export function holdWriteLock(path: string): Promise<HeldLock> {
  // The holder keeps the lock until its stdin closes, and never longer than a test could run.
  const script = `
    import Database from "better-sqlite3";
    const db = new Database(process.argv[1], { timeout: 10000 });
    db.exec("BEGIN IMMEDIATE");
    process.stdout.write("locked\\n");
    const end = () => { db.exec("ROLLBACK"); db.close(); process.exit(0); };
    process.stdin.on("end", end).resume();
    setTimeout(end, 10 * 60_000).unref();
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, path], { cwd: root, stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return new Promise<HeldLock>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the lock holder did not take ${path}'s write lock within ${LOCK_TIMEOUT_MS} ms: ${stderr}`));
    }, LOCK_TIMEOUT_MS);
    child.stdout.setEncoding("utf8").once("data", () => {
      clearTimeout(timer);
      resolve({
        pid: child.pid!,
        release: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the lock holder exited (${code}) before taking ${path}'s write lock: ${stderr}`));
    });
  });
}
