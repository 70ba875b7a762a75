import * as pulumi from "@pulumi/pulumi";
import { qualifiedKey } from "../domain/contracts/project.ts";
import { DEFAULT_SITES, TESTBED_CONFIG, type TestbedClusters, parseKubeconfigs, parseTestbed } from "../domain/contracts/testbed.ts";
import { apiServerHost } from "../components/testbed/kubeconfig.ts";
import { type ClusterOutput, Testbed } from "../components/testbed/testbed.ts";
import { readConfig } from "./config.ts";

/** The testbed stack: config `switch-vaas:sites` (default: the paper's seven) and `switch-vaas:kubeconfigs`. */
export default async function testbed(): Promise<{ clusters: Record<keyof TestbedClusters, ClusterOutput> }> {
  const kubeconfigs = parseKubeconfigs(readConfig(TESTBED_CONFIG.kubeconfigs) ?? {}, qualifiedKey(TESTBED_CONFIG.kubeconfigs));
  // Validated here as well as in the component so that messages name the config keys.
  const sites = parseTestbed({ sites: readConfig(TESTBED_CONFIG.sites) ?? DEFAULT_SITES, kubeconfigNames: Object.keys(kubeconfigs) }, qualifiedKey(""));
  // Read plainly to validate, so that a broken kubeconfig is reported before anything is created.
  for (const site of sites) {
    if (site.provider === "kubeconfig") {
      apiServerHost(kubeconfigs[site.name]!, site.context, qualifiedKey(`${TESTBED_CONFIG.kubeconfigs}.${site.name}`));
    }
  }
  const bed = new Testbed("testbed", {
    sites,
    kubeconfigs: Object.fromEntries(Object.entries(kubeconfigs).map(([site, kubeconfig]) => [site, pulumi.secret(kubeconfig)])),
  });
  return { clusters: bed.clusters };
}
