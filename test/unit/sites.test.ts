import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_EXPOSURE, DEFAULT_SITES, KNOWN_MACHINE_TYPES, type SiteInput, parseSites, siteCapacity } from "../../domain/contracts/testbed.ts";
import { InvalidArgumentsError } from "../../domain/errors.ts";
import { invalidArgumentsMessage } from "../support/validation.ts";

const location = { city: "Ljubljana", country: "SI", lat: 46.05, lon: 14.5 };
const gke = { name: "gcp-x", provider: "gke", region: "europe-west1", zone: "europe-west1-b", location } as const;
const existing = { name: "arnes", provider: "kubeconfig", location, vcpuPerNode: 1, memoryGiBPerNode: 4 } as const;

function messageOf(value: unknown): string {
  return invalidArgumentsMessage(() => parseSites(value, "sites"));
}

describe("parseSites", () => {
  it.each([
    ["a zonal site without zone", [{ ...gke, zone: undefined }], 'sites[0].zone is required for a zonal gke site; set a zone of europe-west1, e.g. "europe-west1-b", or set regional: true'],
    ["a zone outside the region", [{ ...gke, zone: "us-west1-b" }], 'sites[0].zone "us-west1-b" is not in region "europe-west1"; use a zone such as "europe-west1-b"'],
    ["a zone on a regional site", [{ ...gke, regional: true }], "sites[0].zone must not be set for a regional cluster; remove it or set regional: false"],
    ["an unknown machine type without capacity", [{ ...gke, machineType: "c3-standard-4" }], 'sites[0].machineType "c3-standard-4" is not a machine type this program knows; set vcpuPerNode and memoryGiBPerNode for it'],
    ["a misspelt key", [{ ...gke, regoin: "x" }], 'sites[0] has an unknown key "regoin"; remove it or correct its spelling'],
    ["a name that is not a DNS label", [{ ...gke, name: "GCP_x" }], `sites[0].name is not a DNS label; use lowercase letters, digits and '-', starting with a letter, e.g. "gcp-us-west1"`],
    ["a name too long for GKE", [{ ...gke, name: "a".repeat(31) }], "sites[0].name is longer than 30 characters; shorten it (GKE cluster names are limited to 40 including Pulumi's suffix)"],
    ["a fractional node count", [{ ...gke, nodes: 1.5 }], "sites[0].nodes 1.5 is not a whole number; give a whole number of nodes of at least 1"],
    ["an unknown exposure", [{ ...gke, exposure: "ingress" }], 'sites[0].exposure "ingress" is not an exposure mode; use "loadBalancer" or "nodePort"'],
    ["a gke node-port site without a public address", [{ ...gke, exposure: "nodePort" }], "sites[0].publicAddress is required for a gke site with nodePort exposure; give an address at which its nodes are reachable from the internet"],
    ["a public address that is no address", [{ ...existing, publicAddress: "not an address" }], 'sites[0].publicAddress "not an address" is neither an IPv4 address nor a DNS name; give the address at which the nodes are reachable'],
    ["a kubeconfig site without capacity", [{ ...existing, vcpuPerNode: undefined }], "sites[0].vcpuPerNode is required; give the vCPU count of one node"],
    ["a missing location", [{ ...gke, location: undefined }], "sites[0].location is required; give { city, country, lat, lon }"],
    ["an empty list", [], "sites is empty; give at least one site"],
    ["something that is not a list", { sites: [] }, "sites must be a list of sites"],
    ["a node count as text", [{ ...gke, nodes: "2" }], "sites[0].nodes must be a number; give the number of nodes, e.g. 2"],
    ["more nodes than a node pool may have", [{ ...gke, nodes: 1001 }], "sites[0].nodes 1001 is more than 1000; give the number of nodes of this cluster, at most 1000"],
    ["vCPUs in millicores", [{ ...existing, vcpuPerNode: 4000 }], "sites[0].vcpuPerNode 4000 is more than 512; give the vCPU count of one node (not millicores)"],
    ["memory in MiB", [{ ...existing, memoryGiBPerNode: 32768 }], "sites[0].memoryGiBPerNode 32768 is more than 24576; give the memory in GiB of one node (not MiB)"],
    ["a boot disk larger than a persistent disk can be", [{ ...gke, diskSizeGb: 65537 }], "sites[0].diskSizeGb 65537 is more than 65536; a persistent disk holds at most 65536 GB"],
    ["a source range that is no CIDR", [{ ...gke, mediaSourceRanges: ["0.0.0.0"] }], 'sites[0].mediaSourceRanges[0] "0.0.0.0" is not a CIDR range; give e.g. "203.0.113.0/24", or "0.0.0.0/0" for anywhere'],
    ["an empty list of source ranges", [{ ...gke, mediaSourceRanges: [] }], 'sites[0].mediaSourceRanges is empty; give at least one CIDR range, e.g. ["0.0.0.0/0"] for anywhere'],
    ["a release channel that does not exist", [{ ...gke, releaseChannel: "BETA" }], 'sites[0].releaseChannel must be one of "RAPID", "REGULAR", "STABLE", "EXTENDED"'],
  ])("rejects %s", (_case, value, message) => {
    expect(messageOf(value)).toBe(message);
  });

  it("reports every problem, one line each", () => {
    expect(messageOf([{ ...gke, nodes: 0 }, { ...gke, region: undefined }]).split("\n")).toEqual([
      "sites[0].nodes 0 is not allowed; give a whole number of nodes of at least 1",
      'sites[1].region is required for a gke site; set the GCP region, e.g. "us-west1"',
    ]);
  });

  it("accepts IPv4 and IPv6 source ranges and the largest sizes it allows", () => {
    const [site] = parseSites([{ ...gke, nodes: 1000, diskSizeGb: 65536, mediaSourceRanges: ["203.0.113.0/24", "2001:db8::/32"] }], "sites");
    expect(site).toMatchObject({ nodes: 1000, diskSizeGb: 65536, mediaSourceRanges: ["203.0.113.0/24", "2001:db8::/32"] });
  });

  it("accepts the paper's seven default sites", () => {
    const sites = parseSites(DEFAULT_SITES, "sites");
    expect(sites.map((site) => [site.name, site.location.city])).toEqual([
      ["flexiops-edinburgh", "Edinburgh"],
      ["arnes-ljubljana", "Ljubljana"],
      ["gcp-us-west1", "The Dalles"],
      ["gcp-europe-west1", "St. Ghislain"],
      ["gcp-asia-east1", "Changhua County"],
      ["gcp-asia-southeast1", "Jurong West"],
      ["gcp-asia-northeast1", "Tokyo"],
    ]);
  });

  it("does not change the input it is given", () => {
    const input = structuredClone(DEFAULT_SITES);
    parseSites(input, "sites");
    expect(input).toEqual(DEFAULT_SITES);
  });
});

const siteName = fc.stringMatching(/^[a-z][a-z0-9-]{0,28}[a-z0-9]$/);
const coordinates = fc.record({
  city: fc.constant("c"),
  country: fc.constant("XX"),
  lat: fc.double({ min: -90, max: 90, noNaN: true }),
  lon: fc.double({ min: -180, max: 180, noNaN: true }),
});
const machineType = fc.constantFrom(...Object.keys(KNOWN_MACHINE_TYPES));
const gkeSite = fc.record({
  provider: fc.constant("gke" as const),
  location: coordinates,
  region: fc.constant("us-west1"),
  zone: fc.constant("us-west1-a"),
  nodes: fc.integer({ min: 1, max: 50 }),
  machineType,
});
const kubeconfigSite = fc.record({
  provider: fc.constant("kubeconfig" as const),
  location: coordinates,
  nodes: fc.integer({ min: 1, max: 50 }),
  vcpuPerNode: fc.integer({ min: 1, max: 64 }),
  memoryGiBPerNode: fc.double({ min: 0.5, max: 512, noNaN: true }),
});
const siteList = fc
  .uniqueArray(siteName, { minLength: 1, maxLength: 12 })
  .chain((names) => fc.tuple(...names.map((name) => fc.oneof(gkeSite, kubeconfigSite).map((site) => ({ ...site, name })))));

describe("parseSites properties", () => {
  it("accepts any list of well-formed sites with unique names, and works out each one's capacity", () => {
    fc.assert(
      fc.property(siteList, (input) => {
        const sites = parseSites(input, "sites");
        expect(sites.map((site) => site.name)).toEqual(input.map((site) => site.name));
        sites.forEach((site, index) => {
          // A parsed site parses to itself, so stacks can hand components what they parsed.
          expect(parseSites([site], "sites")[0]).toEqual(site);
          const given = input[index]!;
          expect(site.exposure).toBe(DEFAULT_EXPOSURE[site.provider]);
          expect(siteCapacity(site).nodes).toBe(given.nodes);
          const perNode = "machineType" in given ? KNOWN_MACHINE_TYPES[given.machineType]! : { vcpu: given.vcpuPerNode, memoryGiB: given.memoryGiBPerNode };
          expect(siteCapacity(site)).toEqual({ nodes: given.nodes, vcpuPerNode: perNode.vcpu, memoryGiBPerNode: perNode.memoryGiB });
        });
      }),
    );
  });

  it("rejects any list in which a name repeats, naming the later site", () => {
    fc.assert(
      fc.property(siteList, fc.nat(), fc.nat(), (input, from, to) => {
        const copyOf = from % input.length;
        const at = (to % (input.length + 1));
        const withDuplicate: SiteInput[] = [...input.slice(0, at), { ...input[copyOf]! }, ...input.slice(at)];
        const laterIndex = at <= copyOf ? copyOf + 1 : at;
        expect(messageOf(withDuplicate)).toContain(`sites[${laterIndex}].name "${input[copyOf]!.name}" is already the name of`);
      }),
    );
  });

  it("answers any JSON value with either sites or an InvalidArgumentsError, never anything else", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseSites(value, "sites");
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidArgumentsError);
        }
      }),
    );
  });
});
