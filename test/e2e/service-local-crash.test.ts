import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { setTimeout as delay } from "node:timers/promises";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalEngine, LocalEngineOptions } from "../../automation/engine/local.ts";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { Store } from "../../automation/store/store.ts";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { poll } from "../support/poll.ts";
import { type ServiceProcess, startServiceProcess } from "../support/service-process.ts";
import { OPERATION_TIMEOUT_MS, asStackConfig, eventually, kubernetes, localTestbedConfig, refusalOf, withLocalEngine } from "./support.ts";

/**
 * kill -9 of the whole service — its process, the Pulumi CLI it runs and the providers under it,
 * as a container's death takes them all — at random moments of real deployments and deletions on
 * the local cluster, then a restart on the same data directory: every conference converges (ready
 * or stopped as asked, or failed and cleaned up), no record is lost, no lock or pending operation is
 * left, and nothing outlives a stopped conference in the API server.
 */

const TRIALS = 5;
const SEED = Number(process.env.SWITCH_CRASH_SEED ?? Date.now() % 1_000_000);
const CONVERGE_MS = 2 * OPERATION_TIMEOUT_MS;
const POLL_MS = 250;

const root = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);
const dataDir = mkdtempSync(join(tmpdir(), "switch-vaas-crash-local-"));
const engineOptions: LocalEngineOptions = { dataDir, pulumiHome: join(dataDir, "home") };
const backendUrl = `file://${join(dataDir, "state")}`;
const admin = newToken();
const SMALL = JSON.stringify({ participants: [{ lat: 46.05, lon: 14.51 }], expectedParticipants: 2, lastN: 2 });

type Conference = { id: string; state: string; error?: string; progress: { done: number; total: number } };

const withEngine = <T>(work: (engine: LocalEngine) => Promise<T>): Promise<T> => withLocalEngine(engineOptions, work);

/** The environment of a service process on `serviceDir`, over the file's backend and its passphrase. */
function serviceEnv(serviceDir: string): Record<string, string> {
  return {
    SWITCH_ENGINE: "local",
    SWITCH_DATA_DIR: serviceDir,
    SWITCH_BACKEND_URL: backendUrl,
    PULUMI_CONFIG_PASSPHRASE: readFileSync(join(dataDir, "passphrase"), "utf8").trim(),
    SWITCH_API_TOKENS: tokenEntry("root", "admin", admin),
    HOST: "127.0.0.1",
    PORT: "0",
    SWITCH_LOG_LEVEL: "warn",
  };
}

async function call(service: ServiceProcess, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = { authorization: `Bearer ${admin}`, ...(init.body === undefined ? {} : { "content-type": "application/json" }) };
  try {
    return await fetch(`${service.url}${path}`, { ...init, headers });
  } catch (error) {
    // A refused or reset connection says little by itself; what the service printed says why.
    throw new Error(`${init.method ?? "GET"} ${path} failed (seed ${SEED}): ${String(error)} (${String((error as Error).cause)}); ${service.account()}`, { cause: error });
  }
}

async function conference(service: ServiceProcess, id: string): Promise<Conference> {
  return (await (await call(service, `/v1/conferences/${id}`)).json()) as Conference;
}

function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  return poll(`${what} (seed ${SEED})`, read, done, CONVERGE_MS, POLL_MS);
}

/** The DIY backend's lock files of the project's stacks (pkg/backend/diy/lock.go). */
function locks(): string[] {
  const dir = join(dataDir, "state", ".pulumi", "locks", "organization", "switch-vaas");
  return existsSync(dir) ? readdirSync(dir).flatMap((stack) => readdirSync(join(dir, stack)).map((file) => `${stack}/${file}`)) : [];
}

beforeAll(async () => {
  await withEngine((engine) => engine.up({ stack: "testbed", config: asStackConfig(localTestbedConfig()) }, { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS) }));
});

afterAll(async () => {
  await withEngine(async (engine) => {
    for (const stack of await engine.stacks()) {
      await engine.cancel(stack);
      await engine.destroy(stack, { signal: AbortSignal.timeout(OPERATION_TIMEOUT_MS) });
    }
  });
});

describe(`kill -9 of the service on the local engine (seed ${SEED})`, () => {
  it(`converges after ${TRIALS} crashes during deployments and deletions`, async () => {
    const generator = xoroshiro128plus(SEED);
    const draw = (max: number) => uniformInt(generator, 0, max);
    const inFlightAtKill: string[][] = [];

    for (let trial = 0; trial < TRIALS; trial++) {
      const serviceDir = mkdtempSync(join(tmpdir(), "switch-vaas-crash-service-"));
      const env = { ...serviceEnv(serviceDir), SWITCH_CONCURRENCY: "2" };
      let service = await startServiceProcess({ env, startTimeoutMs: 120_000 });
      const ids: string[] = [];
      for (let i = 0; i < 2; i++) {
        ids.push(((await (await call(service, "/v1/conferences", { method: "POST", body: SMALL })).json()) as { id: string }).id);
      }
      // Even trials die while deploying; odd ones while the first conference is being destroyed.
      const duringDeletion = trial % 2 === 1;
      const stopped = new Set<string>();
      if (duringDeletion) {
        await until("the first conference to be ready", () => conference(service, ids[0]!), (c) => c.state === "ready" || c.state === "failed");
        await call(service, `/v1/conferences/${ids[0]!}`, { method: "DELETE" });
        stopped.add(ids[0]!);
        await delay(draw(1500));
      } else {
        // A random step of the deployment rather than a random time: a create takes about 3 s, and
        // a delay drawn in time lands after it as often as not.
        const started = await until("a deployment to make progress", () => conference(service, ids[0]!), (c) => c.state === "deploying" && c.progress.done > 0);
        const step = 1 + draw(started.progress.total - 2);
        // Read often: a step takes a quarter of a second or less.
        await poll(`the deployment's step ${step} (seed ${SEED})`, () => conference(service, ids[0]!), (c) => c.state !== "deploying" || c.progress.done >= step, CONVERGE_MS);
      }
      inFlightAtKill.push(await Promise.all(ids.map(async (id) => (await conference(service, id)).state)));
      await service.killTree9();

      service = await startServiceProcess({ env, startTimeoutMs: 120_000 });
      try {
        for (const id of stopped) {
          // A stop is idempotent: asking again after the restart is what an organizer would do.
          expect((await call(service, `/v1/conferences/${id}`, { method: "DELETE" })).status).toBe(202);
        }
        for (const id of ids) {
          const settled = await until(`conference ${id} to converge after the restart`, () => conference(service, id), (c) => ["ready", "stopped", "failed"].includes(c.state));
          expect(settled.state, `${id}: ${settled.error ?? ""}`).toBe(stopped.has(id) ? "stopped" : "ready");
        }
        for (const id of ids.filter((candidate) => !stopped.has(candidate))) {
          await call(service, `/v1/conferences/${id}`, { method: "DELETE" });
        }
        for (const id of ids) {
          expect((await until(`conference ${id} to stop`, () => conference(service, id), (c) => c.state === "stopped" || c.state === "failed")).state).toBe("stopped");
        }
      } finally {
        await service.stop(120_000);
      }

      const store = new Store({ path: join(serviceDir, "switch.db") });
      try {
        // Every conference that got its 202 before the kill is there, and nothing is left unfinished.
        expect(store.conferences({ limit: 100 }).conferences.map((record) => record.id).sort()).toEqual([...ids].sort());
        expect(store.unfinishedOperations()).toEqual([]);
      } finally {
        store.close();
      }
      expect(locks()).toEqual([]);
      expect(await withEngine((engine) => engine.stacks())).toEqual(["testbed"]);
      for (const id of ids) {
        await eventually(`namespace ${conferenceName(id)} to be deleted`, async () =>
          (await refusalOf(kubernetes().core.readNamespace({ name: conferenceName(id) }))).status === 404 ? true : undefined,
        );
      }
    }
    console.log(`kill -9 trials (seed ${SEED}): conference states at each kill: ${inFlightAtKill.map((states) => states.join("+")).join(", ")}`);
    expect(inFlightAtKill.some((states) => states.includes("deploying"))).toBe(true);
    expect(inFlightAtKill.some((states) => states.includes("stopping"))).toBe(true);
  });
});

describe("a conference the service made on the local engine", () => {
  const serviceDir = mkdtempSync(join(tmpdir(), "switch-vaas-interrupt-service-"));
  const env = () => serviceEnv(serviceDir);
  let service: ServiceProcess | undefined;
  let id: string;

  afterAll(async () => {
    await service?.stop(120_000);
  });

  it("survives Ctrl-C in the service's terminal during its create: the service alone gets it, cancels, waits and exits 0; the next start finishes it", async () => {
    // A process group of its own, as the shell makes a foreground job: SIGINT to the group is Ctrl-C.
    const interrupted = await startServiceProcess({ env: env(), startTimeoutMs: 120_000, ownGroup: true });
    ({ id } = (await (await call(interrupted, "/v1/conferences", { method: "POST", body: SMALL })).json()) as { id: string });
    await until("the deployment to make progress", () => conference(interrupted, id), (c) => c.state === "deploying" && c.progress.done > 0);
    expect(interrupted.children().length, "the Pulumi CLI runs under the service").toBeGreaterThan(0);

    expect(await interrupted.interrupt(120_000), interrupted.account()).toBe(0);
    expect(interrupted.stderr).not.toMatch(/second (error|SIGINT)|\n\s+at /);

    service = await startServiceProcess({ env: env(), startTimeoutMs: 120_000 });
    const restarted = service;
    expect((await until(`conference ${id} to be deployed after the restart`, () => conference(restarted, id), (c) => c.state === "ready" || c.state === "failed")).state).toBe("ready");
  });

  it("can be previewed, refreshed and upped by hand as the README says, with nothing to change, and stopped by the service after", async () => {
    const running = service!;
    const stack = conferenceName(id);
    // The README's commands ("Repair a stack the service made, by hand"), from the repository,
    // with a CLI home of the engineer's own.
    const byHandEnv = {
      PATH: process.env.PATH ?? "",
      PULUMI_HOME: mkdtempSync(join(tmpdir(), "switch-vaas-engineer-")),
      PULUMI_SKIP_UPDATE_CHECK: "true",
      PULUMI_BACKEND_URL: backendUrl,
      PULUMI_CONFIG_PASSPHRASE: env().PULUMI_CONFIG_PASSPHRASE,
    };
    const config = join(serviceDir, "workspaces", stack, `Pulumi.${stack}.yaml`);
    const configBefore = readFileSync(config, "utf8");
    const byHand = (...args: string[]) => run("pulumi", [...args, "-s", stack, "--config-file", config, "--non-interactive"], { cwd: root, env: byHandEnv, maxBuffer: 64 * 1024 * 1024 });
    // --expect-no-changes makes the CLI fail on any change it would make, or found.
    expect((await byHand("preview", "--expect-no-changes")).stdout).toMatch(/\b12 unchanged\b/);
    expect((await byHand("refresh", "--yes", "--expect-no-changes")).stdout).toMatch(/\bunchanged\b/);
    expect((await byHand("up", "--yes", "--expect-no-changes")).stdout).toMatch(/\b12 unchanged\b/);
    expect(readFileSync(config, "utf8")).toBe(configBefore);

    // Without the service's config the stack's name still picks the conference program, which
    // refuses before anything is planned.
    const unconfigured = await run("pulumi", ["preview", "-s", stack, "--non-interactive"], { cwd: root, env: byHandEnv }).then(
      () => "the preview ran",
      (error: { stdout?: string }) => error.stdout ?? "",
    );
    rmSync(join(root, "stacks", `Pulumi.${stack}.yaml`), { force: true });
    expect(unconfigured).toContain("switch-vaas:conference is required");

    await call(running, `/v1/conferences/${id}`, { method: "DELETE" });
    expect((await until(`conference ${id} to stop`, () => conference(running, id), (c) => c.state === "stopped" || c.state === "failed")).state).toBe("stopped");
    await running.stop(120_000);
    service = undefined;
    expect(locks()).toEqual([]);
  });
});

describe("kill -9 of the Pulumi CLI alone, under a running service", () => {
  it("leaves the service serving, whatever the program's calls in flight do, and the conference failed and cleaned up or ready", async () => {
    const serviceDir = mkdtempSync(join(tmpdir(), "switch-vaas-cli-kill-service-"));
    const service = await startServiceProcess({ env: serviceEnv(serviceDir), startTimeoutMs: 120_000 });
    try {
      const { id } = (await (await call(service, "/v1/conferences", { method: "POST", body: SMALL })).json()) as { id: string };
      await until("the deployment to make progress", () => conference(service, id), (c) => c.state === "deploying" && c.progress.done > 0);
      const clis = service.children().filter((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[1] === "up");
      expect(clis.length, "a `pulumi up` runs under the service").toBe(1);
      process.kill(clis[0]!, "SIGKILL");

      const settled = await until(`conference ${id} to settle`, () => conference(service, id), (c) => ["ready", "failed"].includes(c.state));
      expect(service.account()).toMatch(/^the service still runs/);
      // Failed with the CLI's reason (its stack destroyed by the cleanup), or ready after a retry: either way, it stops cleanly.
      await call(service, `/v1/conferences/${id}`, { method: "DELETE" });
      expect((await until(`conference ${id} to stop`, () => conference(service, id), (c) => c.state === "stopped" || (settled.state === "failed" && c.state === "failed"))).state).toMatch(/^(stopped|failed)$/);
      await eventually(`namespace ${conferenceName(id)} to be deleted`, async () =>
        (await refusalOf(kubernetes().core.readNamespace({ name: conferenceName(id) }))).status === 404 ? true : undefined,
      );
    } finally {
      expect(await service.stop(120_000), service.account()).toBe(0);
    }
  });
});
