import { DEFAULT_PROGRAM, PROGRAMS, PROGRAM_KEY, type ProgramName, isProgramName, qualifiedKey } from "../domain/contracts/project.ts";
import * as pulumi from "@pulumi/pulumi";
import { InvalidArgumentsError, isDomainError } from "../domain/errors.ts";
import { readString } from "./config.ts";

/** Stack programs by the value of config `switch-vaas:program`, loaded only when selected. */
const LOADERS = {
  testbed: () => import("./testbed.ts"),
  conference: () => import("./conference.ts"),
  "cdn-pop": () => import("./cdn-pop.ts"),
} as const satisfies Record<ProgramName, () => Promise<{ default: () => Promise<object> }>>;

/**
 * The Pulumi entry point: runs the stack program named by config `switch-vaas:program`. A refusal
 * of the domain's (bad config, above all) reaches the CLI as a RunError, which it prints as the
 * message alone: every line of it names the key and the fix, and a stack trace would bury them.
 */
export default async function main(): Promise<object> {
  try {
    const name = readString(PROGRAM_KEY) ?? DEFAULT_PROGRAM;
    if (!isProgramName(name)) {
      throw new InvalidArgumentsError([
        `${qualifiedKey(PROGRAM_KEY)} "${name}" is not a stack program; use one of ${PROGRAMS.map((p) => `"${p}"`).join(", ")}`,
      ]);
    }
    const program = await LOADERS[name]();
    return await program.default();
  } catch (error) {
    throw isDomainError(error) ? new pulumi.RunError(error.message) : error;
  }
}
