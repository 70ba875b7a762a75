import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { OperationQueue } from "../engine/queue.ts";
import { CONFERENCE_STATES } from "../../domain/conference-lifecycle.ts";
import type { Store } from "../store/store.ts";
import type { OperationObserver } from "../operations/runner.ts";
import type { OrphanStacks } from "./orphans.ts";
import type { PopLoopObserver } from "./loops/pop-loop.ts";

/** The service's Prometheus metrics, in a registry of its own (never prom-client's global one). */
export function serviceMetrics(
  store: Store,
  queue: OperationQueue,
  orphans: Pick<OrphanStacks, "list">,
): { registry: Registry; observer: OperationObserver; popObserver: PopLoopObserver } {
  const registry = new Registry();
  const operations = new Counter({
    name: "switch_operations_total",
    help: "Stack operations by kind and result.",
    labelNames: ["kind", "result"] as const,
    registers: [registry],
  });
  const durations = new Histogram({
    name: "switch_operation_duration_seconds",
    help: "Stack operation durations, retries included.",
    labelNames: ["kind"] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const unrecorded = new Counter({
    name: "switch_unrecorded_outcomes_total",
    help: "Operations whose start or outcome the store refused after retries (locked, disk full), left for the reconciler.",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  new Gauge({
    name: "switch_store_write_failing",
    help: "1 while the store's last write failed (locked, disk full, its file replaced), else 0.",
    registers: [registry],
    collect() {
      this.set(store.lastWriteFailure() === undefined ? 0 : 1);
    },
  });
  new Gauge({
    name: "switch_orphan_stacks",
    help: "Conference stacks the backend holds and no record owns, as of the last scan (GET /v1/orphan-stacks).",
    registers: [registry],
    collect() {
      this.set(orphans.list().length);
    },
  });
  new Gauge({
    name: "switch_queue_depth",
    help: "Operations waiting for their stack's turn or a free slot.",
    registers: [registry],
    collect() {
      this.set(queue.depth());
    },
  });
  new Gauge({
    name: "switch_operations_running",
    help: "Operations running now.",
    registers: [registry],
    collect() {
      this.set(queue.running());
    },
  });
  new Gauge({
    name: "switch_conferences",
    help: "Conferences by state.",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const counts = store.countByState();
      for (const state of CONFERENCE_STATES) {
        this.set({ state }, counts[state]);
      }
    },
  });
  const reports = new Counter({
    name: "switch_pop_reports_total",
    help: "Instance managers' reports by PoP and outcome: accepted, duplicate, or the reason of a refusal.",
    labelNames: ["pop", "outcome"] as const,
    registers: [registry],
  });
  const reportLag = new Gauge({
    name: "switch_pop_report_lag_seconds",
    help: "Per host, from the end of its latest accepted report's period to the report's acceptance.",
    labelNames: ["pop", "host"] as const,
    registers: [registry],
  });
  const decisions = new Histogram({
    name: "switch_pop_decision_seconds",
    help: "The PoP loop's decisions by outcome, and the time each took (reports to next config).",
    labelNames: ["pop", "outcome"] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });
  const reUps = new Counter({
    name: "switch_pop_reups_total",
    help: "Re-ups of PoP stacks by result.",
    labelNames: ["pop", "result"] as const,
    registers: [registry],
  });
  const edges = new Gauge({
    name: "switch_pop_edges",
    help: "Edge containers per role in a PoP's last good layout.",
    labelNames: ["pop", "role"] as const,
    registers: [registry],
  });
  const moved = new Counter({
    name: "switch_pop_edges_moved_total",
    help: "Edge containers added or removed by re-ups.",
    labelNames: ["pop"] as const,
    registers: [registry],
  });
  return {
    registry,
    popObserver: {
      report(pop, outcome, accepted) {
        reports.inc({ pop, outcome });
        if (accepted !== undefined) {
          reportLag.set({ pop, host: accepted.host }, Math.max(0, accepted.lagSeconds));
        }
      },
      decision(pop, outcome, seconds) {
        decisions.observe({ pop, outcome }, seconds);
      },
      reUp(pop, result) {
        reUps.inc({ pop, result });
      },
      edges(pop, running, count) {
        for (const [role, value] of Object.entries(running)) {
          edges.set({ pop, role }, value);
        }
        moved.inc({ pop }, count);
      },
    },
    observer: {
      operation(kind, result, seconds) {
        operations.inc({ kind, result });
        durations.observe({ kind }, seconds);
      },
      unrecorded(kind) {
        unrecorded.inc({ kind });
      },
    },
  };
}
