import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { CDN_POP_CONFIG, type PopSpec } from "../../domain/contracts/cdn-pop.ts";
import { qualifiedKey } from "../../domain/contracts/project.ts";
import { DEFAULT_REQUEST_COSTS, type Layout, type RoleCounts } from "../../domain/wae/index.ts";
import type { InstanceManagerReport } from "../../domain/wae/reports.ts";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, sign } from "../../domain/wae/signature.ts";
import { EngineError } from "../../automation/engine/engine.ts";
import { OperationQueue } from "../../automation/engine/queue.ts";
import { OperationRunner } from "../../automation/operations/runner.ts";
import { POPS_VARIABLE, POP_KEYS_FILE_VARIABLE, POP_MODELS_VARIABLE, loadPops } from "../../automation/service/loops/pop-config.ts";
import { type LoopClock, PopLoops, movedEdges } from "../../automation/service/loops/pop-loop.ts";
import { highsSolver } from "../../automation/solver/highs.ts";
import { Store } from "../../automation/store/store.ts";
import { type Call, HeldEngine } from "../support/held-engine.ts";
import { poll } from "../support/poll.ts";

/**
 * The PoP loop on a real store, the real WAE (HiGHS) and the runner, with an engine whose every `up`
 * ends when the test says: what each period decides, and what the loop's stability rules hold back.
 * Periods are decided by calling `decide` at each period's end; the loop's own timer never fires.
 */

const PERIOD_MS = 600_000;
/** A period boundary, 2026-12-07T10:00:00Z. */
const T0 = Date.parse("2026-12-07T10:00:00Z");
const KEYS = { host1: "key-of-host1-0123456789abcdef", host2: "key-of-host2-0123456789abcdef", host3: "key-of-host3-0123456789abcdef" };
const VIENNA = join(import.meta.dirname, "..", "..", "stacks", "Pulumi.pop-vienna.yaml");

/**
 * Vienna's stack file with a live edge on host3: six edges, half of them small. With hosts alike,
 * each edge is a sixth of the capacity, so MATCHING is within the tolerance of that layout.
 */
const RUNNING: Layout = { host1: ["small", "vod"], host2: ["small", "large"], host3: ["small", "live"] };
const MATCHING: RoleCounts = { small: 5000, large: 1700, vod: 1650, live: 1650 };
/** A mix several periods' changes away from RUNNING. */
const LIVE_HEAVY: RoleCounts = { small: 2500, large: 600, vod: 600, live: 6300 };
/**
 * A mix five edges match (one of each role, two small): RUNNING has a small edge too many, its small
 * share 0.095 from the demand — past the loop's 0.09, within the paper's 0.1.
 */
const FEWER_SMALL: RoleCounts = { small: 4050, large: 1983, vod: 1983, live: 1983 };
/** MATCHING without live demand this period. */
const NO_LIVE: RoleCounts = { ...MATCHING, live: 0 };

/** Vienna's stack file, with RUNNING as its layout, in `dir`. */
function viennaWithLive(dir: string): string {
  const file = join(dir, "Pulumi.pop-vienna.yaml");
  const document = parse(readFileSync(VIENNA, "utf8")) as { config: Record<string, { layout: Layout; addresses: Record<string, string> }> };
  const pop = document.config[qualifiedKey(CDN_POP_CONFIG.pop)]!;
  pop.layout = RUNNING;
  pop.addresses["host3/live"] = "192.0.2.25";
  writeFileSync(file, stringify(document));
  return file;
}

/** A clock the test sets; the loop's own timer waits until it is closed. */
function testClock(): LoopClock & { at: number } {
  const clock = {
    at: T0,
    now: () => clock.at,
    sleepUntil: (_at: number, signal: AbortSignal) => new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true })),
  };
  return clock;
}

let cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) {
    await cleanup();
  }
  cleanups = [];
});

async function world(settings: ConstructorParameters<typeof PopLoops>[0]["settings"] = {}, models?: string) {
  const dir = mkdtempSync(join(tmpdir(), "switch-pop-loop-"));
  const keysFile = join(dir, "pop-keys.json");
  writeFileSync(keysFile, JSON.stringify({ vienna: KEYS }));
  chmodSync(keysFile, 0o600);
  const pops = loadPops({ [POPS_VARIABLE]: viennaWithLive(dir), [POP_KEYS_FILE_VARIABLE]: keysFile, ...(models === undefined ? {} : { [POP_MODELS_VARIABLE]: models }) });
  const clock = testClock();
  const store = new Store({ path: join(dir, "switch.db"), now: () => new Date(clock.at) });
  const engine = new HeldEngine();
  const loops = new PopLoops({ store, pops, solver: await highsSolver(), clock, settings: { periodMs: PERIOD_MS, ...settings } });
  const runner = new OperationRunner({ store, engine, queue: new OperationQueue(2), owners: [loops], retry: { retries: 0, minTimeoutMs: 1 } });
  loops.runWith(runner);
  cleanups.push(async () => {
    // An up a failed test left held would hold the runner's close for ever; a settled call ignores this.
    for (const call of engine.calls) {
      call.finish({ error: new EngineError("cancelled", "the test ended") });
    }
    await loops.close();
    await runner.close();
    store.close();
  });

  /** One report per host for the period ending at `end`, its requests split evenly, stored as accepted. */
  const report = (end: number, requests: RoleCounts, hosts: readonly string[] = ["host1", "host2", "host3"]) => {
    for (const host of hosts) {
      const share = (value: number) => Math.round(value / hosts.length);
      const kept = store.recordReport("vienna", reportOf(host, end, { small: share(requests.small), large: share(requests.large), vod: share(requests.vod), live: share(requests.live) }), `digest-${host}-${end}`);
      expect(kept).toBe("accepted");
    }
  };
  /** The engine's next `up`, with the layout its config carries. */
  const nextUp = async (): Promise<{ call: Call; pop: PopSpec }> => {
    const call = await engine.next();
    expect(call.kind).toBe("up");
    return { call, pop: JSON.parse(call.config![qualifiedKey(CDN_POP_CONFIG.pop)]!.value) as PopSpec };
  };
  const converged = () => poll("the PoP's up to end", () => Promise.resolve(loops.view("vienna")), (view) => view.pendingOperation === undefined, 5000);
  /** Starts the loop and lets the first `up` (the stack file's PoP) succeed. */
  const started = async () => {
    loops.start();
    const first = await nextUp();
    first.call.finish({ outputs: {} });
    await converged();
    return first;
  };
  return { store, engine, loops, clock, report, nextUp, converged, started };
}

function reportOf(host: string, end: number, requests: RoleCounts): InstanceManagerReport {
  return {
    pop: "vienna",
    host,
    periodStart: new Date(end - PERIOD_MS).toISOString(),
    periodEnd: new Date(end).toISOString(),
    cpu: { capacityCores: 8, usedCores: 2 },
    network: { linkMbps: 1000, txMbps: 200 },
    requests,
  };
}

const edges = (layout: Layout) => Object.values(layout).reduce((sum, roles) => sum + roles.length, 0);

describe("the PoP loop", () => {
  it("brings a PoP the service never ran up as its stack file configures it, and then keeps a layout within the tolerance", async () => {
    const { loops, report, started, engine } = await world();
    const { pop } = await started();
    expect(pop.layout).toEqual(RUNNING);
    expect(loops.view("vienna").lastDecision).toMatchObject({ outcome: "applied", strategy: "configured" });

    report(T0 + PERIOD_MS, MATCHING);
    const decision = loops.decide("vienna", T0 + PERIOD_MS);
    expect(decision.outcome).toBe("unchanged");
    expect(engine.calls).toHaveLength(1);
  });

  it("keeps one edge of a role that had no requests this period, so that its demand stays in sight", async () => {
    const { loops, report, started, engine } = await world({ persistPeriods: 1 });
    await started();
    report(T0 + PERIOD_MS, NO_LIVE);
    const decision = loops.decide("vienna", T0 + PERIOD_MS);
    expect(decision.outcome).toBe("unchanged");
    expect(Object.values((decision.layout as { layout: Layout }).layout).filter((roles) => roles.includes("live"))).toHaveLength(1);
    expect(engine.calls).toHaveLength(1);
  });

  it("removes an edge only once that was wanted in two periods in a row, and records the layout the up applied", async () => {
    const { loops, report, started, nextUp, converged, engine } = await world();
    await started();
    report(T0 + PERIOD_MS, FEWER_SMALL);
    const first = loops.decide("vienna", T0 + PERIOD_MS);
    expect(first).toMatchObject({ outcome: "held", reason: expect.stringMatching(/^a change wanted in 1 of the 2 periods/) as unknown });
    // A period back to the running mix resets the count.
    report(T0 + 2 * PERIOD_MS, MATCHING);
    expect(loops.decide("vienna", T0 + 2 * PERIOD_MS).outcome).toBe("unchanged");
    report(T0 + 3 * PERIOD_MS, FEWER_SMALL);
    expect(loops.decide("vienna", T0 + 3 * PERIOD_MS).outcome).toBe("held");
    expect(engine.calls).toHaveLength(1);
    report(T0 + 4 * PERIOD_MS, FEWER_SMALL);
    const acted = loops.decide("vienna", T0 + 4 * PERIOD_MS);
    expect(acted.outcome).toBe("applying");

    const { call, pop } = await nextUp();
    const decided = acted.layout as { layout: Layout; addresses: Record<string, string> };
    expect(pop.layout).toEqual(decided.layout);
    expect(pop.addresses).toEqual(decided.addresses);
    expect(edges(pop.layout)).toBe(5);
    call.finish({ outputs: {} });
    await converged();
    expect(loops.view("vienna")).toMatchObject({ layout: decided.layout, addresses: decided.addresses, lastDecision: { id: acted.id, outcome: "applied" } });
  });

  it("removes an edge at once when the running layout is outside the paper's tolerance", async () => {
    const { loops, report, started } = await world();
    await started();
    // Small 0.5 of the capacity against 0.35 of the requests.
    report(T0 + PERIOD_MS, { small: 3500, large: 2200, vod: 2150, live: 2150 });
    expect(loops.decide("vienna", T0 + PERIOD_MS).outcome).toBe("applying");
  });

  /**
   * MATCHING's mix at a volume whose large files fill a host's link: 60 large-file requests/s at
   * the default 2.4 MB each are 1,152 Mbit/s, 1,440 with the headroom, more than the one 1 Gbit/s
   * host the running layout gives them.
   */
  const BUSY: RoleCounts = { small: 600 * 200, large: 600 * 60, vod: 600 * 20, live: 600 * 20 };

  it("with the volume model (the default), gives a role whose demand outgrows its edges more of them at once, and records why", async () => {
    const { loops, report, started, nextUp } = await world();
    await started();
    report(T0 + PERIOD_MS, BUSY);
    const decision = loops.decide("vienna", T0 + PERIOD_MS);
    expect(decision.outcome).toBe("applying");
    expect(decision.reason).toMatch(/carrying the demand with 25% headroom/);
    const inputs = decision.inputs as { model: string; volume: { needRps: RoleCounts; carriedRps: RoleCounts; headroom: number; shortfall: number }; gap: number; costs: unknown };
    expect(inputs.model).toBe("volume");
    expect(inputs.volume.needRps.large).toBeCloseTo(60 * 1.25, 6);
    expect(inputs.volume.carriedRps.large).toBeCloseTo(75, 6);
    expect(inputs.volume).toMatchObject({ headroom: 0.25, shortfall: 0 });
    expect(inputs.gap).toBe(0);
    // One period of three hosts is too little to fit the costs: the defaults stand.
    expect(inputs.costs).toEqual(DEFAULT_REQUEST_COSTS);
    const { pop } = await nextUp();
    expect(Object.values(pop.layout).filter((roles) => roles.includes("large")).length).toBeGreaterThanOrEqual(2);
  });

  it("with the paper's model for the PoP (SWITCH_POP_MODELS), lays out the same demand by its mix alone", async () => {
    const { loops, report, started } = await world({}, "vienna=paper");
    await started();
    report(T0 + PERIOD_MS, BUSY);
    const decision = loops.decide("vienna", T0 + PERIOD_MS);
    const inputs = decision.inputs as { model: string; volume?: unknown };
    expect(inputs.model).toBe("paper");
    expect(inputs.volume).toBeUndefined();
    // One large-file edge matches a mix with 17 % large files: the link it fills does not count.
    expect(Object.values((decision.layout as { layout: Layout }).layout).filter((roles) => roles.includes("large"))).toHaveLength(1);
  });

  it("adds an edge at once: a role the running layout leaves short is not made to wait", async () => {
    const { loops, report, started, nextUp } = await world();
    await started();
    report(T0 + PERIOD_MS, LIVE_HEAVY);
    const decision = loops.decide("vienna", T0 + PERIOD_MS);
    expect(decision.outcome).toBe("applying");
    const { pop } = await nextUp();
    expect(Object.values(pop.layout).filter((roles) => roles.includes("live")).length).toBeGreaterThan(1);
  });

  it("moves at most a quarter of the running edges (at least one) per period", async () => {
    const { loops, report, started, nextUp, converged } = await world({ persistPeriods: 1 });
    await started();
    let running = loops.view("vienna").layout;
    let applied = 0;
    for (let period = 1; period <= 6; period++) {
      report(T0 + period * PERIOD_MS, LIVE_HEAVY);
      const decision = loops.decide("vienna", T0 + period * PERIOD_MS);
      if (decision.outcome === "unchanged") {
        break;
      }
      expect(decision.outcome).toBe("applying");
      const { call, pop } = await nextUp();
      expect(movedEdges(running, pop.layout), `period ${period}`).toBeLessThanOrEqual(Math.max(1, Math.floor(edges(running) * 0.25)));
      call.finish({ outputs: {} });
      await converged();
      running = loops.view("vienna").layout;
      applied++;
    }
    // The live-heavy mix is more than one period's changes away from Vienna's layout.
    expect(applied).toBeGreaterThanOrEqual(2);
  });

  it("makes no decision while the last up has not converged, and an up that waits applies the newest decision", async () => {
    const { loops, report, started, nextUp, converged, engine, store, clock } = await world({ persistPeriods: 1 });
    await started();
    report(T0 + PERIOD_MS, LIVE_HEAVY);
    expect(loops.decide("vienna", T0 + PERIOD_MS).outcome).toBe("applying");
    const running = await nextUp();

    report(T0 + 2 * PERIOD_MS, LIVE_HEAVY);
    expect(loops.decide("vienna", T0 + 2 * PERIOD_MS)).toMatchObject({ outcome: "held", reason: expect.stringMatching(/has not converged$/) as unknown });

    // Two rebalances while the up runs: one up waits, and it applies the second.
    clock.at = T0 + 2 * PERIOD_MS + 1000;
    const second = loops.rebalance("vienna");
    const third = loops.rebalance("vienna");
    expect([second.outcome, third.outcome]).toEqual(["applying", "applying"]);
    running.call.finish({ outputs: {} });
    const waiting = await nextUp();
    expect(waiting.pop.layout).toEqual((third.layout as { layout: Layout }).layout);
    waiting.call.finish({ outputs: {} });
    await converged();
    expect(store.decision(second.id)!.outcome).toBe("superseded");
    expect(store.decision(third.id)!.outcome).toBe("applied");
    expect(engine.calls.filter((call) => call.kind === "up")).toHaveLength(3);
    expect(store.operations("pop-vienna").map((operation) => operation.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
  });

  it("keeps the last good layout when an up fails, and waits one, then two periods before the next change", async () => {
    const { loops, report, started, nextUp, converged, store } = await world({ persistPeriods: 1 });
    await started();
    const good = loops.view("vienna").layout;
    const tryPeriod = (period: number) => {
      report(T0 + period * PERIOD_MS, LIVE_HEAVY);
      return loops.decide("vienna", T0 + period * PERIOD_MS);
    };
    const failed = tryPeriod(1);
    expect(failed.outcome).toBe("applying");
    (await nextUp()).call.finish({ error: new EngineError("failed", "the Docker host did not answer") });
    await converged();
    expect(store.decision(failed.id)).toMatchObject({ outcome: "failed", reason: expect.stringMatching(/the up failed: the Docker host did not answer$/) as unknown });
    expect(loops.view("vienna").layout).toEqual(good);

    expect(tryPeriod(2)).toMatchObject({ outcome: "held", reason: expect.stringMatching(/^the last up failed/) as unknown });
    const again = tryPeriod(3);
    expect(again.outcome).toBe("applying");
    (await nextUp()).call.finish({ error: new EngineError("failed", "the Docker host did not answer") });
    await converged();
    expect(tryPeriod(4).outcome).toBe("held");
    expect(tryPeriod(5).outcome).toBe("held");
    const third = tryPeriod(6);
    expect(third.outcome).toBe("applying");
    (await nextUp()).call.finish({ outputs: {} });
    await converged();
    expect(loops.view("vienna").layout).toEqual((third.layout as { layout: Layout }).layout);
    expect(loops.view("vienna").layout).not.toEqual(good);
  });

  it("keeps a silent host's last report for three periods, then moves its edges at once", async () => {
    const { loops, report, started, nextUp, converged } = await world();
    await started();
    report(T0 + PERIOD_MS, MATCHING);
    expect(loops.decide("vienna", T0 + PERIOD_MS).outcome).toBe("unchanged");
    for (let period = 2; period <= 4; period++) {
      report(T0 + period * PERIOD_MS, MATCHING, ["host1", "host2"]);
      const decision = loops.decide("vienna", T0 + period * PERIOD_MS);
      expect(decision.outcome, `period ${period}`).toBe("unchanged");
      expect(decision.inputs).toMatchObject({ silent: ["host3"], unavailable: [] });
    }
    report(T0 + 5 * PERIOD_MS, MATCHING, ["host1", "host2"]);
    const moved = loops.decide("vienna", T0 + 5 * PERIOD_MS);
    // No second period asked for: nothing serves from host3.
    expect(moved).toMatchObject({ outcome: "applying", inputs: { silent: [], unavailable: ["host3"] }, reason: expect.stringContaining("moves the edges of host3") as unknown });
    const { call, pop } = await nextUp();
    expect(pop.layout.host3 ?? []).toEqual([]);
    expect(pop.addresses["host3/small"]).toBeUndefined();
    // The DNS server and instance manager on host3 keep their addresses.
    expect(pop.addresses["host3/dns"]).toBe("192.0.2.12");
    call.finish({ outputs: {} });
    await converged();
  });

  it("waits for every host's first report before the first decision", async () => {
    const { loops, report, started } = await world();
    await started();
    report(T0 + PERIOD_MS, LIVE_HEAVY, ["host1", "host2"]);
    expect(loops.decide("vienna", T0 + PERIOD_MS)).toMatchObject({ outcome: "held", reason: "waiting for the first report of host3" });
  });

  it("refuses a report of a period already decided as late, and counts a resend once", async () => {
    const { loops, report, started, clock } = await world();
    await started();
    report(T0 + PERIOD_MS, MATCHING);
    loops.decide("vienna", T0 + PERIOD_MS);
    const signed = (body: string) => {
      const timestamp = Math.floor(clock.at / 1000);
      return { [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: sign(body, KEYS.host1, timestamp) };
    };
    clock.at = T0 + PERIOD_MS + 60_000;
    const late = JSON.stringify(reportOf("host1", T0 + PERIOD_MS - 60_000, MATCHING));
    // host1's last accepted period ends at T0 + PERIOD_MS; another host's late report is late.
    const lateOther = JSON.stringify({ ...reportOf("host2", T0 + PERIOD_MS, MATCHING), periodStart: new Date(T0 + PERIOD_MS - 120_000).toISOString() });
    expect(loops.admit("vienna", Buffer.from(late), signed(late))).toMatchObject({ outcome: "refused", reason: "out-of-order" });
    expect(loops.admit("vienna", Buffer.from(lateOther), { [TIMESTAMP_HEADER]: String(Math.floor(clock.at / 1000)), [SIGNATURE_HEADER]: sign(lateOther, KEYS.host2, Math.floor(clock.at / 1000)) })).toMatchObject({
      outcome: "refused",
    });

    // A rebalance in the middle of the next period leaves that period open to its reports.
    clock.at = T0 + PERIOD_MS + PERIOD_MS / 2;
    loops.rebalance("vienna");
    clock.at += 5000;
    const quarter = JSON.stringify({ ...reportOf("host2", T0 + PERIOD_MS + PERIOD_MS / 4, MATCHING), periodStart: new Date(T0 + PERIOD_MS).toISOString() });
    const stamp = Math.floor(clock.at / 1000);
    expect(loops.admit("vienna", Buffer.from(quarter), { [TIMESTAMP_HEADER]: String(stamp), [SIGNATURE_HEADER]: sign(quarter, KEYS.host2, stamp) }).outcome).toBe("accepted");
    clock.at = T0 + 2 * PERIOD_MS + 5000;
    const next = JSON.stringify(reportOf("host1", T0 + 2 * PERIOD_MS, MATCHING));
    expect(loops.admit("vienna", Buffer.from(next), signed(next)).outcome).toBe("accepted");
    expect(loops.admit("vienna", Buffer.from(next), signed(next)).outcome).toBe("duplicate");
    loops.decide("vienna", T0 + 2 * PERIOD_MS);
    clock.at = T0 + 2 * PERIOD_MS + 60_000;
    const lateHost3 = JSON.stringify(reportOf("host3", T0 + 2 * PERIOD_MS, MATCHING));
    expect(loops.admit("vienna", Buffer.from(lateHost3), { [TIMESTAMP_HEADER]: String(Math.floor(clock.at / 1000)), [SIGNATURE_HEADER]: sign(lateHost3, KEYS.host3, Math.floor(clock.at / 1000)) })).toMatchObject({
      outcome: "refused",
      reason: "late",
    });
  });
});
