import { type Registration, isSecretEnvelope } from "../../automation/engine/offline.ts";

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

/** True for registrations of Kubernetes objects (not providers, not components). */
export function isKubernetesObject(registration: Registration): boolean {
  return registration.custom && registration.type.startsWith("kubernetes:");
}

/**
 * Validates a registered Kubernetes object against the Kubernetes OpenAPI schema of its kind
 * (kubernetes-models), throwing with the schema's complaint if it does not conform: required
 * fields, types, formats. The schemas admit unknown fields; those are caught earlier, by tsc,
 * because every object literal is checked against @pulumi/kubernetes's input types.
 * "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole" → kubernetes-models/rbac.authorization.k8s.io/v1.
 */
export async function validateKubernetesObject(registration: Registration): Promise<void> {
  const [, groupVersion = "", kind = ""] = registration.type.split(":");
  const [group, version] = groupVersion.split("/");
  const modulePath = group === "core" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  const models = (await import(modulePath)) as Record<string, ModelClass | undefined>;
  const ModelOfKind = models[kind];
  if (ModelOfKind === undefined) {
    throw new Error(`kubernetes-models has no ${kind} in ${modulePath}`);
  }
  try {
    new ModelOfKind(withoutSecretEnvelopes(registration.inputs)).validate();
  } catch (error) {
    throw new Error(`${registration.type} "${registration.name}" does not match the Kubernetes schema: ${(error as Error).message}`);
  }
}

/** The object as the cluster receives it: Pulumi's secret envelopes replaced by their values. */
function withoutSecretEnvelopes(value: unknown): unknown {
  if (isSecretEnvelope(value)) {
    return withoutSecretEnvelopes(value.value);
  }
  if (Array.isArray(value)) {
    return value.map(withoutSecretEnvelopes);
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, withoutSecretEnvelopes(inner)]));
  }
  return value;
}
