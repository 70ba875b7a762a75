import { z } from "zod";
import { formatBytes, formatMillicores, parseCpuMillicores, parseMemoryBytes } from "../quantity.ts";
import { DNS_LABEL, kubernetesQuantity, parseOrThrow } from "../validation.ts";
import { MIN_POD } from "./jitsi.ts";

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
  .number({ error: "is required; give the number of participants the conference is sized for" })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number; give a number of participants of at least 1` })
  .min(1, { error: (issue) => `${String(issue.input)} is too few; a conference needs at least 1 participant` });

/** Video streams each participant receives, -1 for all; shared with the decision maker's requests. */
export const lastN = z
  .number({ error: "is required; give the last-N value (-1 for unlimited)" })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number; give -1 (unlimited) or a number of video streams` })
  .min(-1, { error: (issue) => `${String(issue.input)} is below -1; use -1 for unlimited or a number of video streams` });

const conferenceSpec = z.strictObject(
  {
    id: z
      .string({ error: 'is required; give the conference a DNS label, e.g. "physics-101"' })
      .max(MAX_ID_LENGTH, { error: `is longer than ${MAX_ID_LENGTH} characters; shorten it` })
      .regex(DNS_LABEL, {
        error: (issue) =>
          `${JSON.stringify(issue.input)} is not a DNS label; use lowercase letters, digits and '-', starting and ending with a letter or digit`,
      }),
    cluster: z.string({ error: "is required; name the testbed cluster to run on" }).min(1, { error: "is empty; name the testbed cluster to run on" }),
    expectedParticipants,
    lastN,
    simulcast: z.boolean({ error: "is required; true to let senders send several qualities, false for one" }),
    resources: z.strictObject(
      { cpu: quantity("cpu"), memory: quantity("memory") },
      { error: 'is required; give { cpu, memory } as Kubernetes quantities, e.g. { cpu: "2", memory: "3Gi" }' },
    ),
  },
  { error: "is required; give { id, cluster, expectedParticipants, lastN, simulcast, resources }" },
);

/** What the service decided about one conference (ARCHITECTURE.md "Stack contracts"). */
export type ConferenceSpec = z.output<typeof conferenceSpec>;

/** Validates a conference spec; errors name each bad field under `keyPrefix` and say how to fix it. */
export function parseConferenceSpec(value: unknown, keyPrefix: string): ConferenceSpec {
  return parseOrThrow(conferenceSpec, value, keyPrefix);
}
