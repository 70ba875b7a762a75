import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { type HeldLock, holdWriteLock } from "../support/faults.ts";
import { poll } from "../support/poll.ts";
import { startServiceProcess } from "../support/service-process.ts";
import { EngineRecorder, type Fault, type TestService, problemOf, startTestService } from "../support/service.ts";

/**
 * The service under real faults of its store, never mocks of them: another process holding the
 * database's write lock (tests/support/faults.ts), a full disk (a tmpfs this test mounts and fills),
 * the database file deleted under the running service. Each fault comes at the worst moment — after
 * the engine deployed, before the outcome is recorded — and the service must neither freeze nor
 * strand the conference: it says so (/readyz, the metric), refuses new work with 503, and once the
 * fault is gone the reconciler finishes the work, or a stop ends it, and nothing is deployed again.
 */

const LJUBLJANA = [{ lat: 46.05, lon: 14.51 }];
/** The reconciler looks for unfinished operations this often here (10 s in the service). */
const RECONCILE_MS = 300;
/** A probe must answer while the store is locked; the busy timeout is 200 ms, the old one was 5 s. */
const PROBE_TIMEOUT_MS = 2_000;

let service: TestService | undefined;
let lock: HeldLock | undefined;
const mounts: string[] = [];

afterEach(async () => {
  await lock?.release();
  lock = undefined;
  await service?.close();
  service = undefined;
  for (const dir of mounts.splice(0)) {
    execFileSync("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

async function readiness(): Promise<{ status: number; body: { status: string; detail?: string } }> {
  const response = await fetch(`${service!.url}/readyz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
  return { status: response.status, body: (await response.json()) as { status: string; detail?: string } };
}

function metric(metrics: string, name: string): number {
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics)?.[1] ?? "0");
}

/** Waits until the service gave up writing an outcome (about six seconds of retries) and counted it for the reconciler. */
function unrecordedOutcome(): Promise<number> {
  return poll(
    "the unrecorded outcome was not counted",
    async () => metric(await (await service!.call("/metrics", { token: service!.tokens.admin })).text(), "switch_unrecorded_outcomes_total"),
    (count) => count >= 1,
    20_000,
  );
}

/** A tmpfs of `size` mounted for the test (root only: it fails, naming why, elsewhere). */
function tmpfs(size: string): string {
  const dir = mkdtempSync(join(tmpdir(), "switch-tmpfs-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, "tmpfs", dir]);
  } catch (error) {
    throw new Error(`this test mounts a tmpfs to fill (a real full disk), which needs root; mount(8) said: ${(error as Error).message}`);
  }
  mounts.push(dir);
  return dir;
}

/** A fault of an `up`: it deploys, then (before the service records it) another process takes the store's write lock. */
function lockAfter(dbPath: string): Fault {
  return async (_call, proceed) => {
    const outputs = await proceed();
    lock = await holdWriteLock(dbPath);
    return outputs;
  };
}

describe("a store locked by another process", () => {
  it("keeps probes and reads answering, refuses writes with 503, and finishes the stranded deployment once the lock is gone", async () => {
    const recorder = new EngineRecorder();
    service = await startTestService({ wrapEngine: recorder.wrap, reconcileIntervalMs: RECONCILE_MS });
    // The engine deploys; then, before the service records it, an outside process takes the lock.
    recorder.faults.up.push(lockAfter(join(service.dataDir, "switch.db")));
    const { id } = await service.create({ participants: LJUBLJANA });
    await poll("the lock was not taken", () => Promise.resolve(lock), (held) => held !== undefined, 20_000);

    // Probes and reads answer while the service retries its write for seconds (each attempt waits
    // out the busy timeout: a 5 s one froze every request); readiness says why it takes no work.
    for (let probe = 0; probe < 8; probe++) {
      const health = await fetch(`${service.url}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      expect(health.status).toBe(200);
      const read = await service.call(`/v1/conferences/${id}`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      expect(read.status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    // /readyz probes the store at most once a second.
    const ready = await poll("/readyz stayed ready", readiness, (answer) => answer.status === 503, 5_000);
    expect(ready.body).toEqual(expect.objectContaining({ status: "the store cannot be written", detail: "the database is locked by another process" }));
    const stranded = await service.waitForConference(id, ["deploying"]);
    expect(stranded.url).toBeUndefined();
    const refused = await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: LJUBLJANA }), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    expect(refused.headers.get("retry-after")).not.toBeNull();
    await problemOf(refused, 503);
    // The outcome is retried for about six seconds, then left for the reconciler, and counted.
    await unrecordedOutcome();

    await lock!.release();
    lock = undefined;
    const done = await service.waitForConference(id, ["ready", "failed"]);
    expect(done.state).toBe("ready");
    await poll("/readyz stayed unready", readiness, (answer) => answer.status === 200, 5_000);
    // The stream of the finished conference ends on its own after stop.
    await service.stop(id);
    const events = await service.stream(id);
    expect(events.events.at(-1)!.event).toBe("stopped");
    expect(await service.offline.stacks()).not.toContain(`conf-${id}`);
  }, 60_000);

  it("answers every request at once in a service process of its own while another process holds the lock", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "switch-locked-"));
    const admin = newToken();
    const process_ = await startServiceProcess({ env: { SWITCH_ENGINE: "offline", SWITCH_DATA_DIR: dataDir, SWITCH_API_TOKENS: tokenEntry("root", "admin", admin), HOST: "127.0.0.1", PORT: "0" } });
    try {
      lock = await holdWriteLock(join(dataDir, "switch.db"));
      const headers = { authorization: `Bearer ${admin}`, "content-type": "application/json" };
      for (let attempt = 0; attempt < 3; attempt++) {
        // A write that waits out the busy timeout stalls the whole process (it was 5 s): the probe
        // sent right behind the create must still answer at once.
        const create = fetch(`${process_.url}/v1/conferences`, { method: "POST", headers, body: JSON.stringify({ participants: LJUBLJANA }), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
        // Awaited below; a failed probe must not leave it unhandled.
        create.catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 50));
        const health = await fetch(`${process_.url}/healthz`, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
        expect(health.status).toBe(200);
        await problemOf(await create, 503);
      }
    } finally {
      await process_.stop();
    }
  }, 60_000);

  it("ends a stranded deployment by a stop, and never deploys it again", async () => {
    const recorder = new EngineRecorder();
    // A reconciler slower than this test: the stop must end the deployment on its own.
    service = await startTestService({ wrapEngine: recorder.wrap, reconcileIntervalMs: 60_000 });
    recorder.faults.up.push(lockAfter(join(service.dataDir, "switch.db")));
    const { id } = await service.create({ participants: LJUBLJANA });
    await poll("the lock was not taken", () => Promise.resolve(lock), (held) => held !== undefined, 20_000);
    await unrecordedOutcome();
    await lock!.release();
    lock = undefined;

    expect((await service.stop(id)).state).toBe("stopping");
    expect((await service.waitForConference(id, ["stopped", "failed"])).state).toBe("stopped");
    await service.waitForIdle();
    expect(recorder.of(`conf-${id}`).map((call) => call.kind)).toEqual(["up", "destroy"]);
    expect(service.readStore((store) => store.unfinishedOperations())).toEqual([]);

    // A restart on the same records deploys nothing: the stop cancelled the deployment's record.
    const dataDir = service.dataDir;
    const tokens = service.tokens;
    await service.close();
    const restarted = new EngineRecorder();
    service = await startTestService({ dataDir, tokens, wrapEngine: restarted.wrap, reconcileIntervalMs: RECONCILE_MS });
    await new Promise((resolve) => setTimeout(resolve, 3 * RECONCILE_MS));
    expect(restarted.calls).toEqual([]);
    expect((await service.waitForConference(id, ["stopped"])).state).toBe("stopped");
    expect(await service.offline.stacks()).not.toContain(`conf-${id}`);
  }, 60_000);
});

describe("a full disk", () => {
  it("fails the outcome's write visibly, and finishes the deployment once there is room", async () => {
    const dataDir = tmpfs("64m");
    const filler = join(dataDir, "filler");
    const recorder = new EngineRecorder();
    service = await startTestService({ dataDir, wrapEngine: recorder.wrap, reconcileIntervalMs: RECONCILE_MS });
    // After the testbed's up at start: the conference's is the one whose outcome meets a full disk.
    recorder.faults.up.push(async (_call, proceed) => {
      const outputs = await proceed();
      try {
        writeFileSync(filler, Buffer.alloc(128 * 1024 * 1024));
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe("ENOSPC");
      }
      return outputs;
    });
    const { id } = await service.create({ participants: LJUBLJANA });
    await poll("the disk was not filled", () => readiness(), (ready) => ready.status === 503, 20_000);
    expect((await readiness()).body.detail).toMatch(/full|cannot be written/);
    expect((await service.waitForConference(id, ["deploying"])).state).toBe("deploying");
    await problemOf(await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: LJUBLJANA }) }), 503);

    unlinkSync(filler);
    expect((await service.waitForConference(id, ["ready", "failed"])).state).toBe("ready");
    await poll("/readyz stayed unready", readiness, (answer) => answer.status === 200, 5_000);
    expect(service.readStore((store) => store.unfinishedOperations())).toEqual([]);
  }, 60_000);
});

describe("the database file deleted under the running service", () => {
  it("is noticed: not ready, no new work; after a restart the stack no record owns is reported and an admin destroys it", async () => {
    service = await startTestService({ env: { SWITCH_LOG_LEVEL: "warn" } });
    const { id } = await service.create({ participants: LJUBLJANA });
    await service.waitForConference(id, ["ready"]);
    const { dataDir, tokens } = service;
    for (const suffix of ["", "-wal", "-shm"]) {
      rmSync(join(dataDir, `switch.db${suffix}`), { force: true });
    }

    const ready = await poll("/readyz stayed ready", readiness, (answer) => answer.status === 503, 5_000);
    expect(ready.body.detail).toContain("was deleted or replaced while the service ran");
    await problemOf(await service.call("/v1/conferences", { method: "POST", body: JSON.stringify({ participants: LJUBLJANA }) }), 503);
    await problemOf(await service.call(`/v1/conferences/${id}`, { method: "DELETE" }), 503);
    await service.close();

    // The records are gone; the stack is not.
    service = await startTestService({ dataDir, tokens, env: { SWITCH_LOG_LEVEL: "warn" } });
    expect(await service.offline.stacks()).toContain(`conf-${id}`);
    const warned = service.logs.map((line) => JSON.parse(line) as { msg: string; stack?: string }).filter((line) => line.stack === `conf-${id}`);
    expect(warned).toHaveLength(1);
    expect(warned[0]!.msg).toContain("a conference stack no record owns");
    const metrics = await (await service.call("/metrics", { token: tokens.admin })).text();
    expect(metric(metrics, "switch_orphan_stacks")).toBe(1);
    await problemOf(await service.call("/v1/orphan-stacks"), 403);
    const listed = await service.call("/v1/orphan-stacks", { token: tokens.admin });
    expect(await listed.json()).toEqual({ stacks: [{ name: `conf-${id}`, state: "found" }] });

    await problemOf(await service.call(`/v1/orphan-stacks/conf-${id}`, { method: "DELETE" }), 403);
    await problemOf(await service.call("/v1/orphan-stacks/conf-nosuchthing", { method: "DELETE", token: tokens.admin }), 404);
    const destroying = await service.call(`/v1/orphan-stacks/conf-${id}`, { method: "DELETE", token: tokens.admin });
    expect(destroying.status).toBe(202);
    await poll(
      "the orphan was still listed",
      async () => (await (await service!.call("/v1/orphan-stacks", { token: tokens.admin })).json()) as { stacks: unknown[] },
      (body) => body.stacks.length === 0,
      20_000,
    );
    expect(await service.offline.stacks()).not.toContain(`conf-${id}`);
  }, 60_000);
});
