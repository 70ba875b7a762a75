import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";

/** Namespace for the product's own objects in every cluster. */
export const SYSTEM_NAMESPACE = "switch-system";
/** The identity conference stacks are meant to deploy with. */
export const DEPLOYER_SERVICE_ACCOUNT = "switch-vaas-deployer";
export const DEPLOYER_CLUSTER_ROLE = "switch-vaas-conference-deployer";
/** Priority of conference pods: above ordinary workloads, below the cluster's own critical pods (2,000,000,000). */
export const CONFERENCE_PRIORITY_CLASS = "switch-vaas-conference";
export const CONFERENCE_PRIORITY = 1_000_000;

/** Marks what this product created, in every cluster. */
export const MANAGED_BY = { "app.kubernetes.io/managed-by": "switch-vaas" };
const MANAGE = ["get", "create", "update", "patch", "delete"];
const MANAGE_AND_WATCH = ["get", "list", "watch", "create", "update", "patch", "delete"];
const WATCH = ["get", "list", "watch"];

/**
 * What a conference stack does in a cluster and nothing more: it owns a namespace and the objects
 * in it, and reads what Pulumi's await logic watches (pods, replica sets, events, endpoints) and
 * the nodes whose external addresses a node-port bridge advertises.
 */
export const CONFERENCE_DEPLOYER_RULES: k8s.types.input.rbac.v1.PolicyRule[] = [
  { apiGroups: [""], resources: ["namespaces", "services"], verbs: MANAGE_AND_WATCH },
  { apiGroups: ["apps"], resources: ["deployments"], verbs: MANAGE_AND_WATCH },
  { apiGroups: [""], resources: ["secrets", "configmaps", "resourcequotas", "limitranges"], verbs: MANAGE },
  { apiGroups: ["networking.k8s.io"], resources: ["networkpolicies"], verbs: MANAGE },
  { apiGroups: [""], resources: ["pods", "events", "endpoints"], verbs: WATCH },
  { apiGroups: ["apps"], resources: ["replicasets"], verbs: WATCH },
  { apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: WATCH },
  { apiGroups: [""], resources: ["nodes"], verbs: ["get", "list"] },
];

export interface ClusterBootstrapArgs {
  /** The cluster's Kubernetes provider; every object here is created through it. */
  provider: k8s.Provider;
}

/**
 * What every cluster needs before it can host conferences: the `switch-system` namespace, the
 * deployer ServiceAccount bound to a ClusterRole with only the verbs conference stacks use, and
 * the PriorityClass conference pods run at.
 */
export class ClusterBootstrap extends pulumi.ComponentResource {
  readonly namespace: k8s.core.v1.Namespace;
  readonly serviceAccount: k8s.core.v1.ServiceAccount;
  readonly clusterRole: k8s.rbac.v1.ClusterRole;
  readonly clusterRoleBinding: k8s.rbac.v1.ClusterRoleBinding;
  readonly priorityClass: k8s.scheduling.v1.PriorityClass;

  constructor(name: string, args: ClusterBootstrapArgs, opts?: pulumi.ComponentResourceOptions) {
    super("switch-vaas:testbed:ClusterBootstrap", name, {}, opts);
    const childOpts = { parent: this, provider: args.provider };

    this.namespace = new k8s.core.v1.Namespace(
      `${name}-system`,
      {
        metadata: {
          name: SYSTEM_NAMESPACE,
          labels: {
            ...MANAGED_BY,
            // Nothing privileged ever runs here.
            "pod-security.kubernetes.io/enforce": "restricted",
          },
        },
      },
      childOpts,
    );

    this.serviceAccount = new k8s.core.v1.ServiceAccount(
      `${name}-deployer`,
      {
        metadata: { name: DEPLOYER_SERVICE_ACCOUNT, namespace: this.namespace.metadata.name, labels: MANAGED_BY },
        // The deployer authenticates with tokens requested for it; no pod mounts one.
        automountServiceAccountToken: false,
      },
      childOpts,
    );

    this.clusterRole = new k8s.rbac.v1.ClusterRole(
      `${name}-deployer`,
      { metadata: { name: DEPLOYER_CLUSTER_ROLE, labels: MANAGED_BY }, rules: CONFERENCE_DEPLOYER_RULES },
      childOpts,
    );

    this.clusterRoleBinding = new k8s.rbac.v1.ClusterRoleBinding(
      `${name}-deployer`,
      {
        metadata: { name: DEPLOYER_CLUSTER_ROLE, labels: MANAGED_BY },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: this.clusterRole.metadata.name },
        subjects: [{ kind: "ServiceAccount", name: this.serviceAccount.metadata.name, namespace: this.namespace.metadata.name }],
      },
      childOpts,
    );

    this.priorityClass = new k8s.scheduling.v1.PriorityClass(
      `${name}-conference`,
      {
        metadata: { name: CONFERENCE_PRIORITY_CLASS, labels: MANAGED_BY },
        value: CONFERENCE_PRIORITY,
        globalDefault: false,
        preemptionPolicy: "PreemptLowerPriority",
        description: "Jitsi Meet conference pods created by switch-vaas.",
      },
      childOpts,
    );

    this.registerOutputs({
      namespace: this.namespace,
      serviceAccount: this.serviceAccount,
      clusterRole: this.clusterRole,
      clusterRoleBinding: this.clusterRoleBinding,
      priorityClass: this.priorityClass,
    });
  }
}
