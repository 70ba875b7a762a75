import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

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
