import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RecordingMocks, evaluateOffline } from "../../automation/engine/offline.ts";
import { readStackConfig } from "../../automation/engine/stack-config.ts";
import { kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

/**
 * Each component validates its own plain arguments, whoever constructs it (STYLE habit 18): these
 * construct the components directly, with the names a component's user gives, and pin what they
 * say; nothing is registered before the refusal.
 */

const popLocal = JSON.parse(readStackConfig(join(import.meta.dirname, "..", "..", "stacks", "Pulumi.pop-local.yaml")).config["switch-vaas:pop"]!) as Record<string, unknown>;
const KEY = "key-of-local-0123456789";
const arnes = {
  name: "arnes",
  provider: "kubeconfig",
  location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 },
  vcpuPerNode: 1,
  memoryGiBPerNode: 4,
} as const;
const conference = { id: "physics-101", cluster: "arnes", expectedParticipants: 10, lastN: -1, simulcast: true, resources: { cpu: "2", memory: "3Gi" } };

/** Constructs a component in a program of its own and returns what it threw, checking nothing was registered. */
async function refusal(construct: () => Promise<unknown>): Promise<string> {
  const mocks = new RecordingMocks();
  const message = await invalidArgumentsMessage(() => evaluateOffline(construct, { mocks }));
  expect(mocks.registrations).toEqual([]);
  return message;
}

describe("Testbed", () => {
  const testbed = async (args: unknown) => {
    const { Testbed } = await import("../../components/testbed/testbed.ts");
    return new Testbed("bed", args as ConstructorParameters<typeof Testbed>[1]);
  };

  it.each([
    ["no sites", { sites: [] }, "sites is empty; give at least one site"],
    ["a gke site without its region", { sites: [{ ...arnes, provider: "gke", vcpuPerNode: undefined, memoryGiBPerNode: undefined }] }, 'sites[0].region is required for a gke site; set the GCP region, e.g. "us-west1"'],
    [
      "a kubeconfig site without its kubeconfig",
      { sites: [arnes] },
      'kubeconfigs.arnes is missing; the kubeconfig site "arnes" needs its cluster\'s kubeconfig',
    ],
    [
      "a kubeconfig for no site",
      { sites: [arnes], kubeconfigs: { arnes: kubeconfigWithoutCredentials("https://192.0.2.1:6443", "a"), ghost: "x" } },
      'kubeconfigs.ghost names no kubeconfig site; remove it or add a kubeconfig site called "ghost"',
    ],
  ])("refuses %s", async (_case, args, message) => {
    expect(await refusal(() => testbed(args))).toBe(message);
  });
});

describe("JitsiConference", () => {
  const jitsi = async (args: Record<string, unknown>) => {
    const { JitsiConference } = await import("../../components/conference/jitsi-conference.ts");
    // Arguments are validated before the provider is touched, so a refusal needs none.
    return new JitsiConference("conf", { ...conference, exposure: "loadBalancer", ...args } as unknown as ConstructorParameters<typeof JitsiConference>[1]);
  };

  it.each([
    ["an id that is not a DNS label", { id: "Physics 101" }, 'id "Physics 101" is not a DNS label; use lowercase letters, digits and \'-\', starting and ending with a letter or digit'],
    ["less than the smallest Jitsi pod", { resources: { cpu: "100m", memory: "3Gi" } }, 'resources.cpu "100m" is below the 500m a Jitsi pod needs; give at least 500m'],
    ["node ports without a public address", { exposure: "nodePort" }, "publicAddress is required with nodePort exposure; give an address at which the cluster's nodes are reachable"],
  ])("refuses %s", async (_case, args, message) => {
    expect(await refusal(() => jitsi(args))).toBe(message);
  });
});

describe("CdnPop", () => {
  const cdnPop = async (args: unknown) => {
    const { CdnPop } = await import("../../components/cdn-pop/cdn-pop.ts");
    return new CdnPop("pop", args as ConstructorParameters<typeof CdnPop>[1]);
  };

  it.each([
    [
      "a PoP without hosts",
      { pop: { ...popLocal, hosts: [], layout: {}, addresses: {} }, reportKeys: {} },
      [
        "pop.hosts is empty; a PoP needs at least one host",
        'pop.addresses has no lb; add "<host>/lb" with its address',
        'pop.addresses has no mid; add "<host>/mid" with its address',
        'pop.addresses has no dns; add "<host>/dns" with its address',
      ].join("\n"),
    ],
    ["a host without a report key", { pop: popLocal, reportKeys: {} }, "reportKeys.local is missing; every host's instance manager signs its reports with its own key"],
    ["a report key for no host", { pop: popLocal, reportKeys: { local: KEY, ghost: KEY } }, "reportKeys.ghost names no host of the PoP; remove it or add the host to pop.hosts"],
  ])("refuses %s", async (_case, args, message) => {
    expect(await refusal(() => cdnPop(args))).toBe(message);
  });
});
