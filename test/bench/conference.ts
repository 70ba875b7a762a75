/**
 * Time to evaluate one conference program under Pulumi's mock runtime, and the per-program cost
 * over 100 conference programs evaluated one after another in one process (as the offline engine
 * and the service do), against a baseline in the same run: a program that registers one component.
 * Also the heap before and after the 100, to show that evaluations do not accumulate.
 */
import * as pulumi from "@pulumi/pulumi";
import { performance } from "node:perf_hooks";
import { evaluateOffline } from "../../automation/engine/offline.ts";
import { conferenceMocks, nodePortAllocator, runConference } from "../support/conference.ts";
import { RUNS, WARMUP, median, ratio } from "./measure.ts";

const SERIES = 100;
const conference = (id: string, cluster: string) => ({ id, cluster, expectedParticipants: 20, lastN: 5, simulcast: true, resources: { cpu: "2", memory: "3Gi" } });
const collectGarbage = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

console.log(`conference program under mocks (${RUNS} runs after ${WARMUP} warm-up, one process):`);
const baseline = await median("baseline: one component, nothing else", () =>
  evaluateOffline(async () => ({ component: new pulumi.ComponentResource("bench:index:Empty", "empty") })),
);
const registered = (await runConference(conference("bench", "gcp-europe-west1"))).registrations.length;
const loadBalancer = await median(`one conference, load balancer (${registered} resources)`, () => runConference(conference("bench", "gcp-europe-west1")));
const nodePort = await median(`one conference, node ports (${registered} resources)`, () => runConference(conference("bench", "arnes-ljubljana")));
ratio("load balancer / baseline", loadBalancer / baseline);
ratio("node ports / baseline", nodePort / baseline);

collectGarbage();
const heapBefore = process.memoryUsage().heapUsed;
const cluster = nodePortAllocator();
const times: number[] = [];
const seriesStart = performance.now();
for (let i = 0; i < SERIES; i++) {
  const start = performance.now();
  await runConference(conference(`conf-${i}`, i % 2 === 0 ? "gcp-europe-west1" : "arnes-ljubljana"), { mocks: conferenceMocks(cluster) });
  times.push(performance.now() - start);
}
const total = performance.now() - seriesStart;
collectGarbage();
const heapAfter = process.memoryUsage().heapUsed;
const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
console.log(`\n${SERIES} conference programs one after another:`);
console.log(`  total ${total.toFixed(0)} ms, per program ${(total / SERIES).toFixed(2)} ms`);
console.log(`  first 10 mean ${mean(times.slice(0, 10)).toFixed(2)} ms, last 10 mean ${mean(times.slice(-10)).toFixed(2)} ms`);
ratio("per program / one conference (median above)", total / SERIES / ((loadBalancer + nodePort) / 2));
console.log(
  `  heap ${(heapBefore / 2 ** 20).toFixed(1)} MiB before, ${(heapAfter / 2 ** 20).toFixed(1)} MiB after (${((heapAfter - heapBefore) / SERIES / 1024).toFixed(1)} KiB per program retained)${
    (globalThis as { gc?: unknown }).gc === undefined ? " [run with --expose-gc for exact figures]" : ""
  }`,
);
