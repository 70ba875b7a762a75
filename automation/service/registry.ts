import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { z } from "zod";
import { TESTBED_OUTPUTS, testbedCluster } from "../../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import type { Engine } from "../engine/engine.ts";

/**
 * The clusters conferences may be placed on: the testbed stack's `clusters` output, read through
 * the engine (never brought up or changed by the service) and re-read periodically, or a file of
 * the same shape. Kubeconfigs are dropped on the way in: nothing the service shows or stores
 * needs them — the conference stack reads its own through a StackReference.
 */

const registeredCluster = testbedCluster.omit({ kubeconfig: true });
const registeredClusters = z.record(z.string(), registeredCluster);
export type RegisteredCluster = z.output<typeof registeredCluster>;
export type RegisteredClusters = Readonly<Record<string, RegisteredCluster>>;

/**
 * Where the clusters come from: a testbed stack's outputs, or a file of the same shape. A file only
 * says where conferences may go; their stacks still read their clusters' kubeconfigs from the
 * testbed stack `testbed` names, so every cluster of the file must be one of that stack's.
 */
export type RegistrySource = { kind: "stack"; engine: Engine; stack: string } | { kind: "file"; path: string; testbed: { engine: Engine; stack: string } };

/** How often the testbed's outputs are read again. */
export const REGISTRY_REFRESH_MS = 60_000;

export class ClusterRegistry {
  private current: RegisteredClusters | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly source: RegistrySource) {}

  /** Reads the clusters now; throws, naming the source, when there are none to read. */
  async load(): Promise<RegisteredClusters> {
    if (this.source.kind === "stack") {
      this.current = await fromStack(this.source.engine, this.source.stack);
      return this.current;
    }
    const clusters = fromFile(this.source.path);
    const { engine, stack } = this.source.testbed;
    const outputs = await engine.outputs(stack);
    if (outputs === undefined) {
      throw new InvalidArgumentsError([
        `SWITCH_TESTBED: ${this.source.path} says where conferences may go, but their stacks read their clusters' kubeconfigs from the testbed stack "${stack}", which the backend does not have; bring it up first (pulumi up -s ${stack})`,
      ]);
    }
    const known = parsed(outputs[TESTBED_OUTPUTS.clusters], `the ${TESTBED_OUTPUTS.clusters} output of stack "${stack}"`);
    const missing = Object.keys(clusters).filter((name) => !Object.hasOwn(known, name));
    if (missing.length > 0) {
      throw new InvalidArgumentsError([
        `SWITCH_TESTBED: ${this.source.path} names clusters the testbed stack "${stack}" does not have (${missing.join(", ")}); every conference on them would fail — name only ${Object.keys(known).join(", ")}, or add the clusters to the testbed`,
      ]);
    }
    this.current = clusters;
    return this.current;
  }

  /** Re-reads every `intervalMs`; a failed read keeps the last good registry. */
  watch(intervalMs = REGISTRY_REFRESH_MS, onError: (error: unknown) => void = () => undefined): void {
    this.timer = setInterval(() => void this.load().catch(onError), intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** The registry as last read; empty before the first read. */
  clusters(): RegisteredClusters {
    return this.current ?? {};
  }

  loaded(): boolean {
    return this.current !== undefined;
  }
}

function parsed(value: unknown, where: string): RegisteredClusters {
  const result = registeredClusters.safeParse(value);
  if (!result.success || Object.keys(result.data).length === 0) {
    throw new InvalidArgumentsError([`${where} is not a map from cluster name to { provider, location, exposure, capacity } as the testbed stack's ${TESTBED_OUTPUTS.clusters} output has it`]);
  }
  return Object.fromEntries(Object.entries(result.data).map(([name, cluster]) => [name, registeredCluster.parse(cluster)]));
}

function fromFile(path: string): RegisteredClusters {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidArgumentsError([`SWITCH_TESTBED: ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? "unreadable"}); give a testbed stack's name or a clusters file`]);
  }
  let value: unknown;
  try {
    value = parse(text, { logLevel: "error" });
  } catch {
    throw new InvalidArgumentsError([`SWITCH_TESTBED: ${path} is not YAML or JSON; give a clusters file as the testbed's ${TESTBED_OUTPUTS.clusters} output has it`]);
  }
  return parsed(value, `SWITCH_TESTBED: ${path}`);
}

async function fromStack(engine: Engine, stack: string): Promise<RegisteredClusters> {
  const outputs = await engine.outputs(stack);
  if (outputs === undefined) {
    throw new InvalidArgumentsError([`SWITCH_TESTBED: the backend has no stack "${stack}"; bring the testbed up first (pulumi up -s ${stack}), name another stack, or try the service with nothing deployed: SWITCH_ENGINE=offline`]);
  }
  return parsed(outputs[TESTBED_OUTPUTS.clusters], `the ${TESTBED_OUTPUTS.clusters} output of stack "${stack}"`);
}
