import { join } from "node:path";

/**
 * Where the offline engine keeps a stack's state: a JSON file named after the stack's short name
 * (a StackReference may name "organization/switch-vaas/<stack>"). A module of its own, shared by
 * the engine and its workers, so that the engine's process never loads Pulumi: only the workers
 * evaluate programs.
 */
export function stateFile(stateDir: string, stack: string): string {
  return join(stateDir, `${stack.split("/").at(-1)!}.json`);
}
