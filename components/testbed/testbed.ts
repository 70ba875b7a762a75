import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { type Site, type SiteInput, TESTBED_CONFIG, type TestbedCluster, parseTestbed, siteCapacity } from "../../domain/contracts/testbed.ts";
import { mediaUdpPorts } from "../../domain/jitsi.ts";
import { ClusterBootstrap } from "./cluster-bootstrap.ts";
import { ExistingCluster } from "./existing-cluster.ts";
import { apiServerHost } from "./kubeconfig.ts";
import { GkeCluster } from "./gke-cluster.ts";

export interface TestbedArgs {
  /** The clusters of the testbed; see SiteInput. Validated before anything is created. */
  sites: readonly SiteInput[];
  /** Kubeconfig per kubeconfig site, by site name. Every kubeconfig site needs one. Defaults to none. */
  kubeconfigs?: Record<string, pulumi.Input<string>>;
}

/**
 * One cluster of the testbed as the component builds it: the contract's shape (TestbedCluster),
 * with the values only a deployment knows (and the secret kubeconfig) as Outputs.
 */
export type ClusterOutput = Omit<TestbedCluster, "kubeconfig" | "publicAddress"> & {
  kubeconfig: pulumi.Output<string>;
  publicAddress?: pulumi.Output<string>;
};

/**
 * The paper's testbed: one cluster per site — GKE clusters created here, existing clusters reached
 * by kubeconfig — each with its own Kubernetes provider and bootstrap.
 */
export class Testbed extends pulumi.ComponentResource {
  /** Every cluster by site name, in the shape of the testbed stack's `clusters` output. */
  readonly clusters: Record<string, ClusterOutput>;
  /** Each cluster's Kubernetes provider, by site name. */
  readonly providers: Record<string, k8s.Provider>;

  constructor(name: string, args: TestbedArgs, opts?: pulumi.ComponentResourceOptions) {
    const sites = parseTestbed({ sites: args.sites, kubeconfigNames: Object.keys(args.kubeconfigs ?? {}) }, "");
    super("switch-vaas:testbed:Testbed", name, {}, opts);

    this.clusters = {};
    this.providers = {};
    for (const site of sites) {
      const cluster =
        site.provider === "gke"
          ? new GkeCluster(
              site.name,
              {
                location: site.zone ?? site.region,
                nodeCount: site.nodes,
                machineType: site.machineType,
                diskSizeGb: site.diskSizeGb,
                diskType: site.diskType,
                logging: site.logging,
                monitoring: site.monitoring,
                releaseChannel: site.releaseChannel,
                deletionProtection: site.deletionProtection,
                network: site.network,
                mediaUdpPorts: mediaUdpPorts(site.exposure),
                mediaSourceRanges: site.mediaSourceRanges,
                labels: { site: site.name },
              },
              { parent: this },
            )
          : new ExistingCluster(
              site.name,
              // parseTestbedArgs guarantees the entry.
              { kubeconfig: args.kubeconfigs?.[site.name] ?? "", context: site.context },
              { parent: this },
            );
      new ClusterBootstrap(site.name, { provider: cluster.provider }, { parent: this });

      this.providers[site.name] = cluster.provider;
      this.clusters[site.name] = {
        provider: site.provider,
        ...(site.provider === "gke" ? { region: site.region, ...(site.zone === undefined ? {} : { zone: site.zone }) } : {}),
        location: { ...site.location },
        kubeconfig: cluster.kubeconfig,
        exposure: site.exposure,
        ...(site.exposure === "nodePort" ? { publicAddress: publicAddressOf(site, cluster.kubeconfig) } : {}),
        capacity: siteCapacity(site),
      };
    }

    this.registerOutputs({ clusters: this.clusters, providers: this.providers });
  }
}

function publicAddressOf(site: Site, kubeconfig: pulumi.Output<string>): pulumi.Output<string> {
  if (site.publicAddress !== undefined) {
    return pulumi.output(site.publicAddress);
  }
  const context = site.provider === "kubeconfig" ? site.context : undefined;
  // The API server's host is not a secret, though it is read from one.
  return pulumi.unsecret(kubeconfig.apply((text) => apiServerHost(text, context, `${TESTBED_CONFIG.kubeconfigs}.${site.name}`)));
}
