import { expect } from "vitest";
import { type DomainError, InvalidArgumentsError } from "../../domain/errors.ts";

type DomainErrorClass = abstract new (...args: never[]) => DomainError;

/**
 * The message of the domain error of `kind` that `run` throws, or its promise rejects with; the
 * test fails if it throws anything else, or nothing. The one way tests pin a domain error.
 */
export function domainErrorMessage(kind: DomainErrorClass, run: () => Promise<unknown>): Promise<string>;
export function domainErrorMessage(kind: DomainErrorClass, run: () => unknown): string;
export function domainErrorMessage(kind: DomainErrorClass, run: () => unknown): string | Promise<string> {
  const check = (error: unknown): string => {
    expect(error).toBeInstanceOf(kind);
    return (error as Error).message;
  };
  const nothing = () => {
    throw new Error(`expected a ${kind.name}, but nothing was thrown`);
  };
  let result: unknown;
  try {
    result = run();
  } catch (error) {
    return check(error);
  }
  if (result instanceof Promise) {
    return result.then(nothing, check);
  }
  return nothing();
}

/** domainErrorMessage for the commonest kind: bad arguments or config. */
export function invalidArgumentsMessage(run: () => Promise<unknown>): Promise<string>;
export function invalidArgumentsMessage(run: () => unknown): string;
export function invalidArgumentsMessage(run: () => unknown): string | Promise<string> {
  return domainErrorMessage(InvalidArgumentsError, run);
}
