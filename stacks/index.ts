import { DEFAULT_PROGRAM, PROGRAMS, PROGRAM_KEY, type ProgramName, isProgramName, qualifiedKey } from "../domain/contracts/project.ts";
import { InvalidArgumentsError } from "../domain/errors.ts";
import { readString } from "./config.ts";

/** Stack programs by the value of config `switch-vaas:program`, loaded only when selected. */
const LOADERS = {
  testbed: () => import("./testbed.ts"),
  conference: () => import("./conference.ts"),
  "cdn-pop": () => import("./cdn-pop.ts"),
} as const satisfies Record<ProgramName, () => Promise<{ default: () => Promise<object> }>>;

/** The Pulumi entry point: runs the stack program named by config `switch-vaas:program`. */
export default async function main(): Promise<object> {
  const name = readString(PROGRAM_KEY) ?? DEFAULT_PROGRAM;
  if (!isProgramName(name)) {
    throw new InvalidArgumentsError([
      `${qualifiedKey(PROGRAM_KEY)} "${name}" is not a stack program; use one of ${PROGRAMS.map((p) => `"${p}"`).join(", ")}`,
    ]);
  }
  const program = await LOADERS[name]();
  return program.default();
}
