import { describe, expect, it } from "vitest";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { TESTBED_CLUSTERS, conferenceMocks, nodePortAllocator, runConference } from "../support/conference.ts";

const valid = { id: "physics-101", cluster: "gcp-europe-west1", expectedParticipants: 20, lastN: 5, simulcast: true, resources: { cpu: "2", memory: "3Gi" } };

/** Runs the conference stack; returns what it threw and the types it registered first. */
async function attempt(conference: unknown, options: { tls?: unknown; testbed?: unknown } = {}): Promise<{ error: unknown; registered: string[] }> {
  const mocks = conferenceMocks(nodePortAllocator(), "testbed" in options ? { clusters: options.testbed } : undefined);
  try {
    await runConference(conference, { mocks, ...(options.tls === undefined ? {} : { tls: options.tls }) });
    return { error: undefined, registered: mocks.registrations.map((r) => r.type) };
  } catch (error) {
    return { error, registered: mocks.registrations.map((r) => r.type) };
  }
}

describe("conference stack config errors, found before anything is registered", () => {
  it.each([
    ["an id that is not a DNS label", { ...valid, id: "Physics_101" }, `switch-vaas:conference.id "Physics_101" is not a DNS label; use lowercase letters, digits and '-', starting and ending with a letter or digit`],
    ["an id too long for a namespace", { ...valid, id: "a".repeat(41) }, "switch-vaas:conference.id is longer than 40 characters; shorten it"],
    ["fewer than 1 participant", { ...valid, expectedParticipants: 0 }, "switch-vaas:conference.expectedParticipants 0 is too few; a conference needs at least 1 participant"],
    ["a fractional participant count", { ...valid, expectedParticipants: 2.5 }, "switch-vaas:conference.expectedParticipants 2.5 is not a whole number; give a number of participants of at least 1"],
    ["lastN below -1", { ...valid, lastN: -2 }, "switch-vaas:conference.lastN -2 is below -1; use -1 for unlimited or a number of video streams"],
    ["unparseable CPU", { ...valid, resources: { cpu: "two cores", memory: "3Gi" } }, 'switch-vaas:conference.resources.cpu "two cores" is not a Kubernetes quantity; use e.g. "1500m" or "2"'],
    ["unparseable memory", { ...valid, resources: { cpu: "2", memory: "3GB" } }, 'switch-vaas:conference.resources.memory "3GB" is not a Kubernetes quantity; use e.g. "2Gi" or "1500Mi"'],
    ["too little memory for Jitsi", { ...valid, resources: { cpu: "2", memory: "512Mi" } }, 'switch-vaas:conference.resources.memory "512Mi" is below the 1024Mi a Jitsi pod needs; give at least 1024Mi'],
    ["a simulcast that is not a boolean", { ...valid, simulcast: "yes" }, "switch-vaas:conference.simulcast must be true or false; true to let senders send several qualities, false for one"],
    ["no conference at all", undefined, "switch-vaas:conference is required; give { id, cluster, expectedParticipants, lastN, simulcast, resources }"],
  ])("rejects %s", async (_case, conference, message) => {
    const { error, registered } = await attempt(conference);
    expect(error).toBeInstanceOf(InvalidArgumentsError);
    expect((error as Error).message).toBe(message);
    expect(registered).toEqual([]);
  });

  it("rejects a certificate that is not PEM", async () => {
    const { error, registered } = await attempt(valid, { tls: { domain: "conf.example.org", certificate: "not a certificate", key: "-----BEGIN PRIVATE KEY-----" } });
    expect((error as Error).message).toBe("switch-vaas:tls.certificate is not PEM; give the certificate chain as PEM text");
    expect(registered).toEqual([]);
  });
});

describe("conference stack errors about the testbed, found after reading it and before creating anything", () => {
  it.each([
    [
      "a cluster the testbed does not have",
      { ...valid, cluster: "gcp-us-east1" },
      TESTBED_CLUSTERS,
      'switch-vaas:conference.cluster "gcp-us-east1" is not a cluster of the testbed stack "organization/switch-vaas/testbed"; use one of "arnes-ljubljana", "flexiops-edinburgh", "gcp-europe-west1"',
    ],
    [
      "a testbed that was never brought up",
      valid,
      undefined,
      'switch-vaas:testbedStack "organization/switch-vaas/testbed" has no usable clusters output; bring the testbed up first (pulumi up -s testbed) or name the right stack',
    ],
    [
      "a node-port cluster without a public address",
      { ...valid, cluster: "arnes-ljubljana" },
      { "arnes-ljubljana": { ...TESTBED_CLUSTERS["arnes-ljubljana"], publicAddress: undefined } },
      'switch-vaas:conference.cluster "arnes-ljubljana" uses node ports but the testbed gives no publicAddress for it; set it in the testbed\'s switch-vaas:sites',
    ],
  ])("rejects %s", async (_case, conference, testbed, message) => {
    const { error, registered } = await attempt(conference, { testbed });
    expect(error).toBeInstanceOf(InvalidArgumentsError);
    expect((error as Error).message).toBe(message);
    // Reading the testbed's outputs is how the program learns its clusters; nothing is created.
    expect(registered).toEqual(["pulumi:pulumi:StackReference"]);
  });

  it("accepts the valid conference the tables above vary", async () => {
    const { error, registered } = await attempt(valid);
    expect(error).toBeUndefined();
    expect(registered).toContain("kubernetes:apps/v1:Deployment");
  });
});
