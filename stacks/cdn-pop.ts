import * as pulumi from "@pulumi/pulumi";
import { CdnPop } from "../components/cdn-pop/cdn-pop.ts";
import { CDN_POP_CONFIG, type CdnPopOutputs, parseCdnPop, parseReportKeys } from "../domain/contracts/cdn-pop.ts";
import { qualifiedKey } from "../domain/contracts/project.ts";
import { readConfig } from "./config.ts";

/**
 * One CDN point of presence (stack `pop-<name>`): config `switch-vaas:pop` — hosts, the WAE's edge
 * layout and the containers' addresses — and `switch-vaas:reportKeys`, each host's secret key for
 * its instance manager's reports. The service re-runs it every period with a new layout.
 */
export default async function cdnPop(): Promise<CdnPopOutputs> {
  // Read plainly to validate; every key is wrapped as a secret straight away.
  const keys = parseReportKeys(readConfig(CDN_POP_CONFIG.reportKeys) ?? {}, qualifiedKey(CDN_POP_CONFIG.reportKeys));
  // Validated here as well as in the component so that messages name the config keys.
  const pop = parseCdnPop({ pop: readConfig(CDN_POP_CONFIG.pop), reportKeyHosts: Object.keys(keys) }, qualifiedKey(""));
  const cdn = new CdnPop("pop", {
    pop,
    reportKeys: Object.fromEntries(Object.entries(keys).map(([host, key]) => [host, pulumi.secret(key)])),
  });
  return { endpoints: cdn.endpoints, loadBalancer: cdn.loadBalancer, midCache: cdn.midCache, dns: cdn.dns };
}
