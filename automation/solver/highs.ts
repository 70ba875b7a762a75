import type { Highs } from "highs";
import { createRequire } from "node:module";
import type { MilpSolver } from "../../domain/wae/milp.ts";

/**
 * HiGHS's loader, from its CommonJS build: the package's one set of types is read as CommonJS under
 * nodenext and as ES module by Node, so an ES default import type-checks as one thing and runs as
 * another; require() gives the loader function either way.
 */
const loadHighs = createRequire(import.meta.url)("highs") as () => Promise<Highs>;

let highs: Promise<Highs> | undefined;

/**
 * HiGHS, compiled to WebAssembly, loaded once per process: the MILP solver the WAE's exact
 * strategy is given (domain/wae/milp.ts).
 */
export function highsSolver(): Promise<MilpSolver> {
  highs ??= loadHighs();
  return highs;
}
