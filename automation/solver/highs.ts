import type { Highs } from "highs";
import { createRequire } from "node:module";
import type { MilpSolution, MilpSolver } from "../../domain/wae/milp.ts";

/**
 * HiGHS's loader, from its CommonJS build: the package's one set of types is read as CommonJS under
 * nodenext and as ES module by Node, so an ES default import type-checks as one thing and runs as
 * another; require() gives the loader function either way.
 */
const loadHighs = createRequire(import.meta.url)("highs") as () => Promise<Highs>;

let highs: Promise<MilpSolver> | undefined;

/**
 * HiGHS, compiled to WebAssembly, loaded once per process: the solver the WAE's exact strategy and
 * its calibration are given (domain/wae/milp.ts). Each solve is a persistent model of its own, so
 * that a MIP start can be set by column name and the gap read when the time limit stops it.
 */
export function highsSolver(): Promise<MilpSolver> {
  highs ??= loadHighs().then((loaded): MilpSolver => ({ solve: (model, options) => solveWith(loaded, model, options) }));
  return highs;
}

function solveWith(loaded: Highs, lp: string, options: Parameters<MilpSolver["solve"]>[1]): MilpSolution {
  using model = loaded.createModel({ format: "lp", data: lp });
  model.options.set({ output_flag: false, time_limit: options.timeLimitSeconds });
  if (options.start !== undefined) {
    const entries = Object.entries(options.start);
    model.setSolution({ indices: entries.map(([name]) => model.getColByName(name)), values: entries.map(([, value]) => value) });
  }
  const { modelStatus } = model.run();
  const codes = loaded.constants.modelStatus;
  const detail = Object.entries(codes).find(([, code]) => code === modelStatus)?.[0] ?? `status ${modelStatus}`;
  const status = modelStatus === codes.optimal ? "optimal" : modelStatus === codes.infeasible ? "infeasible" : modelStatus === codes.timeLimit ? "time-limit" : "failed";
  // A primal solution exists when optimal, or at a limit once an incumbent was found.
  if (status === "infeasible" || status === "failed" || Number(model.info.get("primal_solution_status")) !== loaded.constants.solutionStatus.feasible) {
    return { status: status === "time-limit" ? "failed" : status, detail: status === "time-limit" ? "time limit reached before any layout was found" : detail };
  }
  const { colValue } = model.getSolution();
  const { numCols } = model.getDimensions();
  const values: Record<string, number> = {};
  for (let column = 0; column < numCols; column++) {
    values[model.getColName(column)] = colValue[column]!;
  }
  // An LP has no MIP gap: it is solved exactly or not at all.
  const gap = status === "optimal" ? 0 : Number(model.info.get("mip_gap"));
  return { status, detail, values, objective: model.getObjectiveValue(), gap };
}
