import { isDeepStrictEqual } from "node:util";
import type { PopSpec } from "../../../domain/contracts/cdn-pop.ts";
import { NotFoundError } from "../../../domain/errors.ts";
import {
  CALIBRATION_PERIODS,
  DEFAULT_HEADROOM,
  DEFAULT_TOLERANCE,
  type HostSample,
  type Layout,
  type LayoutResult,
  ROLES,
  type Role,
  type RoleCounts,
  calibrate,
  combineReports,
  computeLayout,
  demandShares,
  hostWeight,
  resourceShares,
  worstError,
} from "../../../domain/wae/index.ts";
import type { MilpSolver } from "../../../domain/wae/milp.ts";
import { nextPopConfig } from "../../../domain/wae/pop-config.ts";
import type { InstanceManagerReport } from "../../../domain/wae/reports.ts";
import type { StackConfigMap } from "../../engine/engine.ts";
import type { OperationRunner, StackOwner } from "../../operations/runner.ts";
import type { ResourceChange } from "../../../domain/records.ts";
import type { OperationRecord, PopDecision } from "../../store/records.ts";
import type { Store } from "../../store/store.ts";
import { type ServedPop, stackConfigOf } from "./pop-config.ts";
import { type RefusalReason, type ReportAdmission, type ReportHeaders, type ReportRefusal, admitReport } from "./report-admission.ts";

/**
 * The PoP loop (ARCHITECTURE.md "PoP loop"): every period, each PoP's reports → a layout
 * (domain/wae computeLayout, with the running layout as its input) → the next stack config
 * (nextPopConfig) → an `up` of the PoP's stack through the runner when it changed. This class is
 * also the runner's owner of the `pop-*` stacks: an `up` applies the newest decision waiting, read
 * as its attempt begins, so pending `up`s coalesce into one.
 *
 * Stability, learnt from the autoscalers that work (issue 17's anchors):
 * - a change that only removes edges while the running layout is still within the paper's ±0.1
 *   must be wanted in `persistPeriods` consecutive periods before it is made (jitsi-autoscaler's 4
 *   periods down; HPA's 300 s scale-down stabilization); one that adds an edge, any change once the
 *   running layout is outside ±0.1, and the moves off a host gone silent for good are made at once,
 *   as HPA scales up at once;
 * - the loop acts once a share is `actingTolerance` (0.09) from its demand, ahead of the paper's
 *   ±0.1, so that the period a report takes to arrive and the `up` to apply is spent within it;
 * - no decision while the last `up` has not converged (jitsi-autoscaler skips such a group);
 * - at most `maxMoveShare` of the running edges (at least one) change per period (Karpenter's 10 %
 *   disruption budget), through computeLayout's `maxMoves`;
 * - computeLayout keeps the running layout while it is within the tolerance, and aims a new one at
 *   75 % of it (domain/wae HYSTERESIS), so noise cannot flip it back and forth;
 * - a failed `up` leaves the last good layout on record (the newest `applied` decision, else the
 *   stack file's) and the next change waits 1, 2, 4 … periods (at most `maxBackoffPeriods`);
 * - a host whose reports stop keeps its last report for `silentPeriods` periods (jitsi-autoscaler#160:
 *   lost reports must not read as no load), then counts as unavailable.
 *
 * State that must survive a restart is in the store (reports, decisions, operations); the count of
 * periods a change has persisted is not, so a restart waits for it again — the cautious side.
 */

export interface PopLoopSettings {
  /** The loop's period, as the paper's (ten minutes). */
  periodMs: number;
  /** The loop decides a period this long after it ended, so that its reports have arrived. */
  graceMs: number;
  /** Consecutive periods a change that only removes edges must be wanted in before it is made. */
  persistPeriods: number;
  /** The share of the running edges one period may change (at least one change). */
  maxMoveShare: number;
  /** Periods a silent host keeps its last report before it counts as unavailable. */
  silentPeriods: number;
  /** The longest wait after failed `up`s, in periods. */
  maxBackoffPeriods: number;
  /** How long reports and decisions are kept. */
  retentionMs: number;
  /**
   * The loop changes the layout once a role's share is this far from its demand: ahead of the
   * paper's ±0.1, so that the periods a change takes to persist and apply are spent within it.
   */
  actingTolerance: number;
  /** With the volume model: capacity kept beyond each role's demand (domain/wae DEFAULT_HEADROOM). */
  headroom: number;
}

export const DEFAULT_POP_LOOP_SETTINGS: Readonly<PopLoopSettings> = {
  periodMs: 10 * 60_000,
  graceMs: 30_000,
  persistPeriods: 2,
  maxMoveShare: 0.25,
  silentPeriods: 3,
  maxBackoffPeriods: 8,
  retentionMs: 7 * 24 * 3600_000,
  actingTolerance: 0.09,
  headroom: DEFAULT_HEADROOM,
};

/** The loop's clock: the service's, or a test's or a benchmark's accelerated one. */
export interface LoopClock {
  now(): number;
  /** Resolves at `at` on this clock, or at once when `signal` aborts. */
  sleepUntil(at: number, signal: AbortSignal): Promise<void>;
}

export const SYSTEM_CLOCK: LoopClock = {
  now: () => Date.now(),
  sleepUntil: (at, signal) =>
    new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, at - Date.now()));
      function done() {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      }
      signal.addEventListener("abort", done, { once: true });
    }),
};

/** What the loop observes, for metrics; the app owns the registry. */
export interface PopLoopObserver {
  /** A report's outcome; for an accepted one, its host and how long after its period's end it arrived. */
  report(pop: string, outcome: "accepted" | "duplicate" | ReportRefusal["reason"], accepted?: { host: string; lagSeconds: number }): void;
  decision(pop: string, outcome: PopDecision["outcome"], seconds: number): void;
  reUp(pop: string, result: "succeeded" | "failed"): void;
  edges(pop: string, running: Readonly<Record<Role, number>>, moved: number): void;
}

/** The PoP as it runs, for `GET /v1/pops` and `/v1/pops/:pop`. */
export interface PopView {
  name: string;
  stack: string;
  hosts: string[];
  /** The last good layout and its edges' addresses. */
  layout: Layout;
  addresses: Record<string, string>;
  /** The newest decision, whatever became of it. */
  lastDecision?: PopDecision;
  /** Per host, the end of its latest accepted report; absent for a host that never reported. */
  lastReports: Record<string, string | undefined>;
  /** The `up` that runs or waits on the PoP's stack, if one does. */
  pendingOperation?: number;
}

/** A decision as the API shows it: with what its re-up changed, per resource. */
export type DecisionView = PopDecision & { changes?: ResourceChange[] };

interface PopState {
  served: ServedPop;
  /** Periods in a row in which computeLayout wanted a change. */
  wanted: number;
  /** Periods still to wait after a failed `up`. */
  backoff: number;
  /** The end of the last period decided: reports ending by then are late. */
  decidedUntil?: number;
  /** When the loop began watching this PoP: hosts that never reported count as waiting until silentPeriods have passed. */
  watchingSince: number;
}

export interface PopLoopsOptions {
  store: Store;
  pops: readonly ServedPop[];
  solver: MilpSolver;
  clock?: LoopClock;
  settings?: Partial<PopLoopSettings>;
  observer?: PopLoopObserver;
  onError?: (error: unknown, pop: string) => void;
}

/** The loop of every served PoP, and the owner of their stacks. */
export class PopLoops implements StackOwner {
  private readonly store: Store;
  private readonly solver: MilpSolver;
  private readonly clock: LoopClock;
  readonly settings: Readonly<PopLoopSettings>;
  private readonly options: PopLoopsOptions;
  private readonly states = new Map<string, PopState>();
  private readonly byStack = new Map<string, PopState>();
  private runner: OperationRunner | undefined;
  private readonly stopping = new AbortController();
  private readonly running = new Set<Promise<void>>();

  constructor(options: PopLoopsOptions) {
    this.options = options;
    this.store = options.store;
    this.solver = options.solver;
    this.clock = options.clock ?? SYSTEM_CLOCK;
    this.settings = { ...DEFAULT_POP_LOOP_SETTINGS, ...options.settings };
    const now = this.clock.now();
    for (const served of options.pops) {
      const state: PopState = { served, wanted: 0, backoff: 0, watchingSince: now };
      this.states.set(served.name, state);
      this.byStack.set(served.stack, state);
    }
  }

  /** The runner that runs the PoPs' `up`s (it is built with this as one of its owners). */
  runWith(runner: OperationRunner): void {
    this.runner = runner;
  }

  names(): string[] {
    return [...this.states.keys()];
  }

  has(pop: string): boolean {
    return this.states.has(pop);
  }

  // The loop.

  /**
   * Starts each PoP's loop: a PoP whose stack the service never brought up is brought up as its
   * stack file configures it; then a decision every period, `graceMs` after the period ends.
   */
  start(): void {
    for (const state of this.states.values()) {
      if (this.store.latestDecision(state.served.name, ["applied", "applying"]) === undefined) {
        this.apply(state, { periodStart: new Date(this.clock.now()).toISOString(), strategy: "configured", pop: state.served.config, inputs: {}, timings: {}, reason: "the PoP as its stack file configures it: the service had not brought it up" });
      }
      const loop = this.loop(state).catch((error: unknown) => this.options.onError?.(error, state.served.name));
      const tracked = loop.finally(() => this.running.delete(tracked));
      this.running.add(tracked);
    }
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.running]);
  }

  private async loop(state: PopState): Promise<void> {
    const { periodMs, graceMs } = this.settings;
    while (!this.stopping.signal.aborted) {
      const periodEnd = Math.floor((this.clock.now() - graceMs) / periodMs) * periodMs + periodMs;
      await this.clock.sleepUntil(periodEnd + graceMs, this.stopping.signal);
      if (this.stopping.signal.aborted) {
        return;
      }
      try {
        this.decide(state.served.name, periodEnd);
      } catch (error) {
        // One period's failure (the store refused a write) must not end the PoP's loop.
        this.options.onError?.(error, state.served.name);
      }
    }
  }

  /**
   * Decides the period that ended at `periodEnd` (ms since 1970) for `pop`, and queues the `up` the
   * decision needs. `force` (an admin's rebalance) skips the persistence rule and the backoff.
   * Returns the decision recorded.
   */
  decide(pop: string, periodEnd: number, options: { force?: boolean } = {}): PopDecision {
    const state = this.stateOf(pop);
    const started = performance.now();
    const { periodMs } = this.settings;
    const periodStart = new Date(periodEnd - periodMs).toISOString();
    if (options.force !== true) {
      // A rebalance decides at any moment, not at a period's end: the period it falls in stays open.
      state.decidedUntil = Math.max(state.decidedUntil ?? 0, periodEnd);
    }
    this.prune(pop, periodEnd);
    const held = (reason: string, inputs: Record<string, unknown> = {}) => this.record(state, { periodStart, strategy: "none", outcome: "held", inputs, layout: {}, timings: { totalMs: performance.now() - started }, reason });

    const pending = this.store.unfinishedOperation(state.served.stack, "up");
    if (pending !== undefined && options.force !== true) {
      return held(`the last up (operation ${pending.id}) has not converged`);
    }
    if (state.backoff > 0 && options.force !== true) {
      state.backoff--;
      return held(`the last up failed; the next change waits ${state.backoff + 1} more period${state.backoff === 0 ? "" : "s"}`);
    }

    const running = this.runningSpec(state);
    const seen = this.hostsSeen(state, periodEnd);
    if (seen.waiting.length > 0) {
      return held(`waiting for the first report of ${seen.waiting.join(", ")}`);
    }
    if (seen.reports.length === 0) {
      return held("no host of the PoP reported");
    }
    const gathered = performance.now();
    const combined = combineReports(seen.reports);
    const { hosts } = combined;
    // Every role keeps at least one edge: requests of a role without one go to the mid-cache, which
    // no instance manager counts by role, so a role that lost its last edge would never be seen to
    // need one again. One request's worth of demand holds that edge and moves no share measurably.
    const requests = Object.fromEntries(ROLES.map((role) => [role, Math.max(1, combined.requests[role])])) as RoleCounts;
    const available = new Set(hosts.map((host) => host.name));
    const current: Layout = Object.fromEntries(Object.entries(running.layout).filter(([host]) => available.has(host)));
    const runningEdges = Object.values(running.layout).reduce((sum, roles) => sum + roles.length, 0);
    const maxMoves = Math.max(1, Math.floor(runningEdges * this.settings.maxMoveShare));
    const model = state.served.model;
    // The volume model: the requests' costs fitted to the last CALIBRATION_PERIODS of reports.
    const calibration = model === "volume" ? calibrate(this.samples(state, periodEnd), this.solver) : undefined;
    const volume =
      calibration === undefined ? undefined : { periodSeconds: periodMs / 1000, served: combined.served, costs: calibration.costs, headroom: this.settings.headroom };
    const result = computeLayout({ hosts, requests, current, maxMoves, tolerance: this.settings.actingTolerance, ...(volume === undefined ? {} : { volume }) }, this.solver);
    const computed = performance.now();
    const inputs = {
      model,
      hosts,
      requests,
      current,
      silent: seen.silent,
      unavailable: seen.unavailable,
      reports: seen.reports.length,
      maxMoves,
      ...(calibration === undefined ? {} : { costs: calibration.costs, calibrated: calibration.source, calibrationSamples: calibration.samples }),
      ...(result.volume === undefined ? {} : { volume: result.volume }),
      ...(result.gap === undefined ? {} : { gap: result.gap }),
    };
    const layout = orderedLayout(running, result.layout);
    const next = nextPopConfig(running, layout);
    const timings = { gatherMs: gathered - started, layoutMs: computed - gathered, configMs: performance.now() - computed };
    const decision = { periodStart, strategy: result.strategy, inputs, timings };
    const summary = describeResult(result);

    // A stack file may list a host's roles in another order: the same layout, not a change.
    if (isDeepStrictEqual(next.pop.layout, orderedLayout(running, running.layout)) && isDeepStrictEqual(next.pop.addresses, running.addresses)) {
      state.wanted = 0;
      return this.record(state, { ...decision, outcome: "unchanged", layout: layoutOf(next.pop), timings: { ...timings, totalMs: performance.now() - started }, reason: summary });
    }
    state.wanted++;
    const lostEdges = seen.unavailable.some((host) => (running.layout[host]?.length ?? 0) > 0);
    // Made at once, as Kubernetes' HPA scales up at once: a change that adds an edge (a role the
    // running layout leaves short), and any change once the running layout is outside the paper's
    // tolerance, where every period it waits serves the demand worse. What waits is a change made
    // early, while the running layout still holds: that is where noise would make it flap.
    const adds = result.moves.some((move) => move.action === "add");
    const weights = new Map(hosts.map((host) => [host.name, hostWeight(host)]));
    const outside = worstError(resourceShares(current, weights), demandShares(requests)) > DEFAULT_TOLERANCE;
    if (state.wanted < this.settings.persistPeriods && !adds && !outside && !lostEdges && options.force !== true) {
      return this.record(state, {
        ...decision,
        outcome: "held",
        layout: layoutOf(next.pop),
        timings: { ...timings, totalMs: performance.now() - started },
        reason: `a change wanted in ${state.wanted} of the ${this.settings.persistPeriods} periods in a row it must be before it is made: ${summary}`,
      });
    }
    state.wanted = 0;
    const reason = [options.force === true ? "rebalance asked for" : undefined, lostEdges ? `moves the edges of ${seen.unavailable.join(", ")}, silent too long` : undefined, summary]
      .filter((part) => part !== undefined)
      .join("; ");
    return this.apply(state, { ...decision, pop: next.pop, timings: { ...timings, totalMs: performance.now() - started }, reason });
  }

  /** Records a decision that changes the PoP as `applying`, and queues (or joins) the `up` that applies it. */
  private apply(state: PopState, decision: Pick<PopDecision, "periodStart" | "strategy" | "inputs" | "timings" | "reason"> & { pop: PopSpec }): PopDecision {
    const runner = this.runner;
    if (runner === undefined) {
      throw new Error("the PoP loop has no runner: call runWith before start or decide");
    }
    const { pop, ...rest } = decision;
    return this.store.atomically(() => {
      const recorded = this.record(state, { ...rest, outcome: "applying", layout: layoutOf(pop) });
      runner.submitUp(state.served.stack);
      return recorded;
    });
  }

  private record(state: PopState, decision: Omit<PopDecision, "id" | "decidedAt" | "pop">): PopDecision {
    const recorded = this.store.recordDecision({ ...decision, pop: state.served.name });
    this.options.observer?.decision(state.served.name, recorded.outcome, (recorded.timings.totalMs ?? 0) / 1000);
    return recorded;
  }

  /**
   * The reports the period is decided on: each host's reports that ended in it, or, for a host
   * silent this period, its latest within `silentPeriods` periods (its last state kept); a host
   * silent longer is unavailable, and one that never reported is waiting until that long has
   * passed since the loop began watching.
   */
  /**
   * What the calibration fits: every host's reports of the last CALIBRATION_PERIODS periods, each
   * a sample (a missing period is simply none).
   */
  private samples(state: PopState, periodEnd: number): HostSample[] {
    const { periodMs } = this.settings;
    return this.store.reportsEnding(state.served.name, new Date(periodEnd - CALIBRATION_PERIODS * periodMs), new Date(periodEnd)).map((report) => ({
      host: report.host,
      seconds: (Date.parse(report.periodEnd) - Date.parse(report.periodStart)) / 1000,
      capacityCores: report.cpu.capacityCores,
      usedCores: report.cpu.usedCores,
      linkMbps: report.network.linkMbps,
      txMbps: report.network.txMbps,
      served: report.requests,
    }));
  }

  private hostsSeen(state: PopState, periodEnd: number): { reports: InstanceManagerReport[]; silent: string[]; unavailable: string[]; waiting: string[] } {
    const { periodMs, silentPeriods } = this.settings;
    const recent = this.store.reportsEnding(state.served.name, new Date(periodEnd - (silentPeriods + 1) * periodMs), new Date(periodEnd));
    const reports: InstanceManagerReport[] = [];
    const silent: string[] = [];
    const unavailable: string[] = [];
    const waiting: string[] = [];
    for (const host of state.served.config.hosts.map((candidate) => candidate.name)) {
      const own = recent.filter((report) => report.host === host);
      const inPeriod = own.filter((report) => Date.parse(report.periodEnd) > periodEnd - periodMs);
      if (inPeriod.length > 0) {
        reports.push(...inPeriod);
      } else if (own.length > 0) {
        silent.push(host);
        reports.push(own.at(-1)!);
      } else if (this.store.lastReport(state.served.name, host) === undefined && periodEnd - state.watchingSince < silentPeriods * periodMs) {
        waiting.push(host);
      } else {
        unavailable.push(host);
      }
    }
    return { reports, silent, unavailable, waiting };
  }

  /** The PoP as it runs: the newest applied decision's layout, else its stack file's. */
  private runningSpec(state: PopState): PopSpec {
    const applied = this.store.latestDecision(state.served.name, ["applied"]);
    if (applied === undefined) {
      return state.served.config;
    }
    const { layout, addresses } = applied.layout as { layout: Layout; addresses: Record<string, string> };
    return { ...state.served.config, layout, addresses };
  }

  /** Reports, decisions and the PoP's operations older than the retention; a PoP's stack writes no events (progress() keeps none). */
  private prune(pop: string, periodEnd: number): void {
    const before = new Date(periodEnd - this.settings.retentionMs);
    this.store.pruneReports(before);
    this.store.pruneDecisions(before);
    this.store.pruneOperations(this.states.get(pop)!.served.stack, before);
  }

  private stateOf(pop: string): PopState {
    const state = this.states.get(pop);
    if (state === undefined) {
      throw new NotFoundError(`no PoP ${pop} is served here; GET /v1/pops lists the PoPs of SWITCH_POPS`);
    }
    return state;
  }

  // Reports.

  /** Decides on a report's bytes (the route passes them untouched) and keeps an accepted one. */
  admit(pop: string, body: Uint8Array, headers: ReportHeaders): ReportAdmission {
    const state = this.stateOf(pop);
    const now = this.clock.now();
    const admission = admitReport({
      pop: state.served.config,
      keys: state.served.keys,
      body,
      headers,
      nowSeconds: now / 1000,
      last: (host) => this.store.lastReport(pop, host),
      // A period decided is closed: a report ending in it or before arrives too late to count.
      ...(state.decidedUntil === undefined ? {} : { decidedUntil: state.decidedUntil }),
    });
    if (admission.outcome !== "accepted") {
      this.options.observer?.report(pop, admission.outcome === "duplicate" ? "duplicate" : admission.reason);
      return admission;
    }
    // The store decides between two resends that raced past the check above.
    const kept = this.store.recordReport(pop, admission.report, admission.digest);
    const lag = (now - Date.parse(admission.report.periodEnd)) / 1000;
    if (kept === "conflict") {
      const refusal: ReportRefusal = { outcome: "refused", reason: "conflict", status: 409, detail: `another report of the period from ${admission.report.periodStart} was accepted already; a period is reported once` };
      this.options.observer?.report(pop, "conflict");
      return refusal;
    }
    this.options.observer?.report(pop, kept, kept === "accepted" ? { host: admission.report.host, lagSeconds: lag } : undefined);
    return kept === "accepted" ? admission : { outcome: "duplicate" };
  }

  /** Counts a refusal made before `admit` could see the report (the HTTP layer stopped reading an oversized body). */
  countRefusal(pop: string, reason: RefusalReason): void {
    this.stateOf(pop);
    this.options.observer?.report(pop, reason);
  }

  // What the API shows.

  view(pop: string): PopView {
    const state = this.stateOf(pop);
    const running = this.runningSpec(state);
    const lastDecision = this.store.latestDecision(pop);
    const pending = this.store.unfinishedOperation(state.served.stack, "up");
    return {
      name: pop,
      stack: state.served.stack,
      hosts: state.served.config.hosts.map((host) => host.name),
      layout: running.layout,
      addresses: running.addresses,
      ...(lastDecision === undefined ? {} : { lastDecision }),
      lastReports: Object.fromEntries(state.served.config.hosts.map((host) => [host.name, this.store.lastReport(pop, host.name)?.periodEnd])),
      ...(pending === undefined ? {} : { pendingOperation: pending.id }),
    };
  }

  /** A PoP's decisions newest first, each with what its re-up changed (the `up`'s change record) once it ran. */
  decisions(pop: string, page: { limit: number; before?: number }): { decisions: DecisionView[]; next?: number } {
    this.stateOf(pop);
    const { decisions, next } = this.store.decisions(pop, page);
    const withChanges = decisions.map((decision) => {
      const changes = decision.operationId === undefined || decision.outcome === "applying" ? undefined : this.store.operation(decision.operationId)?.changes;
      return changes === undefined ? decision : { ...decision, changes };
    });
    return next === undefined ? { decisions: withChanges } : { decisions: withChanges, next };
  }

  /** An admin's rebalance: the period so far decided now, with no persistence asked of its change. */
  rebalance(pop: string): PopDecision {
    return this.decide(pop, this.clock.now(), { force: true });
  }

  // The runner's owner of the PoP stacks.

  owns(stack: string): boolean {
    return this.byStack.has(stack);
  }

  /**
   * Binds the `up` to the newest decision waiting; the older ones it overtook are superseded. An
   * `up` with nothing to apply (its decisions were applied by an earlier one) is refused.
   */
  attemptStarted(operation: OperationRecord): true | { refused: string } {
    const state = this.byStack.get(operation.stack)!;
    const waiting = this.store.decisionsWithOutcome(state.served.name, "applying");
    const newest = waiting.at(-1);
    if (newest === undefined) {
      return { refused: "no decision waits to be applied" };
    }
    for (const older of waiting.slice(0, -1)) {
      this.store.setDecisionOutcome(older.id, "superseded", { reason: `decision ${newest.id} came before its up began` });
    }
    this.store.setDecisionOutcome(newest.id, "applying", { operationId: operation.id });
    return true;
  }

  config(operation: OperationRecord): StackConfigMap {
    const state = this.byStack.get(operation.stack)!;
    const decision = this.store.decisionOfOperation(operation.id);
    if (decision === undefined) {
      throw new Error(`the up ${operation.id} of ${operation.stack} has no decision bound to it`);
    }
    const { layout, addresses } = decision.layout as { layout: Layout; addresses: Record<string, string> };
    return stackConfigOf({ ...state.served.config, layout, addresses }, state.served.keys);
  }

  progress(): void {
    // A PoP has no progress stream: the decision and the operation record say what happened.
  }

  upSucceeded(operation: OperationRecord): void {
    const state = this.byStack.get(operation.stack)!;
    const decision = this.store.decisionOfOperation(operation.id);
    if (decision === undefined) {
      return;
    }
    const before = this.runningSpec(state);
    this.store.setDecisionOutcome(decision.id, "applied");
    state.backoff = 0;
    const { layout } = decision.layout as { layout: Layout };
    this.options.observer?.reUp(state.served.name, "succeeded");
    this.options.observer?.edges(state.served.name, edgesPerRole(layout), movedEdges(before.layout, layout));
  }

  upFailed(operation: OperationRecord, reason: string): boolean {
    const state = this.byStack.get(operation.stack)!;
    const decision = this.store.decisionOfOperation(operation.id);
    if (decision !== undefined) {
      this.store.setDecisionOutcome(decision.id, "failed", { reason: `${decision.reason ?? ""}${decision.reason === undefined ? "" : "; "}the up failed: ${reason}` });
    }
    const failures = this.consecutiveFailures(state.served.name);
    state.backoff = Math.min(this.settings.maxBackoffPeriods, 2 ** Math.max(0, failures - 1));
    this.options.observer?.reUp(state.served.name, "failed");
    // The PoP keeps serving from the last good layout; nothing is destroyed.
    return false;
  }

  destroyEnded(): void {
    // The service never destroys a PoP's stack.
  }

  private consecutiveFailures(pop: string): number {
    let failures = 0;
    for (const decision of this.store.decisions(pop, { limit: 50 }).decisions) {
      if (decision.outcome === "failed") {
        failures++;
      } else if (decision.outcome === "applied") {
        break;
      }
    }
    return failures;
  }
}

/** The layout in the PoP's order of hosts and the order of ROLES, hosts without edges left out, as the stack files write it. */
function orderedLayout(running: PopSpec, layout: Layout): Layout {
  const ordered: Layout = {};
  for (const { name } of running.hosts) {
    const roles = ROLES.filter((role) => layout[name]?.includes(role));
    if (roles.length > 0) {
      ordered[name] = roles;
    }
  }
  return ordered;
}

function layoutOf(pop: PopSpec): { layout: Layout; addresses: Record<string, string> } {
  return { layout: pop.layout, addresses: pop.addresses };
}

function describeResult(result: LayoutResult): string {
  const within = result.worstError <= result.tolerance + 1e-9 ? "within" : "not within";
  const volume = result.volume;
  const carried =
    volume === undefined
      ? ""
      : volume.shortfall === 0
        ? `, carrying the demand with ${Math.round(volume.headroom * 100)}% headroom`
        : `, SHORT of capacity: ${(volume.shortfall * 100).toFixed(1)}% of the demand (headroom included) cannot be carried by any layout of these hosts`;
  const gap = result.gap !== undefined && result.gap > 0 ? `, within ${(result.gap * 100).toFixed(2)}% of the fewest edges (the time limit stopped the solver)` : "";
  return `${result.kept ? "the running layout is kept" : `${result.moves.length} change${result.moves.length === 1 ? "" : "s"}`}, ${result.containers} edges, worst share error ${result.worstError.toFixed(3)} (${within} the tolerance)${carried}${gap}${result.note === undefined ? "" : `; ${result.note}`}`;
}

export function edgesPerRole(layout: Layout): Record<Role, number> {
  return Object.fromEntries(ROLES.map((role) => [role, Object.values(layout).filter((roles) => roles.includes(role)).length])) as Record<Role, number>;
}

/** Edges added or removed between two layouts. */
export function movedEdges(from: Layout, to: Layout): number {
  let moved = 0;
  for (const host of new Set([...Object.keys(from), ...Object.keys(to)])) {
    const before = new Set(from[host] ?? []);
    const after = new Set(to[host] ?? []);
    moved += [...before].filter((role) => !after.has(role)).length + [...after].filter((role) => !before.has(role)).length;
  }
  return moved;
}

