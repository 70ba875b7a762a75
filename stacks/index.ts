import * as pulumi from "@pulumi/pulumi";
import { InvalidArgumentsError } from "../components/validation.ts";

/** Stack programs by the value of config `switch-vaas:program`. */
const PROGRAMS = {
  testbed: () => import("./testbed.ts"),
  conference: () => import("./conference.ts"),
  "cdn-pop": () => import("./cdn-pop.ts"),
} as const satisfies Record<string, () => Promise<{ default: () => Promise<object> }>>;

/** Matches the default declared for `program` in Pulumi.yaml. */
export const DEFAULT_PROGRAM = "testbed";

function isProgramName(name: string): name is keyof typeof PROGRAMS {
  return Object.hasOwn(PROGRAMS, name);
}

/** The Pulumi entry point: runs the stack program named by config `switch-vaas:program`. */
export default async function main(): Promise<object> {
  const name = new pulumi.Config("switch-vaas").get("program") ?? DEFAULT_PROGRAM;
  if (!isProgramName(name)) {
    throw new InvalidArgumentsError([
      `switch-vaas:program "${name}" is not a stack program; use one of ${Object.keys(PROGRAMS).map((p) => `"${p}"`).join(", ")}`,
    ]);
  }
  const program = await PROGRAMS[name]();
  return program.default();
}
