import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";

/**
 * Readies the e2e tests' world before any of them runs, so that `npm test` works on a fresh
 * machine and a missing piece fails every e2e test with its name, never skips one:
 * - a Pulumi CLI: the one on PATH, else scripts/setup's toolchain (built from the Go module proxy
 *   on first use, cached after), whose env file is applied to this process and so to the workers;
 * - a cluster: the kubeconfig in SWITCH_E2E_KUBECONFIG (kind, a real cluster…), else the local
 *   kwok cluster of scripts/cluster.ts, started here if it is not running (and deleted afterwards
 *   if this run created it).
 */

const root = join(import.meta.dirname, "..", "..");

/** A Pulumi CLI answers on PATH. */
export function hasPulumi(): boolean {
  return spawnSync("pulumi", ["version"], { stdio: "ignore" }).status === 0;
}

/** Runs scripts/setup and takes the environment its env file makes. */
function applyToolchain(): void {
  const setup = spawnSync(join(root, "scripts", "setup"), { cwd: root, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" });
  if (setup.status !== 0) {
    throw new Error(`e2e: no Pulumi CLI on PATH, and scripts/setup could not provide one (exit ${setup.status}); see its message above`);
  }
  const envFile = setup.stdout.trim();
  const environment = execFileSync("bash", ["-c", 'source "$1" && env -0', "env", envFile], { encoding: "utf8" });
  for (const entry of environment.split("\0")) {
    const split = entry.indexOf("=");
    if (split > 0) {
      process.env[entry.slice(0, split)] = entry.slice(split + 1);
    }
  }
}

/** Runs `npm run cluster -- <command>` (scripts/cluster.ts); its progress goes to stderr. */
export function cluster(command: "up" | "down" | "kubeconfig"): { ok: boolean; stdout: string } {
  const result = spawnSync(process.execPath, ["--import", "tsx", join(root, "scripts", "cluster.ts"), command], {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
    encoding: "utf8",
  });
  return { ok: result.status === 0, stdout: result.stdout.trim() };
}

export default function setup(): (() => void) | undefined {
  if (process.env.SWITCH_TOOLCHAIN === undefined && !hasPulumi()) {
    applyToolchain();
  }
  if (!hasPulumi()) {
    throw new Error("e2e: no Pulumi CLI on PATH; run `env_file=$(scripts/setup) && source \"$env_file\"` or install Pulumi 3.x");
  }
  if (process.env.SWITCH_E2E_KUBECONFIG !== undefined) {
    return undefined;
  }
  if (process.env.SWITCH_TOOLCHAIN === undefined) {
    applyToolchain();
  }
  // `up` is idempotent: it starts whatever of an existing cluster is stopped and waits until it is ready.
  const existed = cluster("kubeconfig").ok;
  const started = cluster("up");
  if (!started.ok) {
    throw new Error("e2e: the local cluster would not start (npm run cluster -- up); see its message above, or set SWITCH_E2E_KUBECONFIG to another cluster's kubeconfig");
  }
  // The workers start after this and inherit it (test/e2e/support.ts reads it).
  process.env.SWITCH_E2E_KUBECONFIG = started.stdout;
  return existed
    ? undefined
    : () => {
        cluster("down");
      };
}
