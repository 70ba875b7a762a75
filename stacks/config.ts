import * as pulumi from "@pulumi/pulumi";
import { CONFIG_NAMESPACE } from "../domain/contracts/project.ts";

/**
 * The stacks' one way of reading a config key of the project's namespace, for the contract's
 * schemas to validate: objects and lists arrive as JSON (as `pulumi config set --path` stores
 * them), anything else as the text it was set to.
 *
 * The text is parsed here rather than by Config.getObject, whose error quotes the whole value,
 * secrets included, and names no key; a scalar where an object belongs then reaches the schema,
 * whose message names the key and what it wants.
 */
export function readConfig(key: string): unknown {
  const text = new pulumi.Config(CONFIG_NAMESPACE).get(key);
  if (text === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** A config key whose value is text, as it was set. */
export function readString(key: string): string | undefined {
  return new pulumi.Config(CONFIG_NAMESPACE).get(key);
}
