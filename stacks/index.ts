import "../runtime/node-version.ts"; // first: refuses an unsupported Node before any other module runs
import { PROGRAMS, PROGRAM_KEY, PROGRAM_NAMING, type ProgramName, isProgramName, programOfStack, qualifiedKey } from "../domain/contracts/project.ts";
import * as pulumi from "@pulumi/pulumi";
import { InvalidArgumentsError, isDomainError } from "../domain/errors.ts";
import { readString } from "./config.ts";

/** Stack programs by name, loaded only when selected. */
const LOADERS = {
  testbed: () => import("./testbed.ts"),
  conference: () => import("./conference.ts"),
  "cdn-pop": () => import("./cdn-pop.ts"),
} as const satisfies Record<ProgramName, () => Promise<{ default: () => Promise<object> }>>;

/**
 * The Pulumi entry point: runs the stack program the stack's name says (programOfStack). Config
 * `switch-vaas:program`, where a stack sets it, must say the same: a conference's config under a
 * testbed's name, or the reverse, is refused before anything is registered, never run. A refusal
 * of the domain's (bad config, above all) reaches the CLI as a RunError, which it prints as the
 * message alone: every line of it names the key and the fix, and a stack trace would bury them.
 */
export default async function main(): Promise<object> {
  try {
    const stack = pulumi.getStack();
    const named = programOfStack(stack);
    const configured = readString(PROGRAM_KEY);
    if (configured !== undefined && !isProgramName(configured)) {
      throw new InvalidArgumentsError([
        `${qualifiedKey(PROGRAM_KEY)} "${configured}" is not a stack program; use one of ${PROGRAMS.map((p) => `"${p}"`).join(", ")}`,
      ]);
    }
    if (configured !== undefined && configured !== named) {
      throw new InvalidArgumentsError([
        `${qualifiedKey(PROGRAM_KEY)} "${configured}" disagrees with stack "${stack}", which runs ${named} by its name (${PROGRAM_NAMING}); rename the stack or remove the key`,
      ]);
    }
    const program = await LOADERS[named]();
    return await program.default();
  } catch (error) {
    throw isDomainError(error) ? new pulumi.RunError(error.message) : error;
  }
}
