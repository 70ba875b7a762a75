/**
 * The one family of errors the domain throws. Each kind has a stable `code`, which callers map to
 * what their boundary needs (an HTTP status in the service, an exit code in a command) in one
 * place, instead of matching messages or classes scattered through the code.
 */

export type DomainErrorCode = "invalid_arguments" | "not_found" | "conflict" | "exhausted" | "solver_failed";

export abstract class DomainError extends Error {
  abstract readonly code: DomainErrorCode;
  // The subclass's own name ("NotFoundError"), as a stack trace or a log line shows it.
  override readonly name: string = this.constructor.name;
}

/**
 * Invalid plain arguments or stack config. Thrown before any resource is registered, with one
 * line per problem, each naming the key and saying how to fix it.
 */
export class InvalidArgumentsError extends DomainError {
  readonly code = "invalid_arguments";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join("\n"));
    this.problems = problems;
  }
}

/** Something named (a cluster, a host, a conference) does not exist. */
export class NotFoundError extends DomainError { readonly code = "not_found"; }

/** The request contradicts the current state (a duplicate, a change already under way). */
export class ConflictError extends DomainError { readonly code = "conflict"; }

/** A finite resource ran out: no free address in a pool, no capacity on any cluster. */
export class ExhaustedError extends DomainError { readonly code = "exhausted"; }

/** An injected solver answered with something other than a proof. */
export class SolverError extends DomainError { readonly code = "solver_failed"; }

/** True for any error of the family, so a boundary can tell the domain's refusals from bugs. */
export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError;
}
