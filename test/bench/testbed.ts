/**
 * Time to evaluate the testbed program under Pulumi's mock runtime (the offline engine), for the
 * paper's 7 sites and for 70, against a baseline in the same run: a program that registers one
 * component. Prints medians over repeated runs after warm-up.
 */
import * as pulumi from "@pulumi/pulumi";
import { evaluateOffline } from "../../automation/engine/offline.ts";
import { kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";
import { DEFAULT_SITES, type SiteInput } from "../../domain/contracts/testbed.ts";
import { runStack } from "../support/pulumi.ts";
import { RUNS, WARMUP, median, ratio } from "./measure.ts";

function sitesTimes(copies: number): { sites: SiteInput[]; kubeconfigs: Record<string, string> } {
  const sites = Array.from({ length: copies }, (_, copy) => DEFAULT_SITES.map((site) => ({ ...site, name: `${site.name}-${copy}` }))).flat();
  const kubeconfigs = Object.fromEntries(
    sites.filter((site) => site.provider === "kubeconfig").map((site) => [site.name, kubeconfigWithoutCredentials("https://192.0.2.1:6443", "test")]),
  );
  return { sites, kubeconfigs };
}

async function evaluateTestbed(copies: number): Promise<unknown> {
  const { sites, kubeconfigs } = sitesTimes(copies);
  return runStack("testbed", { config: { sites, kubeconfigs }, secretKeys: ["kubeconfigs"], preview: true });
}

console.log(`testbed program under mocks (${RUNS} runs after ${WARMUP} warm-up, one process):`);
const baseline = await median("baseline: one component, nothing else", () =>
  evaluateOffline(async () => ({ component: new pulumi.ComponentResource("bench:index:Empty", "empty") })),
);
const seven = await median("testbed, 7 sites (72 resources)", () => evaluateTestbed(1));
const seventy = await median("testbed, 70 sites (720 resources)", () => evaluateTestbed(10));
ratio("7 sites / baseline", seven / baseline);
ratio("70 sites / 7 sites", seventy / seven, "(10x is linear in sites)");
console.log(`  per site at 70 sites: ${(seventy / 70).toFixed(2)} ms`);
