import type * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { InvalidArgumentsError } from "../validation.ts";
import { ClusterBootstrap } from "./cluster-bootstrap.ts";
import { ExistingCluster, apiServerHost } from "./existing-cluster.ts";
import { GkeCluster } from "./gke-cluster.ts";
import { type Exposure, type Site, type SiteInput, parseSites } from "./sites.ts";

/** JVB's single media port (../shared/reference/jitsi.md §1.1); behind a load balancer every conference uses it. */
export const JVB_MEDIA_PORT = 10000;
/** Kubernetes' default --service-node-port-range, from which node-port conferences get their media port. */
export const NODE_PORT_RANGE = "30000-32767";

/** UDP ports a cluster's nodes must accept media on, by exposure mode. */
export function mediaUdpPorts(exposure: Exposure): string[] {
  return exposure === "loadBalancer" ? [String(JVB_MEDIA_PORT)] : [NODE_PORT_RANGE];
}

export interface TestbedArgs {
  /** The clusters of the testbed; see SiteInput. Validated before anything is created. */
  sites: SiteInput[];
  /** Kubeconfig per kubeconfig site, by site name. Every kubeconfig site needs one. Defaults to none. */
  kubeconfigs?: Record<string, pulumi.Input<string>>;
}

/** One cluster of the testbed as other stacks see it (the testbed stack's `clusters` output). */
export interface ClusterInfo {
  provider: Site["provider"];
  /** GCP region (gke sites). */
  region?: string;
  /** GCP zone (zonal gke sites). */
  zone?: string;
  location: { lat: number; lon: number; city: string; country: string };
  /** Secret. */
  kubeconfig: pulumi.Output<string>;
  exposure: Exposure;
  /**
   * nodePort clusters: where their node ports are reachable from the internet. The site's
   * publicAddress, else (kubeconfig sites) the host of the kubeconfig's API server.
   */
  publicAddress?: pulumi.Output<string>;
  capacity: { nodes: number; vcpuPerNode: number; memoryGiBPerNode: number };
}

/**
 * Validates testbed arguments: the site list, and a kubeconfig for exactly the kubeconfig sites.
 * Messages name keys under `keyPrefix`; a stack passes "switch-vaas:" so they name its config keys.
 */
export function parseTestbedArgs(args: TestbedArgs, keyPrefix: string): Site[] {
  const sites = parseSites(args.sites, `${keyPrefix}sites`);
  const given = new Set(Object.keys(args.kubeconfigs ?? {}));
  const problems: string[] = [];
  for (const site of sites) {
    if (site.provider === "kubeconfig" && !given.has(site.name)) {
      problems.push(
        `${keyPrefix}kubeconfigs.${site.name} is missing; the kubeconfig site "${site.name}" needs its cluster's kubeconfig` +
          (keyPrefix === "" ? "" : `: pulumi config set --secret --path 'kubeconfigs.${site.name}' "$(cat kubeconfig.yaml)"`),
      );
    }
  }
  const kubeconfigSites = new Set(sites.filter((site) => site.provider === "kubeconfig").map((site) => site.name));
  for (const name of given) {
    if (!kubeconfigSites.has(name)) {
      problems.push(`${keyPrefix}kubeconfigs.${name} names no kubeconfig site; remove it or add a kubeconfig site called "${name}"`);
    }
  }
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  return sites;
}

/**
 * The paper's testbed: one cluster per site — GKE clusters created here, existing clusters reached
 * by kubeconfig — each with its own Kubernetes provider and bootstrap.
 */
export class Testbed extends pulumi.ComponentResource {
  /** Every cluster by site name, in the shape of the testbed stack's `clusters` output. */
  readonly clusters: Record<string, ClusterInfo>;
  /** Each cluster's Kubernetes provider, by site name. */
  readonly providers: Record<string, k8s.Provider>;

  constructor(name: string, args: TestbedArgs, opts?: pulumi.ComponentResourceOptions) {
    const sites = parseTestbedArgs(args, "");
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
        capacity: { ...site.capacity },
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
  return pulumi.unsecret(kubeconfig.apply((text) => apiServerHost(text, context)));
}
