import { readFileSync } from "node:fs";
import { parse } from "yaml";

/** Stands in for an encrypted (`secure:`) value, which cannot be decrypted without the stack's secrets provider. */
export const ENCRYPTED_PLACEHOLDER = "(encrypted in the stack file; not readable offline)";

export interface StackConfig {
  /** Config as Pulumi hands it to a program: fully qualified keys, objects as JSON. */
  config: Record<string, string>;
  /** Keys holding a secret, wholly or in part. */
  secretKeys: string[];
}

/**
 * Reads a `Pulumi.<stack>.yaml` file's config for the offline engine. Encrypted values are
 * replaced by {@link ENCRYPTED_PLACEHOLDER} and their keys marked secret.
 */
export function readStackConfig(path: string): StackConfig {
  const file = parse(readFileSync(path, "utf8")) as { config?: Record<string, unknown> } | null;
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, raw] of Object.entries(file?.config ?? {})) {
    const { value, encrypted } = withoutCiphertext(raw);
    config[key] = typeof value === "string" ? value : JSON.stringify(value);
    if (encrypted) {
      secretKeys.push(key);
    }
  }
  return { config, secretKeys };
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
