import type * as pulumi from "@pulumi/pulumi";
import { type OfflineResult, type RecordingMocks, type Registration, evaluateOffline } from "../../automation/engine/offline.ts";
import { type ProgramName, qualifiedKey } from "../../domain/contracts/project.ts";

/** Resolves an Output's value (never inside a test's `apply`: a throw there would be lost). */
export function outputOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/** The registrations of one type token. */
export function ofType(registrations: Registration[], type: string): Registration[] {
  return registrations.filter((registration) => registration.type === type);
}

export interface StackRun {
  /** Config by the contract's short key names ("sites"); objects and lists are set as JSON, as `pulumi config set --path` stores them. */
  config?: Record<string, unknown>;
  /** Short names of the keys set as secrets. */
  secretKeys?: string[];
  /** Defaults to fresh RecordingMocks; pass your own to answer computed values or read registrations after a failure. */
  mocks?: RecordingMocks;
  /** Evaluate as a preview (unknowns stay unknown) rather than as an up. Defaults to false. */
  preview?: boolean;
}

/**
 * The one way tests run a stack program under Pulumi's mocks: the program module is imported only
 * after the mocks are set (../shared/reference/pulumi.md §3), with config as a stack file holds it.
 */
export function runStack<T = Record<string, unknown>>(program: ProgramName, run: StackRun = {}): Promise<OfflineResult<T>> {
  const config = Object.fromEntries(
    Object.entries(run.config ?? {}).map(([key, value]) => [qualifiedKey(key), typeof value === "string" ? value : JSON.stringify(value)]),
  );
  return evaluateOffline(async () => (await import(`../../stacks/${program}.ts`) as { default: () => Promise<T> }).default(), {
    preview: run.preview ?? false,
    config,
    secretKeys: (run.secretKeys ?? []).map((key) => qualifiedKey(key)),
    ...(run.mocks === undefined ? {} : { mocks: run.mocks }),
  });
}
