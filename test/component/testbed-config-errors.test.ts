import { describe, expect, it } from "vitest";
import { RecordingMocks, evaluateOffline } from "../../automation/engine/offline.ts";
import * as pulumi from "@pulumi/pulumi";
import { kubeconfigWithoutCredentials } from "../../components/testbed/kubeconfig.ts";

const location = { city: "The Dalles", country: "US", lat: 45.59, lon: -121.18 };
const gke = { name: "gcp-us-west1", provider: "gke", region: "us-west1", zone: "us-west1-b", location };
const existing = { name: "local", provider: "kubeconfig", location, vcpuPerNode: 4, memoryGiBPerNode: 16 };

/** Runs the testbed stack on `config`; returns what it threw and how many resources it registered first. */
async function runTestbed(config: Record<string, unknown>): Promise<{ error: unknown; registered: number }> {
  const mocks = new RecordingMocks();
  // As `pulumi config` stores them: strings as they are, everything else as JSON.
  const stringConfig = Object.fromEntries(
    Object.entries(config).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]),
  );
  try {
    await evaluateOffline(async () => (await import("../../stacks/index.ts")).default(), {
      mocks,
      config: stringConfig,
      secretKeys: ["switch-vaas:kubeconfigs"],
    });
    return { error: undefined, registered: mocks.registrations.length };
  } catch (error) {
    return { error, registered: mocks.registrations.length };
  }
}

describe("testbed stack config errors", () => {
  it.each([
    [
      "duplicate site names",
      { "switch-vaas:sites": [gke, { ...gke, zone: "us-west1-c" }] },
      'switch-vaas:sites[1].name "gcp-us-west1" is already the name of sites[0]; give every site a unique name',
    ],
    [
      "an unknown provider kind",
      { "switch-vaas:sites": [{ ...gke, provider: "aws" }] },
      'switch-vaas:sites[0].provider "aws" is not a known provider kind; use "gke" or "kubeconfig"',
    ],
    [
      "a GKE site without region",
      { "switch-vaas:sites": [{ ...gke, region: undefined }] },
      'switch-vaas:sites[0].region is required for a gke site; set the GCP region, e.g. "us-west1"',
    ],
    [
      "a latitude out of range",
      { "switch-vaas:sites": [{ ...gke, location: { ...location, lat: 91 } }] },
      "switch-vaas:sites[0].location.lat 91 is out of range; use decimal degrees between -90 and 90",
    ],
    [
      "a longitude out of range",
      { "switch-vaas:sites": [{ ...gke, location: { ...location, lon: -180.5 } }] },
      "switch-vaas:sites[0].location.lon -180.5 is out of range; use decimal degrees between -180 and 180",
    ],
    [
      "zero nodes",
      { "switch-vaas:sites": [{ ...gke, nodes: 0 }] },
      "switch-vaas:sites[0].nodes 0 is not allowed; give a whole number of nodes of at least 1",
    ],
    [
      "a kubeconfig site without a kubeconfig",
      { "switch-vaas:sites": [existing] },
      `switch-vaas:kubeconfigs.local is missing; the kubeconfig site "local" needs its cluster's kubeconfig: pulumi config set --secret --path 'kubeconfigs.local' "$(cat kubeconfig.yaml)"`,
    ],
    [
      "a kubeconfig for no site",
      { "switch-vaas:sites": [gke], "switch-vaas:kubeconfigs": { elsewhere: "apiVersion: v1" } },
      'switch-vaas:kubeconfigs.elsewhere names no kubeconfig site; remove it or add a kubeconfig site called "elsewhere"',
    ],
    [
      "a program that does not exist",
      { "switch-vaas:program": "tesbed" },
      'switch-vaas:program "tesbed" is not a stack program; use one of "testbed", "conference", "cdn-pop"',
    ],
  ])("rejects %s with one message, before registering anything", async (_case, config, message) => {
    const { error, registered } = await runTestbed(config);
    // Through stacks/index.ts, the entry point the CLI runs: a RunError, which it prints as the message alone.
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe(message);
    expect(registered).toBe(0);
  });

  it("accepts a valid configuration (the control for the table above)", async () => {
    const { error, registered } = await runTestbed({
      "switch-vaas:sites": [gke, existing],
      "switch-vaas:kubeconfigs": { local: kubeconfigWithoutCredentials("https://192.0.2.1:6443", "test") },
    });
    expect(error).toBeUndefined();
    expect(registered).toBeGreaterThan(0);
  });
});
