import type * as pulumi from "@pulumi/pulumi";
import type { Registration } from "../../automation/engine/offline.ts";

/** Resolves an Output's value (never inside a test's `apply`: a throw there would be lost). */
export function outputOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply(resolve));
}

/** The registrations of one type token. */
export function ofType(registrations: Registration[], type: string): Registration[] {
  return registrations.filter((registration) => registration.type === type);
}

