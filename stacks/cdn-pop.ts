import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { CdnPop } from "../components/cdn-pop/cdn-pop.ts";
import { type PopSpecInput, parsePopSpec } from "../components/cdn-pop/spec.ts";
import { InvalidArgumentsError, parseOrThrow } from "../components/validation.ts";

const reportKeys = z.record(z.string(), z.string().min(16, { error: "is too short; give a random key of at least 16 characters" }), {
  error: "must be a map from host name to key",
});

/**
 * One CDN point of presence (stack `pop-<name>`): config `switch-vaas:pop` — hosts, the WAE's edge
 * layout and the containers' addresses — and `switch-vaas:reportKeys`, each host's secret key for
 * its instance manager's reports. The service re-runs it every period with a new layout.
 */
export default async function cdnPop(): Promise<Record<string, unknown>> {
  const config = new pulumi.Config("switch-vaas");
  const raw = config.getObject<unknown>("pop");
  // Validated here as well as in the component so that messages name the config keys.
  const pop = parsePopSpec(raw, "switch-vaas:pop");
  // Read plainly to validate; every key is wrapped as a secret straight away.
  const keys = parseOrThrow(reportKeys, config.getObject<unknown>("reportKeys") ?? {}, "switch-vaas:reportKeys");
  const missing = pop.hosts.filter((host) => keys[host.name] === undefined);
  if (missing.length > 0) {
    throw new InvalidArgumentsError(
      missing.map((host) => `switch-vaas:reportKeys.${host.name} is missing; set it: pulumi config set --secret --path 'reportKeys.${host.name}' "$(openssl rand -hex 32)"`),
    );
  }
  const cdn = new CdnPop("pop", {
    pop: raw as PopSpecInput,
    reportKeys: Object.fromEntries(Object.entries(keys).map(([host, key]) => [host, pulumi.secret(key)])),
  });
  return { endpoints: cdn.endpoints, loadBalancer: cdn.loadBalancer, midCache: cdn.midCache, dns: cdn.dns };
}
