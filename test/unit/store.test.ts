import Database from "better-sqlite3";
import fc from "fast-check";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, renameSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { DEFAULT_SITES, parseSites, siteCapacity } from "../../domain/contracts/testbed.ts";
import { candidateClusters, conferenceSpecFor, placeConference } from "../../domain/decision/index.ts";
import { ExhaustedError } from "../../domain/errors.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { MIGRATIONS } from "../../automation/store/migrations.ts";
import type { Decision } from "../../domain/records.ts";
import { type NewConference, Store, StoreUnavailableError } from "../../automation/store/store.ts";
import { holdWriteLock } from "../support/faults.ts";

const TESTBED = Object.fromEntries(parseSites(DEFAULT_SITES, "sites").map((site) => [site.name, { location: site.location, capacity: siteCapacity(site) }]));
const GIBIBYTE = 1024 ** 3;
const LJUBLJANA = { lat: 46.05, lon: 14.51 };

const DECISION: Decision = {
  cluster: "arnes-ljubljana",
  resources: { cpu: "500m", memory: "1088Mi" },
  predicted: { objective: "mean", objectiveMs: 5, meanRttMs: 5, worstPairRttMs: 10 },
  ranking: [],
  unplaced: [],
};

function freshStore(now = () => new Date("2026-12-01T12:00:00Z")): { store: Store; path: string } {
  const path = join(mkdtempSync(join(tmpdir(), "switch-store-")), "switch.db");
  return { store: new Store({ path, now }), path };
}

/** A create that places `participants` on the paper's testbed, as the service does. */
function placing(id: string, participants = [LJUBLJANA], expectedParticipants = 5): Omit<NewConference, "owner"> {
  return {
    requestHash: `hash-of-${id}`,
    decide: (running) => {
      const request = { participants, expectedParticipants, lastN: 5, simulcast: true };
      const placement = placeConference(request, candidateClusters(TESTBED, running));
      return { id, spec: conferenceSpecFor(id, request, placement), decision: { ...DECISION, cluster: placement.cluster ?? "none" } };
    },
  };
}

describe("the store", () => {
  it("migrates a new database to the latest schema, in WAL mode, and refuses one from a newer service", () => {
    const { store, path } = freshStore();
    expect(store.version()).toBe(MIGRATIONS.length);
    store.close();
    const db = new Database(path);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    expect(() => new Store({ path })).toThrow(
      `the database is at schema version ${MIGRATIONS.length + 1}, newer than this service's ${MIGRATIONS.length}; run a newer switch-vaas or another data directory`,
    );
  });

  it("records a conference, its queued up and its first events in one transaction, and tells listeners only after the commit", () => {
    const { store } = freshStore();
    const heard: string[] = [];
    store.onEvent((event) => heard.push(`${event.type}:${store.conference(event.stack.slice("conf-".length))?.state ?? "not yet visible"}`));
    const result = store.atomically(() => {
      const created = store.createConference({ owner: "alice", ...placing("c1") });
      store.queueOperation(conferenceName("c1"), "up");
      store.appendEvent(conferenceName("c1"), "queued");
      expect(heard).toEqual([]);
      return created;
    });
    expect(result.outcome).toBe("created");
    expect(heard).toEqual(["placed:placed", "queued:placed"]);
    expect(store.unfinishedOperations()).toEqual([expect.objectContaining({ stack: "conf-c1", kind: "up", state: "queued", attempts: 0 })]);
  });

  it("returns the first conference for a repeated idempotency key, and says when the key came with another request", () => {
    const { store } = freshStore();
    const first = store.createConference({ owner: "alice", idempotencyKey: "k", ...placing("c1") });
    expect(store.createConference({ owner: "alice", idempotencyKey: "k", ...placing("c1") })).toEqual({ outcome: "existing", conference: first.conference });
    expect(store.createConference({ owner: "alice", idempotencyKey: "k", ...placing("c2"), requestHash: "another" }).outcome).toBe("key-reused");
    // Keys are per owner.
    expect(store.createConference({ owner: "bob", idempotencyKey: "k", ...placing("c3") }).outcome).toBe("created");
  });

  it("matches a key recorded before fingerprints were canonical by the digest recorded then, and records only the canonical one", () => {
    const { store, path } = freshStore();
    // What a service before issue 16 recorded: the digest of the request as sent.
    const first = store.createConference({ owner: "alice", idempotencyKey: "k", ...placing("c1"), requestHash: "as-sent" });
    const retry = { owner: "alice", idempotencyKey: "k", ...placing("c2"), requestHash: "canonical", legacyRequestHash: "as-sent" };
    expect(store.createConference(retry)).toEqual({ outcome: "existing", conference: first.conference });
    expect(store.createConference({ ...retry, legacyRequestHash: "as-sent-otherwise" }).outcome).toBe("key-reused");
    // A new key records the canonical digest, never the legacy one.
    store.createConference({ ...retry, idempotencyKey: "k2" });
    store.close();
    const db = new Database(path, { readonly: true });
    expect(db.prepare("SELECT request_hash FROM conferences WHERE idempotency_key = 'k2'").pluck().get()).toBe("canonical");
    db.close();
  });

  it("rolls a refused decision back whole: no conference, operation or event", () => {
    const { store } = freshStore();
    const heard: unknown[] = [];
    store.onEvent((event) => heard.push(event));
    expect(() =>
      store.createConference(
        {
          owner: "alice",
          requestHash: "h",
          decide: () => {
            throw new ExhaustedError("no cluster has room");
          },
        },
      ),
    ).toThrow(ExhaustedError);
    expect(store.conferences({ limit: 10 })).toEqual({ conferences: [] });
    expect(store.unfinishedOperations()).toEqual([]);
    expect(heard).toEqual([]);
  });

  it("never lets conferences oversubscribe a cluster, whatever is created and stopped in between", () => {
    const step = fc.oneof(
      fc.record({ create: fc.record({ lat: fc.double({ min: 40, max: 60, noNaN: true }), lon: fc.double({ min: -10, max: 30, noNaN: true }) }), expected: fc.integer({ min: 1, max: 30 }) }),
      fc.record({ stop: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 40 }), (steps) => {
        const { store } = freshStore();
        const ids: string[] = [];
        for (const [index, entry] of steps.entries()) {
          if ("create" in entry) {
            try {
              store.createConference({ owner: "alice", ...placing(`c${index}`, [entry.create], entry.expected) });
              ids.push(`c${index}`);
            } catch (error) {
              expect(error).toBeInstanceOf(ExhaustedError);
            }
          } else if (ids.length > 0) {
            const id = ids[entry.stop % ids.length]!;
            // A stopped conference frees its capacity; the state is the conference manager's to decide.
            store.setConferenceState(id, "stopped");
          }
          for (const [name, { capacity }] of Object.entries(TESTBED)) {
            const mine = store.running().filter((conference) => conference.cluster === name);
            expect(mine.reduce((sum, conference) => sum + parseCpuMillicores(conference.resources.cpu)!, 0)).toBeLessThanOrEqual(capacity.nodes * capacity.vcpuPerNode * 1000);
            expect(mine.reduce((sum, conference) => sum + parseMemoryBytes(conference.resources.memory)!, 0)).toBeLessThanOrEqual(capacity.nodes * capacity.memoryGiBPerNode * GIBIBYTE);
          }
        }
        store.close();
      }),
      { numRuns: 30 },
    );
  });

  it("keeps two processes creating on one database from oversubscribing a cluster (BEGIN IMMEDIATE)", async () => {
    const { store, path } = freshStore();
    store.close();
    // Each process fills arnes-ljubljana (2 vCPU) with 500m conferences as fast as it can.
    const script = `
      import { Store } from "./automation/store/store.ts";
      import { conferenceName } from "./domain/contracts/conference.ts";
      const store = new Store({ path: process.argv[1] });
      let made = 0;
      for (let i = 0; i < 20; i++) {
        try {
          store.createConference({ owner: "p" + process.pid, requestHash: "h", decide: (running) => {
            const used = running.filter((c) => c.cluster === "arnes-ljubljana").length;
            if (used >= 4) throw new Error("full");
            const id = "p" + process.pid + "x" + i;
            return { id, spec: { id, cluster: "arnes-ljubljana", expectedParticipants: 5, lastN: 5, simulcast: true, resources: { cpu: "500m", memory: "1088Mi" } }, decision: {} };
          } });
          made++;
        } catch {}
      }
      console.log(made);
    `;
    const run = () =>
      new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, path], { cwd: join(import.meta.dirname, "..", "..") });
        let out = "";
        child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
        child.on("exit", (code) => (code === 0 ? resolve(Number(out.trim())) : reject(new Error(`exit ${code}`))));
      });
    const made = await Promise.all([run(), run(), run()]);
    expect(made.reduce((sum, count) => sum + count, 0)).toBe(4);
    const reopened = new Store({ path });
    expect(reopened.running()).toHaveLength(4);
    reopened.close();
  });

  it("pages through conferences newest first with a cursor, every one exactly once", () => {
    let tick = 0;
    const { store } = freshStore(() => new Date(Date.UTC(2026, 11, 1, 12, 0, Math.floor(tick++ / 3))));
    const ids = Array.from({ length: 23 }, (_, index) => `c${index}`);
    for (const id of ids) {
      store.createConference({ owner: "alice", ...placing(id, [LJUBLJANA], 1) });
    }
    const seen: string[] = [];
    let page = store.conferences({ owner: "alice", limit: 5 });
    for (let pages = 1; ; pages++) {
      seen.push(...page.conferences.map((conference) => conference.id));
      if (page.next === undefined) {
        expect(pages).toBe(5);
        break;
      }
      page = store.conferences({ owner: "alice", limit: 5, after: page.next });
    }
    expect(seen).toHaveLength(ids.length);
    expect(new Set(seen)).toEqual(new Set(ids));
    expect(seen).toEqual(store.conferences({ owner: "alice", limit: 100 }).conferences.map((conference) => conference.id));
  });

  it("prunes conferences that ended before the retention, with their operations and events, and keeps the rest", () => {
    let now = new Date("2026-11-01T00:00:00Z");
    const { store } = freshStore(() => now);
    // The records a conference's life leaves, as the conference manager and the runner write them.
    const end = (id: string, destroyError?: string) => {
      store.createConference({ owner: "alice", ...placing(id, [LJUBLJANA], 1) });
      const up = store.queueOperation(conferenceName(id), "up");
      store.beginAttempt(up.id);
      store.endOperation(up.id, "succeeded", { outputs: {} });
      store.setConferenceState(id, "ready", { url: "https://x" });
      const destroy = store.queueOperation(conferenceName(id), "destroy");
      store.beginAttempt(destroy.id);
      store.endOperation(destroy.id, destroyError === undefined ? "succeeded" : "failed", destroyError === undefined ? {} : { error: destroyError });
      store.setConferenceState(id, destroyError === undefined ? "stopped" : "failed", destroyError === undefined ? {} : { reason: destroyError });
    };
    end("old");
    end("oldleft", "simulated: the cluster is unreachable");
    now = new Date("2026-12-01T00:00:00Z");
    end("recent");
    store.createConference({ owner: "alice", ...placing("live", [LJUBLJANA], 1) });
    expect(store.prune(new Date("2026-11-15T00:00:00Z"), 100)).toBe(1);
    expect(store.conference("old")).toBeUndefined();
    expect(store.operations(conferenceName("old"))).toEqual([]);
    expect(store.eventsAfter(conferenceName("old"), 0)).toEqual([]);
    // A failed destroy left its stack: its record is how it is stopped again.
    expect(store.conference("oldleft")!.state).toBe("failed");
    expect(["recent", "live"].map((id) => store.conference(id)?.id)).toEqual(["recent", "live"]);
  });
});

describe("the store's migrations", () => {
  it("moves a first-schema database's operations and events to their stacks, keeping every record and event id, and never reuses a pruned event's id", () => {
    const path = join(mkdtempSync(join(tmpdir(), "switch-migrate-")), "switch.db");
    const db = new Database(path);
    db.exec(MIGRATIONS[0]!);
    db.pragma("user_version = 1");
    const at = "2026-12-01T12:00:00.000Z";
    db.prepare("INSERT INTO conferences (id, owner, state, cluster, decision, spec, request_hash, created_at, updated_at) VALUES ('c1', 'alice', 'ready', 'arnes-ljubljana', ?, ?, 'h', ?, ?)").run(
      JSON.stringify(DECISION),
      JSON.stringify({ id: "c1" }),
      at,
      at,
    );
    db.prepare("INSERT INTO operations (id, conference_id, stack, kind, state, attempts, created_at, outputs) VALUES (7, 'c1', 'conf-c1', 'up', 'succeeded', 1, ?, '{\"url\":\"https://x\"}')").run(at);
    for (const [id, type] of [[3, "placed"], [4, "queued"], [9, "ready"], [12, "stopping"]] as const) {
      db.prepare("INSERT INTO events (id, conference_id, type, data, at) VALUES (?, 'c1', ?, '{}', ?)").run(id, type, at);
    }
    // The newest event was pruned: its id was sent once and must never be another event's.
    db.prepare("DELETE FROM events WHERE id = 12").run();
    db.close();

    const store = new Store({ path });
    expect(store.version()).toBe(MIGRATIONS.length);
    expect(store.operations(conferenceName("c1"))).toEqual([expect.objectContaining({ id: 7, stack: "conf-c1", kind: "up", state: "succeeded", attempts: 1, outputs: { url: "https://x" } })]);
    expect(store.eventsAfter(conferenceName("c1"), 0).map(({ id, stack, type }) => ({ id, stack, type }))).toEqual([
      { id: 3, stack: "conf-c1", type: "placed" },
      { id: 4, stack: "conf-c1", type: "queued" },
      { id: 9, stack: "conf-c1", type: "ready" },
    ]);
    store.appendEvent(conferenceName("c1"), "stopping");
    expect(store.eventsAfter(conferenceName("c1"), 9)[0]!.id).toBe(13);
    store.close();
  });
});

describe("the PoP loop's records", () => {
  const report = (host: string, start: string, end: string) => ({
    pop: "vienna",
    host,
    periodStart: start,
    periodEnd: end,
    cpu: { capacityCores: 8, usedCores: 2 },
    network: { linkMbps: 1000, txMbps: 100 },
    requests: { small: 10, large: 1, vod: 2, live: 3 },
  });

  it("keeps one report per host and period: a resend of the same bytes is a duplicate, other bytes for the period a conflict", () => {
    const { store } = freshStore();
    const first = report("host1", "2026-12-01T10:00:00.000Z", "2026-12-01T10:10:00.000Z");
    expect(store.recordReport("vienna", first, "d1")).toBe("accepted");
    expect(store.recordReport("vienna", first, "d1")).toBe("duplicate");
    expect(store.recordReport("vienna", first, "d2")).toBe("conflict");
    expect(store.recordReport("vienna", report("host1", "2026-12-01T10:10:00.000Z", "2026-12-01T10:20:00.000Z"), "d3")).toBe("accepted");
    expect(store.recordReport("vienna", report("host2", "2026-12-01T10:00:00.000Z", "2026-12-01T10:10:00.000Z"), "d4")).toBe("accepted");
    expect(store.lastReport("vienna", "host1")).toEqual({ periodStart: "2026-12-01T10:10:00.000Z", periodEnd: "2026-12-01T10:20:00.000Z", digest: "d3" });
    expect(store.lastReport("vienna", "host3")).toBeUndefined();
    expect(store.reportsEnding("vienna", new Date("2026-12-01T10:05:00Z"), new Date("2026-12-01T10:10:00Z")).map((kept) => kept.host)).toEqual(["host1", "host2"]);
    expect(store.reportsEnding("other", new Date(0), new Date("2027-01-01T00:00:00Z"))).toEqual([]);
    expect(store.pruneReports(new Date("2026-12-01T10:15:00Z"))).toBe(2);
    expect(store.reportsEnding("vienna", new Date(0), new Date("2027-01-01T00:00:00Z")).map((kept) => kept.periodEnd)).toEqual(["2026-12-01T10:20:00.000Z"]);
  });

  it("records decisions with their outcome, pages through them newest first, and prunes all but each PoP's latest and latest applied", () => {
    let now = new Date("2026-11-01T00:00:00Z");
    const { store } = freshStore(() => now);
    const decide = (pop: string) =>
      store.recordDecision({ pop, periodStart: now.toISOString(), strategy: "milp", outcome: "held", inputs: { hosts: 3 }, layout: { host1: ["small"] }, timings: { solveMs: 12 } });
    const made = [decide("vienna"), decide("vienna"), decide("graz")];
    store.setDecisionOutcome(made[1]!.id, "applying", { operationId: 42 });
    store.setDecisionOutcome(made[1]!.id, "applied");
    expect(store.decision(made[1]!.id)).toMatchObject({ outcome: "applied", operationId: 42, inputs: { hosts: 3 }, timings: { solveMs: 12 } });
    const page = store.decisions("vienna", { limit: 1 });
    expect(page.decisions.map((decision) => decision.id)).toEqual([made[1]!.id]);
    expect(store.decisions("vienna", { limit: 1, before: page.next! })).toEqual({ decisions: [store.decision(made[0]!.id)] });
    now = new Date("2026-12-01T00:00:00Z");
    decide("vienna");
    // Vienna's first goes; its applied one stays (the layout it runs), as does each PoP's latest.
    expect(store.pruneDecisions(new Date("2026-11-15T00:00:00Z"))).toBe(1);
    expect(store.decisions("graz", { limit: 10 }).decisions.map((decision) => decision.id)).toEqual([made[2]!.id]);
    expect(store.decisions("vienna", { limit: 10 }).decisions.map((decision) => decision.id)).toEqual([made[1]!.id + 2, made[1]!.id]);
  });

  it("prunes a PoP stack's old finished operations but its newest and those a decision names", () => {
    let now = new Date("2026-11-01T00:00:00Z");
    const { store } = freshStore(() => now);
    const finished = () => {
      const operation = store.queueOperation("pop-vienna", "up");
      store.beginAttempt(operation.id);
      store.endOperation(operation.id, "succeeded", { outputs: {} });
      return operation.id;
    };
    const [named, old, newest] = [finished(), finished(), finished()];
    const decision = store.recordDecision({ pop: "vienna", periodStart: now.toISOString(), strategy: "exact", outcome: "applying", inputs: {}, layout: {}, timings: {} });
    store.setDecisionOutcome(decision.id, "applied", { operationId: named });
    now = new Date("2026-12-01T00:00:00Z");
    const running = store.queueOperation("pop-vienna", "up").id;
    store.beginAttempt(running);
    expect(store.pruneOperations("pop-vienna", new Date("2026-11-15T00:00:00Z"))).toBe(1);
    expect(store.operations("pop-vienna").map((operation) => operation.id)).toEqual([named, newest, running].filter((id) => id !== old));
  });
});

describe("the store under faults of its file", () => {
  /** What opening a file that is no store, or a damaged one, says: the file, and what to do. */
  const unreadable = (path: string) =>
    `${path} is not a SQLite database, or is damaged: restore it from a backup, or move it aside (with its -wal and -shm files) to start with an empty store; the conference stacks it tracked stay in the backend and are listed as orphans at GET /v1/orphan-stacks`;

  it("refuses to open a file overwritten with something else, naming the file and the fix", () => {
    const path = join(mkdtempSync(join(tmpdir(), "switch-garbage-")), "switch.db");
    writeFileSync(path, "this is not a SQLite database ".repeat(200));
    expect(() => new Store({ path })).toThrow(unreadable(path));
  });

  it.each([0.5, 0.1])("refuses to open a file truncated to %s of its size, naming the file and the fix", (share) => {
    const { store, path } = freshStore();
    for (const id of ["c1", "c2", "c3"]) {
      store.createConference({ owner: "alice", ...placing(id) });
    }
    store.close();
    truncateSync(path, Math.floor(statSync(path).size * share));
    expect(() => new Store({ path })).toThrow(unreadable(path));
  });

  it("refuses a write while another process holds the write lock, without waiting long, and keeps reads and the last good state", async () => {
    const { store, path } = freshStore();
    store.createConference({ owner: "alice", ...placing("c1") });
    const lock = await holdWriteLock(path);
    try {
      expect(() => store.createConference({ owner: "alice", ...placing("c2") })).toThrow(StoreUnavailableError);
      expect(() => store.createConference({ owner: "alice", ...placing("c2") })).toThrow("the database is locked by another process; nothing of this change was recorded");
      expect(store.writable()).toEqual({ ok: false, reason: "the database is locked by another process" });
      expect(store.lastWriteFailure()).toBe("the database is locked by another process");
      expect(store.conference("c1")!.state).toBe("placed");
    } finally {
      await lock.release();
    }
    expect(store.writable()).toEqual({ ok: true });
    expect(store.createConference({ owner: "alice", ...placing("c2") }).outcome).toBe("created");
    expect(store.lastWriteFailure()).toBeUndefined();
  });

  it("refuses a write on a full disk with the whole transaction rolled back, and writes again once there is room", () => {
    const dir = mkdtempSync(join(tmpdir(), "switch-full-"));
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", dir]);
    } catch (error) {
      throw new Error(`this test mounts a 2 MiB tmpfs to fill, which needs root (mount(8) said: ${(error as Error).message})`);
    }
    try {
      const store = new Store({ path: join(dir, "switch.db") });
      store.createConference({ owner: "alice", ...placing("c1") });
      const filler = join(dir, "filler");
      try {
        writeFileSync(filler, Buffer.alloc(4 * 1024 * 1024));
      } catch (error) {
        expect((error as NodeJS.ErrnoException).code).toBe("ENOSPC");
      }
      expect(() => store.createConference({ owner: "alice", ...placing("c2") })).toThrow(StoreUnavailableError);
      expect(store.writable()).toMatchObject({ ok: false });
      expect(store.lastWriteFailure()).toMatch(/full|cannot be written/);
      expect(store.conference("c2")).toBeUndefined();
      expect(store.eventsAfter("c2", 0)).toEqual([]);
      unlinkSync(filler);
      expect(store.writable()).toEqual({ ok: true });
      expect(store.createConference({ owner: "alice", ...placing("c2") }).outcome).toBe("created");
      expect(store.conferences({ limit: 10 }).conferences.map((conference) => conference.id).sort()).toEqual(["c1", "c2"]);
      store.close();
    } finally {
      execFileSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(["deleted", "replaced"])("refuses every write, for good, once its file was %s while it ran", (how) => {
    const { store, path } = freshStore();
    store.createConference({ owner: "alice", ...placing("c1") });
    if (how === "deleted") {
      unlinkSync(path);
    } else {
      copyFileSync(path, `${path}.copy`);
      renameSync(`${path}.copy`, path);
    }
    const refusal = `the database file ${path} was deleted or replaced while the service ran`;
    expect(() => store.createConference({ owner: "alice", ...placing("c2") })).toThrow(refusal);
    expect(() => store.setConferenceState("c1", "stopping")).toThrow(StoreUnavailableError);
    const writable = store.writable();
    expect(writable.ok).toBe(false);
    expect(writable.ok ? "" : writable.reason).toContain(refusal);
    try {
      store.createConference({ owner: "alice", ...placing("c3") });
    } catch (error) {
      expect((error as StoreUnavailableError).transient).toBe(false);
    }
  });

  it("keeps its file, WAL and shared memory 0600 whatever they were", () => {
    const dir = mkdtempSync(join(tmpdir(), "switch-mode-"));
    const path = join(dir, "switch.db");
    new Store({ path }).close();
    for (const suffix of ["", "-wal", "-shm"]) {
      writeFileSync(`${path}${suffix}`, "", { flag: "a", mode: 0o644 });
      execFileSync("chmod", ["0644", `${path}${suffix}`]);
    }
    const store = new Store({ path });
    for (const suffix of ["", "-wal", "-shm"]) {
      expect((statSync(`${path}${suffix}`).mode & 0o777).toString(8), suffix).toBe("600");
    }
    store.close();
  });
});

