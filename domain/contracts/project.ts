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

/** Matches the default declared for `program` in Pulumi.yaml. */
export const DEFAULT_PROGRAM: ProgramName = "testbed";

export function isProgramName(name: string): name is ProgramName {
  return (PROGRAMS as readonly string[]).includes(name);
}
