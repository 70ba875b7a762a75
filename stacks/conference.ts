import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { JitsiConference } from "../components/conference/jitsi-conference.ts";
import { CONFERENCE_CONFIG, type ConferenceOutputs, DEFAULT_TESTBED_STACK, conferenceName, parseConferenceSpec, parseTlsConfig } from "../domain/contracts/conference.ts";
import { qualifiedKey } from "../domain/contracts/project.ts";
import { TESTBED_CONFIG, TESTBED_OUTPUTS, testbedClusters } from "../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../domain/errors.ts";
import { readConfig, readString } from "./config.ts";

/**
 * One conference (stack `conf-<id>`): config `switch-vaas:conference` (the service's decision),
 * `switch-vaas:testbedStack` (where the cluster's kubeconfig and exposure come from) and, optionally,
 * `switch-vaas:tls`.
 */
export default async function conference(): Promise<{ [K in keyof ConferenceOutputs]: pulumi.Input<ConferenceOutputs[K]> }> {
  const spec = parseConferenceSpec(readConfig(CONFERENCE_CONFIG.conference), qualifiedKey(CONFERENCE_CONFIG.conference));
  const testbedStack = readString(CONFERENCE_CONFIG.testbedStack) ?? DEFAULT_TESTBED_STACK;
  // Read plainly to validate; the certificate and key are wrapped as secrets straight away.
  const rawTls = readConfig(CONFERENCE_CONFIG.tls);
  const tls = rawTls === undefined ? undefined : parseTlsConfig(rawTls, qualifiedKey(CONFERENCE_CONFIG.tls));

  // The only resource before the checks below: a read of the testbed stack's outputs.
  const testbed = new pulumi.StackReference("testbed", { name: testbedStack });
  const details = await testbed.getOutputDetails(TESTBED_OUTPUTS.clusters);
  const found = testbedClusters.safeParse(details.secretValue ?? details.value);
  const testbedKey = qualifiedKey(CONFERENCE_CONFIG.testbedStack);
  const clusterKey = `${qualifiedKey(CONFERENCE_CONFIG.conference)}.cluster`;
  if (!found.success) {
    throw new InvalidArgumentsError([
      `${testbedKey} "${testbedStack}" has no usable ${TESTBED_OUTPUTS.clusters} output; bring the testbed up first (pulumi up -s testbed) or name the right stack`,
    ]);
  }
  const cluster = found.data[spec.cluster];
  if (cluster === undefined) {
    throw new InvalidArgumentsError([
      `${clusterKey} "${spec.cluster}" is not a cluster of the testbed stack "${testbedStack}"; use one of ${Object.keys(found.data)
        .sort()
        .map((name) => `"${name}"`)
        .join(", ")}`,
    ]);
  }
  if (cluster.exposure === "nodePort" && cluster.publicAddress === undefined) {
    throw new InvalidArgumentsError([
      `${clusterKey} "${spec.cluster}" uses node ports but the testbed gives no publicAddress for it; set it in the testbed's ${qualifiedKey(TESTBED_CONFIG.sites)}`,
    ]);
  }

  const name = conferenceName(spec.id);
  const provider = new k8s.Provider(name, {
    kubeconfig: pulumi.secret(cluster.kubeconfig),
    // The conference belongs to this cluster: refreshed credentials update the provider, never replace the conference.
    clusterIdentifier: spec.cluster,
  });
  const jitsi = new JitsiConference(name, {
    ...spec,
    provider,
    exposure: cluster.exposure,
    ...(cluster.publicAddress === undefined ? {} : { publicAddress: cluster.publicAddress }),
    ...(tls === undefined ? {} : { tls: { domain: tls.domain, certificate: pulumi.secret(tls.certificate), key: pulumi.secret(tls.key) } }),
  });
  return { url: jitsi.url, namespace: jitsi.namespace, cluster: jitsi.cluster, mediaEndpoint: jitsi.mediaEndpoint };
}
