import { readFileSync } from "node:fs";
import { YAMLError, parse } from "yaml";
import { InvalidArgumentsError } from "../../domain/errors.ts";

/** Stands in for an encrypted (`secure:`) value, which cannot be decrypted without the stack's secrets provider. */
export const ENCRYPTED_PLACEHOLDER = "(encrypted in the stack file; not readable offline)";

export interface StackConfig {
  /** Config as Pulumi hands it to a program: fully qualified keys, objects as JSON. */
  config: Record<string, string>;
  /** Keys holding a secret, wholly or in part. */
  secretKeys: string[];
}

const EXAMPLE = 'e.g. "config:" and under it "  switch-vaas:program: testbed"';

/**
 * Reads a `Pulumi.<stack>.yaml` file's config for the offline engine. Encrypted values are
 * replaced by {@link ENCRYPTED_PLACEHOLDER} and their keys marked secret.
 *
 * A file that is not a stack file (empty, not YAML, not a map, a config that is not a map, a key
 * without a value) is refused rather than read as no config, which would preview the defaults.
 * Messages name the file and the place, never its text: a stack file may hold secrets.
 */
export function readStackConfig(path: string): StackConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new InvalidArgumentsError([`${path} cannot be read (${code}); give the path of a stack file, Pulumi.<stack>.yaml`]);
  }
  let file: unknown;
  try {
    // "error": the YAML library's warnings would print the offending lines to stderr.
    file = parse(text, { logLevel: "error" });
  } catch (error) {
    const where = error instanceof YAMLError && error.linePos !== undefined ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : "";
    throw new InvalidArgumentsError([`${path} is not YAML (${error instanceof YAMLError ? error.code : "unreadable"}${where}); correct the file there`]);
  }
  if (file === null || file === undefined) {
    throw new InvalidArgumentsError([`${path} is empty; a stack file is a YAML map with a config: map, ${EXAMPLE}`]);
  }
  if (!isMap(file)) {
    throw new InvalidArgumentsError([`${path} is not a YAML map; a stack file is a YAML map with a config: map, ${EXAMPLE}`]);
  }
  if (file.config === undefined) {
    return { config: {}, secretKeys: [] };
  }
  if (!isMap(file.config)) {
    throw new InvalidArgumentsError([`${path}: config is not a map; give one key per line under it, ${EXAMPLE}`]);
  }
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  const problems: string[] = [];
  for (const [key, raw] of Object.entries(file.config)) {
    if (raw === null || raw === undefined) {
      problems.push(`${path}: ${key} has no value; give it one or remove the key`);
      continue;
    }
    const { value, encrypted } = withoutCiphertext(raw);
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
    if (encrypted) {
      secretKeys.push(key);
    }
  }
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  return { config, secretKeys };
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function withoutCiphertext(value: unknown): { value: unknown; encrypted: boolean } {
  if (typeof value !== "object" || value === null) {
    return { value, encrypted: false };
  }
  if (!Array.isArray(value) && Object.keys(value).length === 1 && "secure" in value) {
    return { value: ENCRYPTED_PLACEHOLDER, encrypted: true };
  }
  let encrypted = false;
  const entries = Object.entries(value).map(([key, inner]) => {
    const result = withoutCiphertext(inner);
    encrypted ||= result.encrypted;
    return [key, result.value] as const;
  });
  return { value: Array.isArray(value) ? entries.map(([, inner]) => inner) : Object.fromEntries(entries), encrypted };
}
