import { expect } from "vitest";
import { InvalidArgumentsError } from "../../domain/errors.ts";

/** The message of the InvalidArgumentsError `parse` throws; the test fails if it throws anything else, or nothing. */
export function invalidArgumentsMessage(parse: () => unknown): string {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidArgumentsError);
    return (error as Error).message;
  }
  throw new Error("expected an InvalidArgumentsError");
}
