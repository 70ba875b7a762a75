/**
 * What every stack of the project shares: its name, the config namespace its keys live in, and the
 * key that selects the stack program (ARCHITECTURE.md "Layout"; Pulumi.yaml declares or documents the keys).
 */

/** The one Pulumi project every stack belongs to, so the CLI can inspect any stack the service made. */
export const PROJECT = "switch-vaas";

/** `pulumi config` keys are `<namespace>:<key>`; ours are all in the project's namespace. */
export const CONFIG_NAMESPACE = PROJECT;

/** A config key as Pulumi names it, e.g. "switch-vaas:sites". */
export function qualifiedKey<K extends string>(key: K): `${typeof CONFIG_NAMESPACE}:${K}` {
  return `${CONFIG_NAMESPACE}:${key}`;
}

/** Selects the stack program stacks/index.ts runs. */
export const PROGRAM_KEY = "program";

export const PROGRAMS = ["testbed", "conference", "cdn-pop"] as const;
export type ProgramName = (typeof PROGRAMS)[number];

/**
 * The program a stack's name says: the service names conference stacks `conf-<id>` and PoP stacks
 * `pop-<name>`; any other stack is a testbed. So `pulumi preview -s conf-<id>` runs the conference
 * program even where the stack's config does not name one.
 */
const PROGRAM_BY_PREFIX: readonly (readonly [prefix: string, program: ProgramName])[] = [
  ["conf-", "conference"],
  ["pop-", "cdn-pop"],
];

export function programOfStack(stack: string): ProgramName {
  return PROGRAM_BY_PREFIX.find(([prefix]) => stack.startsWith(prefix))?.[1] ?? "testbed";
}

/** How `programOfStack` decides, for messages. */
export const PROGRAM_NAMING = `${PROGRAM_BY_PREFIX.map(([prefix, program]) => `${prefix}* runs ${program}`).join(", ")}, any other stack testbed`;

export function isProgramName(name: string): name is ProgramName {
  return (PROGRAMS as readonly string[]).includes(name);
}
