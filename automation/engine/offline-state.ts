import { join } from "node:path";
import { PROJECT } from "../../domain/contracts/project.ts";
import { type ChangeAction, reportsChange } from "./engine.ts";

/**
 * Where the offline engine keeps a stack's state: a JSON file named after the stack's short name
 * (a StackReference may name "organization/switch-vaas/<stack>"). A module of its own, shared by
 * the engine and its workers, so that the engine's process never loads Pulumi: only the workers
 * evaluate programs.
 */
export function stateFile(stateDir: string, stack: string): string {
  return join(stateDir, `${stack.split("/").at(-1)!}.json`);
}

/** A resource as the offline state records it: its inputs with secrets masked. */
export interface RecordedResource {
  type: string;
  name: string;
  /** False for a component. Undefined in state written before it was recorded: see {@link isCustom}. */
  custom?: boolean;
  inputs: unknown;
  /**
   * Each secret input's keyed digest (HMAC-SHA256 under the state directory's key), by its path
   * in `inputs` (segments joined by "."): a changed secret is told from an unchanged one without
   * the state keeping either. Undefined in state written before digests were recorded.
   */
  secretDigests?: Record<string, string>;
}

/** What an operation did to one resource (EngineEvent "change" without its `type`). */
export interface ResourceChange {
  resource: string;
  resourceType: string;
  action: ChangeAction;
}

/** A path into a resource's inputs: property names, and array indices as numbers. */
export type Path = readonly (string | number)[];

/**
 * Which changed inputs make the provider replace a resource rather than update it in place, by
 * type token; `"every input"` where the provider updates nothing in place. A changed input at or
 * under one of these paths (or above it: a whole `spec` set anew) is a replacement; any other
 * change is an update. Types not listed here are updated — the honest answer where the provider's
 * rules are not written down here (the GKE types, for one: their upstream has many ForceNew
 * fields, which this table does not repeat).
 *
 * Docker: the fields pulumi-docker bridges as ForceNew from kreuzwerker/terraform-provider-docker
 * (internal/provider/resource_docker_container.go, resource_docker_image.go and
 * resource_docker_network.go: every `ForceNew: true` at the top of a schema), under the Pulumi
 * SDK's names. A container updates in place only its restart policy, its resources (memory,
 * CPU shares and set, quotas), its health check and its lifecycle flags (rm, start, wait, logs,
 * must_run…); a network has no update at all.
 *
 * Kubernetes: pulumi-kubernetes provider/pkg/provider/diff.go forceNewProperties — .metadata.name
 * and .metadata.namespace for every kind, then per kind: a Service's .spec.clusterIP, a
 * Deployment's .spec.selector, a Secret's .type, .data and .stringData and a ConfigMap's .data and
 * .binaryData (both unless the provider is configured mutable, which ours are not), a
 * ResourceQuota's .spec.scopes, a (Cluster)RoleBinding's .roleRef.
 */
const REPLACED_BY: Record<string, readonly string[] | "every input"> = {
  "docker:index/container:Container": [
    "name",
    "image",
    "hostname",
    "domainname",
    "command",
    "entrypoints",
    "user",
    "dns",
    "dnsOpts",
    "dnsSearches",
    "publishAllPorts",
    "workingDir",
    "capabilities",
    "securityOpts",
    "runtime",
    "platform",
    "stopSignal",
    "stopTimeout",
    "mounts",
    "volumes",
    "ports",
    "hosts",
    "ulimits",
    "envs",
    "privileged",
    "devices",
    "deviceRequests",
    "labels",
    "shmSize",
    "logDriver",
    "logOpts",
    "networkMode",
    "networksAdvanced",
    "pidMode",
    "usernsMode",
    "uploads",
    "sysctls",
    "ipcMode",
    "groupAdds",
    "tty",
    "stdinOpen",
    "storageOpts",
    "gpus",
    "cpus",
    "cgroupnsMode",
    "cgroupParent",
    "readOnly",
  ],
  "docker:index/network:Network": "every input",
  "docker:index/remoteImage:RemoteImage": ["name", "pullTriggers", "triggers", "platform"],
  "kubernetes:core/v1:Service": ["spec.clusterIP"],
  "kubernetes:apps/v1:Deployment": ["spec.selector"],
  "kubernetes:core/v1:Secret": ["type", "data", "stringData"],
  "kubernetes:core/v1:ConfigMap": ["data", "binaryData"],
  "kubernetes:core/v1:ResourceQuota": ["spec.scopes"],
  "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ["roleRef"],
  "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ["roleRef"],
};
/** What replaces an object of any Kubernetes kind (diff.go metadataForceNewProperties). */
const KUBERNETES_REPLACED_BY = ["metadata.name", "metadata.namespace"];

/**
 * Whether the state's resource is a custom one. State written before `custom` was recorded is read
 * by type: the project's own types ("switch-vaas:cdn-pop:CdnPop") are its components.
 */
function isCustom(resource: RecordedResource): boolean {
  return resource.custom ?? !resource.type.startsWith(`${PROJECT}:`);
}

function keyOf(resource: RecordedResource): string {
  return `${resource.type}::${resource.name}`;
}

/**
 * What an `up` that left `after` did to each custom resource of a stack whose previous state held
 * `before` (empty for a new stack): its resources in the order the program registered them, then
 * those it no longer has, deleted in the reverse of the order they were made (as Pulumi deletes).
 */
export function changesOfUp(before: readonly RecordedResource[], after: readonly RecordedResource[]): ResourceChange[] {
  const previous = new Map(before.map((resource) => [keyOf(resource), resource]));
  const current = new Set(after.map(keyOf));
  const changes = after.filter((resource) => reportsChange(resource.type, isCustom(resource))).map((resource) => {
    const old = previous.get(keyOf(resource));
    return { resource: resource.name, resourceType: resource.type, action: old === undefined ? "create" : actionOf(resource.type, changedPaths(old, resource)) };
  });
  return [...changes, ...changesOfDestroy(before.filter((resource) => !current.has(keyOf(resource))))];
}

/** A destroy deletes every custom resource the state holds, the last made first. */
export function changesOfDestroy(before: readonly RecordedResource[]): ResourceChange[] {
  return before
    .filter((resource) => reportsChange(resource.type, isCustom(resource)))
    .toReversed()
    .map((resource) => ({ resource: resource.name, resourceType: resource.type, action: "delete" }));
}

function actionOf(type: string, changed: readonly Path[]): ChangeAction {
  return judgeChange(type, changed).action;
}

/** How the provider of a type takes a change to a resource's inputs: see {@link REPLACED_BY}. */
export interface Judgement {
  action: "same" | "update" | "replace";
  /** The changed paths that force the replacement. */
  replacing: Path[];
  /** False where the type's replacement rules are not written down here, so an update may yet be a replacement. */
  rulesKnown: boolean;
}

/** Whether changes at `changed` update a resource of `type` in place or replace it. */
export function judgeChange(type: string, changed: readonly Path[]): Judgement {
  const table = REPLACED_BY[type];
  const rulesKnown = table !== undefined || type.startsWith("kubernetes:");
  if (changed.length === 0) {
    return { action: "same", replacing: [], rulesKnown };
  }
  if (table === "every input") {
    return { action: "replace", replacing: [...changed], rulesKnown };
  }
  const rules = [...(table ?? []), ...(type.startsWith("kubernetes:") ? KUBERNETES_REPLACED_BY : [])].map((path) => path.split("."));
  const overlaps = (path: Path, rule: readonly string[]) => {
    const common = Math.min(path.length, rule.length);
    return path.slice(0, common).every((segment, i) => segment === rule[i]);
  };
  const replacing = changed.filter((path) => rules.some((rule) => overlaps(path, rule)));
  return { action: replacing.length > 0 ? "replace" : "update", replacing, rulesKnown };
}

/**
 * The paths at which two records of a resource differ: where their masked inputs differ, and
 * where a secret's digest differs (its masked value reads the same). Records without digests
 * compare their masked inputs alone.
 */
export function changedPaths(before: RecordedResource, after: RecordedResource): Path[] {
  const paths = differences(before.inputs, after.inputs, []);
  if (before.secretDigests !== undefined && after.secretDigests !== undefined) {
    for (const key of new Set([...Object.keys(before.secretDigests), ...Object.keys(after.secretDigests)])) {
      if (before.secretDigests[key] !== after.secretDigests[key]) {
        paths.push(key === "" ? [] : key.split("."));
      }
    }
  }
  return paths;
}

function differences(before: unknown, after: unknown, at: Path): Path[] {
  if (isObject(before) && isObject(after) && Array.isArray(before) === Array.isArray(after)) {
    if (Array.isArray(before) && Array.isArray(after)) {
      if (before.length !== after.length) {
        return [at];
      }
      return before.flatMap((item, i) => differences(item, after[i], [...at, i]));
    }
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].flatMap((key) => differences((before as Record<string, unknown>)[key], (after as Record<string, unknown>)[key], [...at, key]));
  }
  return Object.is(before, after) ? [] : [at];
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}
