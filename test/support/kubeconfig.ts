import { stringify } from "yaml";

/** A minimal kubeconfig for a cluster whose API server is at `server` (no credentials: tests never connect). */
export function kubeconfigFor(server: string, name = "test"): string {
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name, cluster: { server } }],
    contexts: [{ name, context: { cluster: name, user: name } }],
    users: [{ name, user: {} }],
    "current-context": name,
  });
}
