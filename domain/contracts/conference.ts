import { z } from "zod";
import { MIN_POD } from "../jitsi.ts";
import { formatBytes, formatMillicores, parseCpuMillicores, parseMemoryBytes } from "../quantity.ts";
import { DNS_DOMAIN, DNS_LABEL, expected, kubernetesQuantity, parseOrThrow } from "../validation.ts";

/**
 * The conference stack's contract (ARCHITECTURE.md "Stack contracts"): stack `conf-<id>` takes
 * the service's whole decision as config, so that a human can reproduce any conference with
 * `pulumi config set` and `pulumi up`.
 */

/** Config keys of a conference stack, in the project's namespace. */
export const CONFERENCE_CONFIG = { conference: "conference", testbedStack: "testbedStack", tls: "tls" } as const;

/** The testbed stack of this project on a self-managed (DIY) backend; Pulumi Cloud needs "<org>/switch-vaas/testbed". */
export const DEFAULT_TESTBED_STACK = "organization/switch-vaas/testbed";

/** What every conference's stack name begins with; no other stack's does. */
export const CONFERENCE_STACK_PREFIX = "conf-";

/** A conference's stack, namespace and Pulumi resource names: `conf-<id>`. */
export function conferenceName(id: string): string {
  return `${CONFERENCE_STACK_PREFIX}${id}`;
}

/** Conference ids become namespace and stack names: `conf-<id>` must stay a DNS label (63 characters). */
const MAX_ID_LENGTH = 40;

const quantity = (kind: "cpu" | "memory") => {
  const parse = kind === "cpu" ? parseCpuMillicores : parseMemoryBytes;
  // The smallest pod that runs four containers, two of them JVMs: each at its floor.
  const minimum = kind === "cpu" ? MIN_POD.millicores : MIN_POD.bytes;
  const shownMinimum = kind === "cpu" ? formatMillicores(minimum) : formatBytes(minimum);
  const example = kind === "cpu" ? '"1500m" or "2"' : '"2Gi" or "1500Mi"';
  return kubernetesQuantity(parse, example).refine((text) => parse(text)! >= minimum, {
    error: (issue) => `${JSON.stringify(issue.input)} is below the ${shownMinimum} a Jitsi pod needs; give at least ${shownMinimum}`,
  });
};

/** Participants a conference is sized for; shared with the decision maker's requests. */
export const expectedParticipants = z
  .number({ error: expected("a number", "give the number of participants the conference is sized for") })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number; give a number of participants of at least 1` })
  .min(1, { error: (issue) => `${String(issue.input)} is too few; a conference needs at least 1 participant` });

/** Video streams each participant receives, -1 for all; shared with the decision maker's requests. */
export const lastN = z
  .number({ error: expected("a number", "give the last-N value (-1 for unlimited)") })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number; give -1 (unlimited) or a number of video streams` })
  .min(-1, { error: (issue) => `${String(issue.input)} is below -1; use -1 for unlimited or a number of video streams` });

const conferenceSpec = z.strictObject(
  {
    /** Conference id, a DNS label of at most 40 characters; the namespace is `conf-<id>`. */
    id: z
      .string({ error: expected("a string", 'give the conference a DNS label, e.g. "physics-101"') })
      .max(MAX_ID_LENGTH, { error: `is longer than ${MAX_ID_LENGTH} characters; shorten it` })
      .regex(DNS_LABEL, {
        error: (issue) =>
          `${JSON.stringify(issue.input)} is not a DNS label; use lowercase letters, digits and '-', starting and ending with a letter or digit`,
      }),
    /** Name of the testbed cluster the conference runs on (labels and outputs). */
    cluster: z.string({ error: expected("a string", "name the testbed cluster to run on") }).min(1, { error: "is empty; name the testbed cluster to run on" }),
    /** Participants the conference is sized for; also the room's hard cap (MAX_PARTICIPANTS). */
    expectedParticipants,
    /** Video streams each participant receives, -1 for all. */
    lastN,
    /** Whether senders send several qualities (simulcast) or one. */
    simulcast: z.boolean({ error: expected("true or false", "true to let senders send several qualities, false for one") }),
    /** The whole pod's CPU and memory as Kubernetes quantities; split across the four containers. */
    resources: z.strictObject(
      { cpu: quantity("cpu"), memory: quantity("memory") },
      { error: expected("a map", 'give { cpu, memory } as Kubernetes quantities, e.g. { cpu: "2", memory: "3Gi" }') },
    ),
  },
  { error: expected("a map", "give { id, cluster, expectedParticipants, lastN, simulcast, resources }") },
);

/** What the service decided about one conference (ARCHITECTURE.md "Stack contracts"). */
export type ConferenceSpec = z.output<typeof conferenceSpec>;

/** What the service decided about one conference, as written in config. */
export type ConferenceSpecInput = z.input<typeof conferenceSpec>;

/** Validates a conference spec; errors name each bad field under `keyPrefix` and say how to fix it. */
export function parseConferenceSpec(value: unknown, keyPrefix: string): ConferenceSpec {
  return parseOrThrow(conferenceSpec, value, keyPrefix);
}

const PEM = /-----BEGIN [A-Z ]+-----/;
/** Secret: no message quotes the certificate or the key. */
const tlsConfig = z.strictObject(
  {
    domain: z
      .string({ error: expected("a string", 'give the domain the certificate covers as "*.<domain>", e.g. "conf.example.org"') })
      .regex(DNS_DOMAIN, {
        error: 'is not a domain name; give e.g. "conf.example.org"',
      }),
    certificate: z.string({ error: expected("a string", "give the PEM certificate chain") }).regex(PEM, { error: "is not PEM; give the certificate chain as PEM text" }),
    key: z.string({ error: expected("a string", "give the PEM private key") }).regex(PEM, { error: "is not PEM; give the private key as PEM text" }),
  },
  { error: expected("{ domain, certificate, key }", `set each with pulumi config set --path '${CONFERENCE_CONFIG.tls}.<field>' (--secret for the certificate and the key)`) },
);

export type TlsConfig = z.output<typeof tlsConfig>;

/** Validates the tls config; errors name each bad field under `keyPrefix`, never its value. */
export function parseTlsConfig(value: unknown, keyPrefix: string): TlsConfig {
  return parseOrThrow(tlsConfig, value, keyPrefix);
}

/** The outputs of a conference stack. */
export const conferenceOutputs = z.object({
  /** Where participants join. */
  url: z.string(),
  /** `conf-<id>`. */
  namespace: z.string(),
  cluster: z.string(),
  /** "udp://<address>:<port>": where clients send media to the bridge. */
  mediaEndpoint: z.string(),
});
export type ConferenceOutputs = z.output<typeof conferenceOutputs>;
