import { isDeepStrictEqual } from "node:util";
import { diffArrays, structuredPatch } from "diff";
import type { PlannedResource } from "./offline-plan.ts";
import { type Path, changedPaths, judgeChange } from "./offline-state.ts";
import { STACK_REFERENCE } from "./offline.ts";

/**
 * What a change to a stack's program or config does to the resources `pulumi up` would make: two
 * offline plans of one stack compared as the Pulumi engine compares a program's registrations
 * with the last state. A resource is the same one where its URN is, or where one of its aliases
 * names the old URN (its own, or inherited from an aliased parent: pkg/resource/deploy/
 * step_generator.go, and the SDK's inheritedChildAlias for names prefixed by the parent's). Update
 * or replacement follows the provider's rules where offline-state.ts has them written down.
 */

export const PLAN_ACTIONS = ["create", "update", "replace", "delete", "same"] as const;
export type PlanAction = (typeof PLAN_ACTIONS)[number];

/** One changed input of a resource. */
export interface InputChange {
  /** Where, in the resource's inputs: `spec.template.spec.containers[3]{jvb}.resources`, `data["nginx.conf"]` (see {@link pathText}). */
  path: string;
  /** A secret's change: its values are never shown, only that it changed. */
  secret?: true;
  /** Before and after, where neither is a long text or a list (absent where the input was or is unset). */
  before?: unknown;
  after?: unknown;
  /** A multi-line text's unified diff, without file headers. */
  lines?: string[];
  /** A list that grew or shrank: the items that went and came. */
  removed?: unknown[];
  added?: unknown[];
}

export interface ResourceDiff {
  urn: string;
  type: string;
  name: string;
  /** False for a component resource. */
  custom: boolean;
  action: PlanAction;
  /** The old URN, where an alias made this the same resource under a new one. */
  was?: string;
  /** Of a replacement: the inputs that force it, or that its provider changed. */
  replacedBecause?: string[];
  /** False where this type's replacement rules are unknown offline: an update may yet be a replacement. */
  rulesKnown: boolean;
  /**
   * Of a creation: the URN of a deleted resource of the same type whose inputs are the same, most
   * likely this one moved (a renamed parent or type) without an alias that names it.
   */
  movedFrom?: string;
  inputs: InputChange[];
}

export interface PlanDiff {
  /** The working tree's resources in registration order, then the deleted ones in reverse. */
  resources: ResourceDiff[];
  summary: Record<PlanAction, number>;
}

/** Compares the plan of `before` (the revision) with `after` (the working tree). */
export function diffPlans(before: readonly PlannedResource[], after: readonly PlannedResource[]): PlanDiff {
  const listed = (resource: PlannedResource) => resource.type !== STACK_REFERENCE;
  const old = new Map(before.filter(listed).map((resource) => [resource.urn, resource]));
  /** Each working-tree URN -> the URN of the old resource it is, where there is one. */
  const matched = new Map<string, string>();
  /** Each working-tree URN -> every URN it may have had (its own, its aliases, inherited ones). */
  const candidates = new Map<string, string[]>();
  const resources: ResourceDiff[] = [];
  for (const resource of after.filter(listed)) {
    const names = candidateUrns(resource, candidates);
    candidates.set(resource.urn, names);
    const previousUrn = names.find((urn) => old.has(urn) && ![...matched.values()].includes(urn));
    if (previousUrn === undefined) {
      resources.push({ ...identityOf(resource), action: "create", rulesKnown: true, inputs: [] });
      continue;
    }
    matched.set(resource.urn, previousUrn);
    const previous = old.get(previousUrn)!;
    resources.push(compared(previous, resource, matched));
  }
  const claimed = new Set(matched.values());
  const deleted = [...old.values()].filter((resource) => !claimed.has(resource.urn)).toReversed();
  for (const resource of deleted) {
    resources.push({ ...identityOf(resource), action: "delete", rulesKnown: true, inputs: [] });
  }
  noteMoves(resources, before, after);
  const summary = Object.fromEntries(PLAN_ACTIONS.map((action) => [action, resources.filter((resource) => resource.action === action).length])) as Record<PlanAction, number>;
  return { resources, summary };
}

function identityOf(resource: PlannedResource): Pick<ResourceDiff, "urn" | "type" | "name" | "custom"> {
  return { urn: resource.urn, type: resource.type, name: resource.name, custom: resource.custom };
}

/** The URNs a resource may have had: its own, its aliases', and those its parent's aliases give it. */
function candidateUrns(resource: PlannedResource, known: ReadonlyMap<string, readonly string[]>): string[] {
  const own = [resource.urn, ...resource.aliases];
  const parentNames = resource.parent === undefined ? [] : (known.get(resource.parent) ?? []).filter((urn) => urn !== resource.parent);
  const parentName = resource.parent === undefined ? "" : nameOf(resource.parent);
  const inherited = parentNames.flatMap((aliasedParent) =>
    own.map((urn) => {
      const name = nameOf(urn);
      // A child named after its parent is renamed with it.
      const renamed = parentName !== "" && name.startsWith(parentName) ? `${nameOf(aliasedParent)}${name.slice(parentName.length)}` : name;
      return urnWithParent(urn, aliasedParent, renamed);
    }),
  );
  return [...new Set([...own, ...inherited])];
}

function nameOf(urn: string): string {
  return urn.split("::").slice(3).join("::");
}

/** `urn` under `parent` with `name`: the parent's type chain, then the resource's own type. */
function urnWithParent(urn: string, parent: string, name: string): string {
  const [prefix, project, qualified] = urn.split("::") as [string, string, string];
  const ownType = qualified.split("$").at(-1)!;
  const parentChain = parent.split("::")[2]!;
  return `${prefix}::${project}::${parentChain}$${ownType}::${name}`;
}

function compared(previous: PlannedResource, resource: PlannedResource, matched: ReadonlyMap<string, string>): ResourceDiff {
  const paths = effectiveChanges(previous, resource);
  const judgement = judgeChange(resource.type, paths);
  const forced = resource.replaceOnChanges.map(parsePropertyPath);
  const replacing = [...judgement.replacing, ...paths.filter((path) => forced.some((rule) => covers(rule, path) || covers(path, rule)) && !judgement.replacing.includes(path))];
  const replacedBecause = replacing.map((path) => pathText(path, resource.inputs, previous.inputs));
  const previousProvider = providerUrn(previous.provider);
  const provider = providerUrn(resource.provider);
  // The provider is the same one if it is, or if it is the old one under an alias.
  const providerChanged = previousProvider !== (provider === undefined ? undefined : (matched.get(provider) ?? provider));
  if (providerChanged) {
    replacedBecause.push("its provider changed");
  }
  const action: PlanAction = providerChanged || replacing.length > 0 ? "replace" : judgement.action;
  const secretPaths = new Set(Object.keys({ ...previous.secretDigests, ...resource.secretDigests }));
  return {
    ...identityOf(resource),
    action,
    ...(previous.urn === resource.urn ? {} : { was: previous.urn }),
    ...(action === "replace" ? { replacedBecause } : {}),
    // Only an update can be wrong about it: a replacement or no change is what it is.
    rulesKnown: action !== "update" || judgement.rulesKnown,
    inputs: paths.map((path) => inputChange(previous.inputs, resource.inputs, path, secretPaths.has(path.join(".")))),
  };
}

/** Where two records of a resource differ, but for what its ignoreChanges leaves as it was (as the engine does). */
function effectiveChanges(previous: PlannedResource, resource: PlannedResource): Path[] {
  const ignored = resource.ignoreChanges.map(parsePropertyPath);
  return changedPaths(previous, resource).filter((path) => !ignored.some((rule) => covers(rule, path)));
}

/**
 * A property path as resource options give it (Pulumi's resource.PropertyPath): names joined by
 * ".", indices and quoted keys in brackets, "*" for any one segment.
 */
function parsePropertyPath(text: string): Path {
  const segments: (string | number)[] = [];
  for (const [, name, index, quoted] of text.matchAll(/([^.[\]]+)|\[(\d+|\*)\]|\["((?:[^"\\]|\\.)*)"\]/g)) {
    if (name !== undefined) {
      segments.push(name);
    } else if (index !== undefined) {
      segments.push(index === "*" ? "*" : Number(index));
    } else {
      segments.push(JSON.parse(`"${quoted!}"`) as string);
    }
  }
  return segments;
}

/** Whether `rule` names `path` or a property above it. */
function covers(rule: Path, path: Path): boolean {
  return rule.length <= path.length && rule.every((segment, i) => segment === "*" || segment === path[i]);
}

/** A provider reference is "<provider URN>::<id>"; the id is the deployment's. */
function providerUrn(reference: string | undefined): string | undefined {
  return reference?.split("::").slice(0, -1).join("::");
}

function inputChange(before: unknown, after: unknown, path: Path, secret: boolean): InputChange {
  const where = pathText(path, after, before);
  if (secret) {
    return { path: where, secret: true };
  }
  const was = valueAt(before, path);
  const is = valueAt(after, path);
  if (typeof was === "string" && typeof is === "string" && (was.includes("\n") || is.includes("\n"))) {
    const patch = structuredPatch("", "", was.endsWith("\n") ? was : `${was}\n`, is.endsWith("\n") ? is : `${is}\n`, undefined, undefined, { context: 2 });
    return { path: where, lines: patch.hunks.flatMap((hunk) => [`@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@`, ...hunk.lines]) };
  }
  if (Array.isArray(was) && Array.isArray(is)) {
    const parts = diffArrays<unknown>(was, is, { comparator: isDeepStrictEqual });
    return {
      path: where,
      removed: parts.filter((part) => part.removed).flatMap((part) => part.value),
      added: parts.filter((part) => part.added).flatMap((part) => part.value),
    };
  }
  return { path: where, ...(was === undefined ? {} : { before: was }), ...(is === undefined ? {} : { after: is }) };
}

function valueAt(value: unknown, path: Path): unknown {
  return path.reduce<unknown>((inner, segment) => (typeof inner === "object" && inner !== null ? (inner as Record<string | number, unknown>)[segment] : undefined), value);
}

/**
 * `spec.containers[3]{jvb}.resources`, and `data["nginx.conf"]` for a key that is not a plain name.
 * An item of a list that has a `name` (a container, an env var, a port) is followed by it in braces
 * when `within` (the inputs the path is into, either side's) says it: indices alone mean little to a reader.
 */
export function pathText(path: Path, ...within: unknown[]): string {
  return path
    .map((segment, i) => {
      if (typeof segment === "number") {
        const named = within.map((inputs) => valueAt(inputs, path.slice(0, i + 1))).find((item) => typeof (item as { name?: unknown } | undefined)?.name === "string");
        return named === undefined ? `[${segment}]` : `[${segment}]{${(named as { name: string }).name}}`;
      }
      if (/^[A-Za-z_$][\w$-]*$/.test(segment)) {
        return i === 0 ? segment : `.${segment}`;
      }
      return `[${JSON.stringify(segment)}]`;
    })
    .join("");
}

/**
 * A created resource whose type and inputs equal a deleted one's is most likely that one, moved
 * under a new URN without an alias: Pulumi will delete and create it, which is worth a reviewer's
 * note (an alias keeps it). Each deleted resource explains one creation at most.
 */
function noteMoves(resources: ResourceDiff[], before: readonly PlannedResource[], after: readonly PlannedResource[]): void {
  const beforeByUrn = new Map(before.map((resource) => [resource.urn, resource]));
  const afterByUrn = new Map(after.map((resource) => [resource.urn, resource]));
  const deleted = resources.filter((resource) => resource.action === "delete").map((resource) => beforeByUrn.get(resource.urn)!);
  for (const created of resources.filter((resource) => resource.action === "create")) {
    const now = afterByUrn.get(created.urn)!;
    const index = deleted.findIndex((old) => old.type === now.type && effectiveChanges(old, now).length === 0);
    if (index >= 0) {
      created.movedFrom = deleted[index]!.urn;
      deleted.splice(index, 1);
    }
  }
}
