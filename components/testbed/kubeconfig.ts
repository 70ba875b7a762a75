import { YAMLError, parse, stringify } from "yaml";
import { InvalidArgumentsError } from "../../domain/errors.ts";

/**
 * Kubeconfig text, read and written without Pulumi: the testbed component reads where a cluster's
 * API server is, and whatever stands in for a kubeconfig offline (the service's offline engine,
 * the previews, the tests) writes one, without loading the Kubernetes SDK to do it.
 */

/** The entries of a kubeconfig list (contexts, clusters) that are maps; anything else has none. */
function entries(list: unknown): Record<string, unknown>[] {
  return Array.isArray(list) ? list.filter((entry): entry is Record<string, unknown> => typeof entry === "object" && entry !== null && !Array.isArray(entry)) : [];
}

function field(value: unknown, key: string): unknown {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/**
 * The host of the API server a kubeconfig points at (for `context`, or its current context).
 * On clusters without a cloud load balancer it is usually a node's public address.
 *
 * The kubeconfig is a secret, so a problem with it is reported by `key` (the config key it came
 * from) and position only: the YAML library's own messages and warnings quote the offending
 * lines, tokens included, so they are neither shown nor logged.
 */
export function apiServerHost(kubeconfig: string, context: string | undefined, key: string): string {
  let config: unknown;
  try {
    // "error": the library's warnings (an unknown tag, say) would print their lines to stderr.
    config = parse(kubeconfig, { logLevel: "error" });
  } catch (error) {
    const where = error instanceof YAMLError && error.linePos !== undefined ? ` at line ${error.linePos[0].line}, column ${error.linePos[0].col}` : "";
    throw new InvalidArgumentsError([`${key} is not YAML (${error instanceof YAMLError ? error.code : "unreadable"}${where}); give the kubeconfig file's contents`]);
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new InvalidArgumentsError([`${key} is not a kubeconfig; give the kubeconfig file's contents, a YAML map with clusters, contexts and users`]);
  }
  const current = field(config, "current-context");
  const contextName = context ?? (typeof current === "string" ? current : undefined);
  const clusterName = field(field(entries(field(config, "contexts")).find((entry) => entry.name === contextName), "context"), "cluster");
  const server = field(field(entries(field(config, "clusters")).find((entry) => entry.name === clusterName), "cluster"), "server");
  if (typeof server !== "string" || !URL.canParse(server)) {
    throw new InvalidArgumentsError([`${key}: the kubeconfig has no server for context "${contextName ?? "(none)"}"; give a kubeconfig whose context names a cluster with a server URL`]);
  }
  return new URL(server).hostname.replace(/^\[|\]$/g, "");
}

/**
 * A kubeconfig that names a cluster's API server and carries no credentials: it can never
 * authenticate, so it only stands in where nothing is contacted (offline previews, tests).
 */
export function kubeconfigWithoutCredentials(server: string, name: string): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster: { server } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    users: [{ name, user: {} }],
    "current-context": name,
  });
}
