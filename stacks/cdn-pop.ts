import * as pulumi from "@pulumi/pulumi";
import { CdnPop } from "../components/cdn-pop/cdn-pop.ts";
import { type PopSpecInput, parsePopSpec } from "../components/cdn-pop/spec.ts";

/**
 * One CDN point of presence (stack `pop-<name>`): config `switch-vaas:pop` — hosts, the WAE's edge
 * layout and the containers' addresses. The service re-runs it every period with a new layout.
 */
export default async function cdnPop(): Promise<Record<string, unknown>> {
  const config = new pulumi.Config("switch-vaas");
  const raw = config.getObject<unknown>("pop");
  // Validated here as well as in the component so that messages name the config key.
  parsePopSpec(raw, "switch-vaas:pop");
  const pop = new CdnPop("pop", { pop: raw as PopSpecInput });
  return { endpoints: pop.endpoints, loadBalancer: pop.loadBalancer, midCache: pop.midCache, dns: pop.dns };
}
