import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { JitsiConference } from "../components/conference/jitsi-conference.ts";
import { parseConferenceSpec } from "../components/conference/spec.ts";
import { testbedClusters } from "../components/testbed/contract.ts";
import { DNS_DOMAIN, InvalidArgumentsError, parseOrThrow } from "../components/validation.ts";

/** The testbed stack of this project on a self-managed (DIY) backend; Pulumi Cloud needs "<org>/switch-vaas/testbed". */
export const DEFAULT_TESTBED_STACK = "organization/switch-vaas/testbed";

const PEM = /-----BEGIN [A-Z ]+-----/;
const tlsConfig = z.strictObject(
  {
    domain: z
      .string({ error: 'is required; give the domain the certificate covers as "*.<domain>", e.g. "conf.example.org"' })
      .regex(DNS_DOMAIN, {
        error: 'is not a domain name; give e.g. "conf.example.org"',
      }),
    certificate: z.string({ error: "is required; give the PEM certificate chain" }).regex(PEM, { error: "is not PEM; give the certificate chain as PEM text" }),
    key: z.string({ error: "is required; give the PEM private key" }).regex(PEM, { error: "is not PEM; give the private key as PEM text" }),
  },
  { error: "must be { domain, certificate, key }" },
);

/**
 * One conference (stack `conf-<id>`): config `switch-vaas:conference` (the service's decision),
 * `switch-vaas:testbedStack` (where the cluster's kubeconfig and exposure come from) and, optionally,
 * `switch-vaas:tls`.
 */
export default async function conference(): Promise<Record<string, pulumi.Input<string>>> {
  const config = new pulumi.Config("switch-vaas");
  const spec = parseConferenceSpec(config.getObject<unknown>("conference"), "switch-vaas:conference");
  const testbedStack = config.get("testbedStack") ?? DEFAULT_TESTBED_STACK;
  // Read plainly to validate; the certificate and key are wrapped as secrets straight away.
  const rawTls = config.getObject<unknown>("tls");
  const tls = rawTls === undefined ? undefined : parseOrThrow(tlsConfig, rawTls, "switch-vaas:tls");

  // The only resource before the checks below: a read of the testbed stack's outputs.
  const testbed = new pulumi.StackReference("testbed", { name: testbedStack });
  const details = await testbed.getOutputDetails("clusters");
  const found = testbedClusters.safeParse(details.secretValue ?? details.value);
  if (!found.success) {
    throw new InvalidArgumentsError([
      `switch-vaas:testbedStack "${testbedStack}" has no usable clusters output; bring the testbed up first (pulumi up -s testbed) or name the right stack`,
    ]);
  }
  const cluster = found.data[spec.cluster];
  if (cluster === undefined) {
    throw new InvalidArgumentsError([
      `switch-vaas:conference.cluster "${spec.cluster}" is not a cluster of the testbed stack "${testbedStack}"; use one of ${Object.keys(found.data)
        .sort()
        .map((name) => `"${name}"`)
        .join(", ")}`,
    ]);
  }
  if (cluster.exposure === "nodePort" && cluster.publicAddress === undefined) {
    throw new InvalidArgumentsError([
      `switch-vaas:conference.cluster "${spec.cluster}" uses node ports but the testbed gives no publicAddress for it; set it in the testbed's switch-vaas:sites`,
    ]);
  }

  const provider = new k8s.Provider(`conf-${spec.id}`, {
    kubeconfig: pulumi.secret(cluster.kubeconfig),
    // The conference belongs to this cluster: refreshed credentials update the provider, never replace the conference.
    clusterIdentifier: spec.cluster,
  });
  const jitsi = new JitsiConference(`conf-${spec.id}`, {
    ...spec,
    provider,
    exposure: cluster.exposure,
    ...(cluster.publicAddress === undefined ? {} : { publicAddress: cluster.publicAddress }),
    ...(tls === undefined ? {} : { tls: { domain: tls.domain, certificate: pulumi.secret(tls.certificate), key: pulumi.secret(tls.key) } }),
  });
  return { url: jitsi.url, namespace: jitsi.namespace, cluster: jitsi.cluster, mediaEndpoint: jitsi.mediaEndpoint };
}
