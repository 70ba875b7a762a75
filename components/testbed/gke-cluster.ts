import * as gcp from "@pulumi/gcp";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { stringify } from "yaml";

export interface GkeClusterArgs {
  /** A zone (zonal cluster, one control plane) or a region (regional cluster, nodes in each of its zones). */
  location: string;
  /** Nodes in the managed node pool; for a regional cluster this many per zone. */
  nodeCount: number;
  /** GCE machine type of the nodes, e.g. "n1-standard-1". */
  machineType: string;
  /** Boot disk size of each node, in GB. */
  diskSizeGb: number;
  /** Boot disk type of each node: "pd-standard", "pd-balanced" or "pd-ssd". */
  diskType: string;
  /** Send container logs to Cloud Logging. The paper switched it off: log shipping slowed the bridge. */
  logging: boolean;
  /** Send metrics to Cloud Monitoring. */
  monitoring: boolean;
  /** GKE release channel: RAPID, REGULAR, STABLE or EXTENDED. */
  releaseChannel: string;
  /** GKE refuses to delete a protected cluster; there is deliberately no default, every caller decides. */
  deletionProtection: boolean;
  /** VPC network the cluster and its firewall rule live in. */
  network: string;
  /** UDP ports or ranges ("10000", "30000-32767") on which nodes accept conference media. */
  mediaUdpPorts: string[];
  /** Source CIDR ranges allowed to send media to the nodes. */
  mediaSourceRanges: string[];
  /** Labels put on the cluster and its nodes. Defaults to none. */
  labels?: Record<string, string>;
}

/** Logging and monitoring services GKE accepts when they are on: https://cloud.google.com/kubernetes-engine/docs/concepts/about-logs */
const LOGGING_ON = "logging.googleapis.com/kubernetes";
const MONITORING_ON = "monitoring.googleapis.com/kubernetes";
const OFF = "none";
/** Lets nodes use the project's APIs as governed by IAM; GKE's recommended scope. */
const NODE_OAUTH_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"];

/**
 * A GKE cluster for conferences: the default node pool replaced by a managed one, VPC-native
 * networking, a firewall rule that lets media reach the nodes, and a Kubernetes provider built from
 * the standard exec kubeconfig (gke-gcloud-auth-plugin).
 */
export class GkeCluster extends pulumi.ComponentResource {
  /** The GKE cluster. */
  readonly cluster: gcp.container.Cluster;
  /** The managed node pool the conferences run on. */
  readonly nodePool: gcp.container.NodePool;
  /** The ingress rule for media. */
  readonly mediaFirewall: gcp.compute.Firewall;
  /** A kubeconfig for the cluster using gke-gcloud-auth-plugin; secret. */
  readonly kubeconfig: pulumi.Output<string>;
  /** A Kubernetes provider for the cluster, usable once the node pool exists. */
  readonly provider: k8s.Provider;

  constructor(name: string, args: GkeClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("switch-vaas:testbed:GkeCluster", name, {}, opts);

    const labels = { ...(args.labels ?? {}), "managed-by": "switch-vaas" };
    // Firewall rules select nodes by network tag; one tag per cluster keeps rules from leaking across clusters.
    const mediaTag = `${name}-media`;

    this.cluster = new gcp.container.Cluster(
      name,
      {
        location: args.location,
        network: args.network,
        // A cluster cannot be created without a node pool; GKE's default one is dropped straight
        // away in favour of the managed pool below, which can be changed without replacing the cluster.
        removeDefaultNodePool: true,
        initialNodeCount: 1,
        networkingMode: "VPC_NATIVE",
        // An empty policy lets GKE choose the pod and service ranges of a VPC-native cluster.
        ipAllocationPolicy: {},
        // GKE Dataplane V2 enforces NetworkPolicy, which isolates conference namespaces.
        datapathProvider: "ADVANCED_DATAPATH",
        loggingService: args.logging ? LOGGING_ON : OFF,
        monitoringService: args.monitoring ? MONITORING_ON : OFF,
        releaseChannel: { channel: args.releaseChannel },
        deletionProtection: args.deletionProtection,
        resourceLabels: labels,
      },
      { parent: this },
    );

    this.nodePool = new gcp.container.NodePool(
      name,
      {
        cluster: this.cluster.name,
        location: args.location,
        nodeCount: args.nodeCount,
        management: { autoRepair: true, autoUpgrade: true },
        nodeConfig: {
          machineType: args.machineType,
          diskSizeGb: args.diskSizeGb,
          diskType: args.diskType,
          oauthScopes: NODE_OAUTH_SCOPES,
          tags: [mediaTag],
          labels,
        },
      },
      { parent: this },
    );

    this.mediaFirewall = new gcp.compute.Firewall(
      `${name}-media`,
      {
        network: args.network,
        description: `Conference media (UDP) to the nodes of ${name}`,
        direction: "INGRESS",
        allows: [{ protocol: "udp", ports: args.mediaUdpPorts }],
        sourceRanges: args.mediaSourceRanges,
        targetTags: [mediaTag],
      },
      { parent: this },
    );

    this.kubeconfig = pulumi.secret(
      pulumi
        .all([this.cluster.name, this.cluster.endpoint, this.cluster.masterAuth])
        .apply(([clusterName, endpoint, masterAuth]) =>
          gkeKubeconfig(clusterName, endpoint, masterAuth.clusterCaCertificate ?? ""),
        ),
    );

    this.provider = new k8s.Provider(
      name,
      {
        kubeconfig: this.kubeconfig,
        // Only a new cluster (a new id) replaces the provider and what it manages; a rotated
        // certificate or a new endpoint in the kubeconfig is an update.
        clusterIdentifier: this.cluster.id,
      },
      { parent: this, dependsOn: [this.nodePool] },
    );

    this.registerOutputs({
      cluster: this.cluster,
      nodePool: this.nodePool,
      mediaFirewall: this.mediaFirewall,
      kubeconfig: this.kubeconfig,
      provider: this.provider,
    });
  }
}

/**
 * The kubeconfig GKE documents for kubectl ≥ 1.26: credentials come from gke-gcloud-auth-plugin,
 * which must be installed wherever Pulumi or the service talks to the cluster.
 * https://cloud.google.com/blog/products/containers-kubernetes/kubectl-auth-changes-in-gke
 */
export function gkeKubeconfig(clusterName: string, endpoint: string, caCertificate: string): string {
  const context = `gke-${clusterName}`;
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: context, cluster: { server: `https://${endpoint}`, "certificate-authority-data": caCertificate } }],
    users: [
      {
        name: context,
        user: {
          exec: {
            apiVersion: "client.authentication.k8s.io/v1beta1",
            command: "gke-gcloud-auth-plugin",
            installHint: "Install gke-gcloud-auth-plugin: gcloud components install gke-gcloud-auth-plugin",
            provideClusterInfo: true,
          },
        },
      },
    ],
    contexts: [{ name: context, context: { cluster: context, user: context } }],
    "current-context": context,
  });
}
