import Database from "better-sqlite3";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { RandomGenerator } from "pure-rand/types/RandomGenerator";
import { afterAll, describe, expect, it } from "vitest";
import { conferenceName } from "../../domain/contracts/conference.ts";
import { newToken, tokenEntry } from "../../automation/service/auth.ts";
import { type ConferenceState, TERMINAL_STATES } from "../../domain/conference-lifecycle.ts";
import type { OperationState } from "../../automation/store/records.ts";
import { type ServiceProcess, startServiceProcess, waitForExit } from "../support/service-process.ts";

/**
 * kill -9 of the service, with the offline engine, at a random moment while conferences are
 * created and stopped; then a restart on the same data directory must finish what was in flight
 * (ConferenceManager.recover) and lose nothing. Each trial has its own data directory and a seeded
 * schedule: when to create each conference, whether and when to stop it, when to kill. The seed is
 * in every trial's name; CRASH_SEED=<seed> replays a run's schedules (not its timing: the kill
 * lands where the service happens to be). Which states the kills found is read from the store
 * after the fact; the last test checks that kills found deployments and stops in flight, which is
 * what this file claims to test. No fault is injected and every request fits the testbed, so each
 * conference ends where its requests say — ready, or stopped if it was meant to stop — and never
 * `failed`: a recovery that failed what it found in flight would fail the trial.
 */

const TRIALS = 20;
const CONFERENCES = 6;
/** The kill comes this long after the first request, at most. */
const KILL_WINDOW_MS = 1500;
/** Creates start within this long of the first one. */
const CREATE_SPREAD_MS = 600;
/**
 * A stop comes this long after its create was answered, at most: while the other deployments are
 * queued, so that its destroy waits its turn behind them and the kill can find it `stopping` (the
 * offline engine's destroy itself takes no time).
 */
const STOP_DELAY_MS = 500;
const STOP_SHARE = 0.5;
/** Generous: recovery starts workers, which load Pulumi and the programs, on a busy two-core machine. */
const CONVERGE_TIMEOUT_MS = 60_000;
const POLL_MS = 100;
/** Workers the killed service left finish the evaluation they were on, if any, and exit. */
const ORPHAN_TIMEOUT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;
const TRIAL_TIMEOUT_MS = 3 * 60_000;

const SETTLED: readonly ConferenceState[] = ["ready", ...TERMINAL_STATES];
/**
 * The events a conference that ended where it should may have, in order, whatever the kill
 * interrupted: a deployment run again after a restart says `deploying` again, nothing else
 * repeats, and nothing follows the end.
 */
const EVENTS_OF: Readonly<Record<ConferenceState, RegExp>> = {
  // Never reached: a conference in one of these has failed its trial before its events are read.
  placed: /^$/,
  deploying: /^$/,
  stopping: /^$/,
  failed: /^$/,
  ready: /^placed queued( deploying)* ready$/,
  stopped: /^placed queued( deploying)*( ready)? stopping queued stopped$/,
};

const baseSeed = process.env.CRASH_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.CRASH_SEED);

interface Plan {
  createAtMs: number;
  /** How long after its create was answered the conference is stopped; undefined: it is kept. */
  stopAfterMs?: number;
  participants: { lat: number; lon: number }[];
}

interface Schedule {
  killAtMs: number;
  concurrency: number;
  plans: Plan[];
}

/** What the client saw of one planned conference before the kill. */
interface Seen {
  plan: Plan;
  createSent: boolean;
  id?: string;
  stopAnswered: boolean;
  /** A status other than 202 (a refusal is a defect here: the requests are valid and fit). */
  unexpected?: string;
}

interface StoreSnapshot {
  conferences: { id: string; state: ConferenceState; error: string | null; stack: string }[];
  operations: { id: number; stack: string; kind: string; state: OperationState }[];
  events: { id: number; stack: string; type: string }[];
}

/** Kills that found at least one conference in each state, over all trials. */
const tally = { trials: 0, deploying: 0, stopping: 0, placed: 0, noneAcknowledged: 0, allSettled: 0 };
/** One line per trial: its schedule and what the kill found. */
const findings: string[] = [];
/** The services a trial started and has not yet seen exit. */
const services = new Set<ServiceProcess>();

function scheduleOf(seed: number): Schedule {
  const rng: RandomGenerator = xoroshiro128plus(seed);
  const chance = (share: number) => uniformInt(rng, 0, 999) < share * 1000;
  const createTimes = [0, ...Array.from({ length: CONFERENCES - 1 }, () => uniformInt(rng, 0, CREATE_SPREAD_MS))].sort((a, b) => a - b);
  return {
    killAtMs: uniformInt(rng, 0, KILL_WINDOW_MS),
    concurrency: uniformInt(rng, 1, 2),
    plans: createTimes.map((createAtMs) => ({
      createAtMs,
      ...(chance(STOP_SHARE) ? { stopAfterMs: uniformInt(rng, 0, STOP_DELAY_MS) } : {}),
      // Around Europe, where the testbed's clusters are; one to three participants fit any of them.
      participants: Array.from({ length: uniformInt(rng, 1, 3) }, () => ({ lat: uniformInt(rng, 3600, 6000) / 100, lon: uniformInt(rng, -1000, 3000) / 100 })),
    })),
  };
}

function client(url: string, token: string) {
  return (method: string, path: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
}

/** Creates and stops conferences as the plan says until the connection goes; never throws. */
async function drive(call: ReturnType<typeof client>, seen: Seen, started: number): Promise<void> {
  await delay(Math.max(0, started + seen.plan.createAtMs - performance.now()));
  seen.createSent = true;
  try {
    const response = await call("POST", "/v1/conferences", { participants: seen.plan.participants });
    if (response.status !== 202) {
      seen.unexpected = `create: ${response.status} ${await response.text()}`;
      return;
    }
    seen.id = ((await response.json()) as { id: string }).id;
  } catch {
    // The kill cut the request or its answer short: the conference may or may not exist.
    return;
  }
  if (seen.plan.stopAfterMs === undefined) {
    return;
  }
  await delay(seen.plan.stopAfterMs);
  try {
    const response = await call("DELETE", `/v1/conferences/${seen.id}`);
    if (response.status !== 202) {
      seen.unexpected = `stop: ${response.status} ${await response.text()}`;
      return;
    }
    seen.stopAnswered = true;
  } catch {
    // Cut short by the kill; the stop is issued again after the restart.
  }
}

/** The store as the dead (or stopped) process left it, read-only. */
function readStore(dataDir: string): StoreSnapshot {
  const db = new Database(join(dataDir, "switch.db"), { readonly: true, fileMustExist: true });
  try {
    return {
      conferences: db
        .prepare("SELECT c.id, c.state, c.error, (SELECT stack FROM operations o WHERE o.stack = 'conf-' || c.id ORDER BY o.id LIMIT 1) AS stack FROM conferences c")
        .all() as StoreSnapshot["conferences"],
      operations: db.prepare("SELECT id, stack, kind, state FROM operations ORDER BY id").all() as StoreSnapshot["operations"],
      events: db.prepare("SELECT id, stack, type FROM events ORDER BY id").all() as StoreSnapshot["events"],
    };
  } finally {
    db.close();
  }
}

/**
 * A conference's events as its stream sends them to a client that connects now, up to the first
 * `until` (the stream of a ready conference stays open: it is cut there).
 */
async function streamedEvents(url: string, token: string, id: string, until: string): Promise<{ id: number; type: string }[]> {
  const cut = new AbortController();
  const response = await fetch(`${url}/v1/conferences/${id}/events`, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal: AbortSignal.any([cut.signal, AbortSignal.timeout(REQUEST_TIMEOUT_MS)]),
  });
  expect(response.status, `the event stream of ${id}`).toBe(200);
  const events: { id: number; type: string }[] = [];
  let text = "";
  const decoder = new TextDecoder();
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  try {
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      text += decoder.decode(chunk.value, { stream: true });
      let end: number;
      while ((end = text.indexOf("\n\n")) >= 0) {
        const fields = Object.fromEntries(text.slice(0, end).split("\n").map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 1).trim()]));
        text = text.slice(end + 2);
        if (fields.event !== undefined) {
          events.push({ id: Number(fields.id), type: fields.event });
          if (fields.event === until) {
            return events;
          }
        }
      }
    }
  } finally {
    cut.abort();
  }
  return events;
}

async function start(env: Record<string, string>): Promise<ServiceProcess> {
  const service = await startServiceProcess({ env });
  services.add(service);
  return service;
}

afterAll(async () => {
  // A trial cut short by its timeout never reaches its own cleanup.
  await Promise.all([...services].map((service) => service.kill9()));
  console.log(
    `${findings.join("\n")}\ncrash recovery (seeds ${baseSeed}…${baseSeed + TRIALS - 1}): ${tally.trials} trials; kills with a conference deploying: ${tally.deploying}, stopping: ${tally.stopping}, ` +
      `placed (queued): ${tally.placed}; before any create was answered: ${tally.noneAcknowledged}; with everything settled: ${tally.allSettled}`,
  );
});

describe("kill -9 and restart (offline engine)", () => {
  it.each(Array.from({ length: TRIALS }, (_, index) => [index, baseSeed + index]))(
    "trial %i (seed %i): recovery finishes what was in flight and loses nothing",
    async (_index, seed) => {
      const schedule = scheduleOf(seed);
      const context = (what: string) => `seed ${seed}, kill at ${schedule.killAtMs} ms, concurrency ${schedule.concurrency}: ${what}`;
      const dataDir = mkdtempSync(join(tmpdir(), "switch-crash-"));
      const token = newToken();
      const env = {
        SWITCH_ENGINE: "offline",
        SWITCH_DATA_DIR: dataDir,
        SWITCH_API_TOKENS: tokenEntry("alice", "organizer", token),
        SWITCH_CONCURRENCY: String(schedule.concurrency),
        HOST: "127.0.0.1",
        PORT: "0",
        SWITCH_LOG_LEVEL: "warn",
      };
      let passed = false;
      try {
        // Kill while creating and stopping.
        const first = await start(env);
        const call = client(first.url, token);
        const seen: Seen[] = schedule.plans.map((plan) => ({ plan, createSent: false, stopAnswered: false }));
        const started = performance.now();
        const driving = Promise.all(seen.map((entry) => drive(call, entry, started)));
        await delay(schedule.killAtMs);
        const workers = first.children();
        await first.kill9();
        services.delete(first);
        await driving;
        expect(seen.flatMap((entry) => entry.unexpected ?? []), context("every request before the kill was accepted")).toEqual([]);

        // What the kill found, from the store.
        const atKill = readStore(dataDir);
        const statesAtKill = new Set(atKill.conferences.map((conference) => conference.state));
        findings.push(
          `seed ${seed}: kill at ${schedule.killAtMs} ms, concurrency ${schedule.concurrency}, ${seen.filter((entry) => entry.id !== undefined).length}/${CONFERENCES} creates and ` +
            `${seen.filter((entry) => entry.stopAnswered).length}/${seen.filter((entry) => entry.plan.stopAfterMs !== undefined).length} stops answered; found ` +
            (atKill.conferences.map((conference) => conference.state).sort().join(" ") || "none"),
        );
        tally.trials++;
        tally.deploying += statesAtKill.has("deploying") ? 1 : 0;
        tally.stopping += statesAtKill.has("stopping") ? 1 : 0;
        tally.placed += statesAtKill.has("placed") ? 1 : 0;
        tally.noneAcknowledged += seen.every((entry) => entry.id === undefined) ? 1 : 0;
        tally.allSettled += atKill.conferences.length > 0 && atKill.conferences.every((conference) => SETTLED.includes(conference.state)) ? 1 : 0;
        const acknowledged = seen.flatMap((entry) => entry.id ?? []);
        expect(
          acknowledged.filter((id) => !atKill.conferences.some((conference) => conference.id === id)),
          context("every conference whose create was answered is in the store"),
        ).toEqual([]);
        expect(
          seen
            .filter((entry) => entry.stopAnswered)
            .flatMap((entry) => atKill.conferences.filter((conference) => conference.id === entry.id && !["stopping", ...TERMINAL_STATES].includes(conference.state)))
            .map((conference) => `${conference.id} ${conference.state}`),
          context("every conference whose stop was answered is stopping or over in the store"),
        ).toEqual([]);

        // Restart on the same data directory; stop again what was meant to stop (a stop is idempotent).
        const second = await start(env);
        const again = client(second.url, token);
        for (const entry of seen) {
          if (entry.id !== undefined && entry.plan.stopAfterMs !== undefined) {
            const response = await again("DELETE", `/v1/conferences/${entry.id}`);
            expect(response.status, context(`the stop of ${entry.id} after the restart`)).toBe(202);
          }
        }
        const deadline = performance.now() + CONVERGE_TIMEOUT_MS;
        let listed: { id: string; state: ConferenceState; error?: string; url?: string }[] = [];
        for (;;) {
          const response = await again("GET", "/v1/conferences?limit=500");
          expect(response.status, context("the list after the restart")).toBe(200);
          listed = ((await response.json()) as { conferences: typeof listed }).conferences;
          if (listed.every((conference) => SETTLED.includes(conference.state)) || performance.now() > deadline) {
            break;
          }
          await delay(POLL_MS);
        }
        expect(
          listed.filter((conference) => !SETTLED.includes(conference.state)).map((conference) => `${conference.id} ${conference.state}`),
          context(`every conference settles within ${CONVERGE_TIMEOUT_MS} ms of the restart; the service printed:\n${second.stderr}\n${second.stdout}`),
        ).toEqual([]);
        // What a client that connects now is told, to hold against the store below.
        const streamed = new Map<string, { id: number; type: string }[]>();
        for (const conference of listed) {
          // A settled conference's state names its last event.
          streamed.set(conference.id, await streamedEvents(second.url, token, conference.id, conference.state));
        }
        expect(await second.stop(), context("the restarted service stops cleanly")).toBe(0);
        services.delete(second);

        // Nothing lost, everything finished, nothing left behind.
        const byId = new Map(listed.map((conference) => [conference.id, conference]));
        expect(acknowledged.filter((id) => !byId.has(id)), context("every answered create is listed after the restart")).toEqual([]);
        const unanswered = seen.filter((entry) => entry.createSent && entry.id === undefined).length;
        const extra = listed.filter((conference) => !acknowledged.includes(conference.id));
        expect(extra.length, context("conferences beyond the answered creates come from unanswered ones")).toBeLessThanOrEqual(unanswered);
        for (const { id, state, error, url } of listed) {
          const entry = seen.find((candidate) => candidate.id === id);
          // A conference whose create went unanswered was never stopped: its id never reached the client.
          const meantToStop = entry?.plan.stopAfterMs !== undefined;
          const where = context(`${id} (${entry === undefined ? "create unanswered" : meantToStop ? "stopped" : "kept"}) ended ${state}${error === undefined ? "" : `: ${error}`}`);
          expect(state, where).toBe(meantToStop ? "stopped" : "ready");
          if (state === "ready") {
            expect(url, `${where}: with an address`).toMatch(/\S/);
          }
        }

        const after = readStore(dataDir);
        expect(
          after.operations.filter((operation) => operation.state === "queued" || operation.state === "running"),
          context("every operation record is finished"),
        ).toEqual([]);
        expect(after.conferences.map((conference) => conference.id).sort(), context("the store and the API agree")).toEqual([...byId.keys()].sort());
        expect(readdirSync(join(dataDir, "offline", "locks")), context("no lock is left")).toEqual([]);
        const stateFiles = readdirSync(join(dataDir, "offline")).filter((file) => file.endsWith(".json"));
        const readyStacks = after.conferences.filter((conference) => conference.state === "ready").map((conference) => `${conference.stack}.json`);
        expect(stateFiles.sort(), context("state files: the testbed's and every ready conference's, and no other")).toEqual(["testbed.json", ...readyStacks].sort());
        for (const conference of after.conferences) {
          expect(conference.stack, context(`${conference.id}'s stack`)).toBe(conferenceName(conference.id));
          const events = after.events.filter((event) => event.stack === conferenceName(conference.id));
          const where = context(`${conference.id} (${conference.state}) events ${events.map((event) => `${event.id}:${event.type}`).join(" ")}`);
          expect(events.map((event) => event.type).join(" "), where).toMatch(EVENTS_OF[conference.state]);
          const sent = streamed.get(conference.id)!;
          expect(sent.every((event, index) => index === 0 || event.id > sent[index - 1]!.id), `${where}: streamed ids increase`).toBe(true);
          expect(sent, `${where}: the stream replays the store's events`).toEqual(events.map(({ id, type }) => ({ id, type })));
        }
        expect(existsSync(join(dataDir, "service.pid")), context("the stopped service gave its data directory up")).toBe(false);

        // The killed service's workers: their IPC channel closed, they exit by themselves.
        expect(await waitForExit(workers, ORPHAN_TIMEOUT_MS), context(`the killed service's children exit within ${ORPHAN_TIMEOUT_MS} ms`)).toEqual([]);
        passed = true;
      } finally {
        // A failed trial leaves its service running; its data directory is kept to look into.
        await Promise.all([...services].map((service) => service.kill9()));
        services.clear();
        if (passed) {
          rmSync(dataDir, { recursive: true, force: true });
        } else {
          console.log(`seed ${seed}: the data directory is kept at ${dataDir}`);
        }
      }
    },
    TRIAL_TIMEOUT_MS,
  );

  it("kills found deployments and stops in flight", () => {
    // Without both, the trials above did not test recovery of what they claim to.
    expect(tally.trials, "every trial got as far as the kill").toBe(TRIALS);
    expect(tally.deploying, "kills that found a conference deploying").toBeGreaterThan(0);
    expect(tally.stopping, "kills that found a conference stopping").toBeGreaterThan(0);
  });
});
