import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

/**
 * The automation service as its own process, started as `npm start` starts it (node with tsx, from
 * the repository's root) with only the environment a test gives it: for tests that kill it, as a
 * crash or `kill -9` would, and start it again on the same data directory. In-process tests use
 * ./service.ts instead.
 */

const root = join(import.meta.dirname, "..", "..");
const SERVER = "automation/service/server.ts";
/** What server.ts prints once it listens; the address follows. */
const SERVING = /serving on (http:\/\/\S+)/;

/** Loading tsx, Pulumi and the address database on a busy two-core machine takes seconds. */
export const DEFAULT_START_TIMEOUT_MS = 60_000;
/** A graceful stop waits for the operations in flight; a test's service has few. */
export const DEFAULT_STOP_TIMEOUT_MS = 30_000;
/** How much of each stream `account` quotes: the last few log lines, enough to see why it died. */
const ACCOUNT_CHARS = 4000;

export interface ServiceProcessOptions {
  /** The service's environment (PATH and TMPDIR are added); nothing else of the test's reaches it. */
  env: Record<string, string>;
  /** How long to wait for the "serving on" line. Defaults to DEFAULT_START_TIMEOUT_MS. */
  startTimeoutMs?: number;
  /**
   * A process group of its own, as a shell gives a foreground job: `interrupt` then signals the
   * whole group, as a terminal's Ctrl-C does.
   */
  ownGroup?: boolean;
}

export interface ServiceProcess {
  /** Where it listens, as it printed it. */
  url: string;
  pid: number;
  /** Everything it wrote to stderr so far (its notices; refusals at boot). */
  readonly stderr: string;
  /** Everything it wrote to stdout so far (its log lines). */
  readonly stdout: string;
  /** Whether it still runs or how it exited, and the last of what it printed: for a test's failure message. */
  account: () => string;
  /** Its child processes now (the offline engine's workers among them); empty once it exited. */
  children: () => number[];
  /** SIGKILL: no handler runs, nothing is cleaned up. Resolves once it exited. */
  kill9: () => Promise<void>;
  /**
   * SIGKILL to the service and every process under it (the Pulumi CLI and its providers, the
   * offline workers) at once, as a container's death kills them all. Resolves once it exited.
   */
  killTree9: () => Promise<void>;
  /** SIGTERM: it stops taking work and waits for what runs. Resolves with its exit code once it exited. */
  stop: (timeoutMs?: number) => Promise<number | null>;
  /** SIGINT to its whole process group (needs `ownGroup`), as Ctrl-C in its terminal. Resolves with its exit code once it exited. */
  interrupt: (timeoutMs?: number) => Promise<number | null>;
}

export async function startServiceProcess(options: ServiceProcessOptions): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", SERVER], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", ...(process.env.TMPDIR === undefined ? {} : { TMPDIR: process.env.TMPDIR }), ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.ownGroup === true,
  });
  let stderr = "";
  let stdout = "";
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  const exited = exitOf(child);
  const pid = child.pid;
  if (pid === undefined) {
    await exited;
    throw new Error(`the service did not start:\n${stderr}`);
  }

  const timeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = SERVING.exec(stderr);
      if (match !== null) {
        finish(() => resolve(match[1]!));
      }
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      finish(() => reject(new Error(`the service did not say it was serving within ${timeoutMs} ms; it printed:\n${stderr}`)));
    }, timeoutMs);
    const onExit = () => finish(() => reject(new Error(`the service exited (${howExited(child)}) before serving; it printed:\n${stderr}`)));
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      child.stderr.off("data", check);
      child.off("exit", onExit);
      settle();
    };
    child.stderr.on("data", check);
    child.on("exit", onExit);
    check();
  });

  /** Sends the signal, and resolves with the exit code once it exited; SIGKILL and an error after `timeoutMs`. */
  const ended = async (signal: () => void, timeoutMs: number): Promise<number | null> => {
    signal();
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
    if (child.signalCode === "SIGKILL") {
      throw new Error(`the service did not stop within ${timeoutMs} ms; it printed:\n${stderr}`);
    }
    return child.exitCode;
  };

  return {
    url,
    pid,
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    account: () =>
      `the service ${child.exitCode === null && child.signalCode === null ? "still runs" : `exited (${howExited(child)})`}; ` +
      `the end of its stderr:\n${stderr.slice(-ACCOUNT_CHARS)}\nthe end of its stdout:\n${stdout.slice(-ACCOUNT_CHARS)}`,
    children: () => (child.exitCode === null && child.signalCode === null ? childrenOf(pid) : []),
    kill9: async () => {
      child.kill("SIGKILL");
      await exited;
    },
    killTree9: async () => {
      const tree = [pid, ...descendantsOf(pid)];
      for (const member of tree) {
        try {
          process.kill(member, "SIGKILL");
        } catch {
          // It exited on its own meanwhile.
        }
      }
      await exited;
      await waitForExit(tree, DEFAULT_STOP_TIMEOUT_MS);
    },
    stop: (stopTimeoutMs = DEFAULT_STOP_TIMEOUT_MS) => ended(() => child.kill("SIGTERM"), stopTimeoutMs),
    interrupt: (stopTimeoutMs = DEFAULT_STOP_TIMEOUT_MS) => {
      if (options.ownGroup !== true) {
        throw new Error("interrupt needs a service started with ownGroup");
      }
      return ended(() => process.kill(-pid, "SIGINT"), stopTimeoutMs);
    },
  };
}

/** Whether `pid` runs; a zombie (exited, not yet reaped by whoever adopted it) does not. */
export function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The state follows the command name, which is in parentheses and may itself hold them.
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Waits until none of `pids` runs, up to `timeoutMs`; returns those still running. */
export async function waitForExit(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = performance.now() + timeoutMs;
  let running = pids.filter(isRunning);
  while (running.length > 0 && performance.now() < deadline) {
    await delay(100);
    running = running.filter(isRunning);
  }
  return running;
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve();
      return;
    }
    child.once("exit", () => resolve());
    // A spawn that failed (no such executable) emits "error" and may never emit "exit".
    child.once("error", () => resolve());
  });
}

function howExited(child: ChildProcess): string {
  return child.signalCode === null ? `exit ${child.exitCode}` : child.signalCode;
}

/** Every process under `pid`: its children, theirs, and so on. */
function descendantsOf(pid: number): number[] {
  const children = childrenOf(pid);
  return [...children, ...children.flatMap(descendantsOf)];
}

/** The processes whose parent is `pid`, from /proc (Linux). */
function childrenOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    if (!/^\d+$/.test(entry)) {
      return [];
    }
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      return parent === pid ? [Number(entry)] : [];
    } catch {
      // It exited while we looked.
      return [];
    }
  });
}
