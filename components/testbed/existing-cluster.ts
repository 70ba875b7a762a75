import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parse, stringify } from "yaml";

export interface ExistingClusterArgs {
  /** The cluster's kubeconfig (file contents). Kept secret wherever it goes. */
  kubeconfig: pulumi.Input<string>;
  /** Context of the kubeconfig to use. Defaults to the kubeconfig's current-context. */
  context?: string;
}

/**
 * A Kubernetes cluster that exists already and is reached by kubeconfig, such as the paper's
 * Arnes (Ljubljana) and flexiOps (Edinburgh) clusters or a kind cluster on a laptop. Nothing is
 * created in the cluster here; this component owns the cluster's Kubernetes provider.
 */
export class ExistingCluster extends pulumi.ComponentResource {
  /** The kubeconfig, marked secret. */
  readonly kubeconfig: pulumi.Output<string>;
  /** A Kubernetes provider for the cluster. */
  readonly provider: k8s.Provider;

  constructor(name: string, args: ExistingClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("switch-vaas:testbed:ExistingCluster", name, {}, opts);

    this.kubeconfig = pulumi.secret(args.kubeconfig);
    this.provider = new k8s.Provider(
      name,
      {
        kubeconfig: this.kubeconfig,
        context: args.context,
        // The site name identifies the cluster: refreshed credentials in the kubeconfig update the
        // provider instead of replacing it and everything it manages.
        clusterIdentifier: name,
      },
      { parent: this },
    );

    this.registerOutputs({ kubeconfig: this.kubeconfig, provider: this.provider });
  }
}

interface Kubeconfig {
  "current-context"?: string;
  contexts?: { name: string; context?: { cluster?: string } }[];
  clusters?: { name: string; cluster?: { server?: string } }[];
}

/**
 * The host of the API server a kubeconfig points at (for `context`, or its current context).
 * On clusters without a cloud load balancer it is usually a node's public address.
 */
export function apiServerHost(kubeconfig: string, context?: string): string {
  const config = parse(kubeconfig) as Kubeconfig | null;
  const contextName = context ?? config?.["current-context"];
  const clusterName = config?.contexts?.find((entry) => entry.name === contextName)?.context?.cluster;
  const server = config?.clusters?.find((entry) => entry.name === clusterName)?.cluster?.server;
  if (server === undefined) {
    throw new Error(`the kubeconfig has no server for context "${contextName ?? "(none)"}"`);
  }
  return new URL(server).hostname.replace(/^\[|\]$/g, "");
}

/**
 * A kubeconfig that names a cluster's API server and carries no credentials: it can never
 * authenticate, so it only stands in where nothing is contacted (offline previews, tests).
 */
export function kubeconfigWithoutCredentials(server: string, name: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster: { server } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    users: [{ name, user: {} }],
    "current-context": name,
  });
}
