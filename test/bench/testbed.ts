/**
 * Time to evaluate the testbed program under Pulumi's mock runtime (the offline engine), for the
 * paper's 7 sites and for 70, against a baseline in the same run: a program that registers one
 * component. Prints medians over repeated runs after warm-up.
 */
import * as pulumi from "@pulumi/pulumi";
import { performance } from "node:perf_hooks";
import { evaluateOffline } from "../../automation/engine/offline.ts";
import type { SiteInput } from "../../components/testbed/sites.ts";
import testbed, { DEFAULT_SITES } from "../../stacks/testbed.ts";
import { kubeconfigFor } from "../support/kubeconfig.ts";

const WARMUP = 5;
const RUNS = 30;

function sitesTimes(copies: number): { sites: SiteInput[]; kubeconfigs: Record<string, string> } {
  const sites = Array.from({ length: copies }, (_, copy) => DEFAULT_SITES.map((site) => ({ ...site, name: `${site.name}-${copy}` }))).flat();
  const kubeconfigs = Object.fromEntries(
    sites.filter((site) => site.provider === "kubeconfig").map((site) => [site.name, kubeconfigFor("https://192.0.2.1:6443")]),
  );
  return { sites, kubeconfigs };
}

async function median(label: string, evaluate: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP; i++) {
    await evaluate();
  }
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    await evaluate();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const middle = times[Math.floor(RUNS / 2)]!;
  console.log(`  ${label.padEnd(44)} median ${middle.toFixed(2).padStart(8)} ms   p90 ${times[Math.floor(RUNS * 0.9)]!.toFixed(2).padStart(8)} ms`);
  return middle;
}

async function evaluateTestbed(copies: number): Promise<unknown> {
  const { sites, kubeconfigs } = sitesTimes(copies);
  return evaluateOffline(testbed, {
    config: { "switch-vaas:sites": JSON.stringify(sites), "switch-vaas:kubeconfigs": JSON.stringify(kubeconfigs) },
    secretKeys: ["switch-vaas:kubeconfigs"],
  });
}

console.log(`testbed program under mocks (${RUNS} runs after ${WARMUP} warm-up, one process):`);
const baseline = await median("baseline: one component, nothing else", () =>
  evaluateOffline(async () => ({ component: new pulumi.ComponentResource("bench:index:Empty", "empty") })),
);
const seven = await median("testbed, 7 sites (72 resources)", () => evaluateTestbed(1));
const seventy = await median("testbed, 70 sites (720 resources)", () => evaluateTestbed(10));
console.log(`  7 sites / baseline   ${(seven / baseline).toFixed(1)}x`);
console.log(`  70 sites / 7 sites   ${(seventy / seven).toFixed(1)}x  (10x would be linear in sites)`);
console.log(`  per site at 70       ${(seventy / 70).toFixed(2)} ms`);
