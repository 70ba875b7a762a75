import ipaddr from "ipaddr.js";
import { z } from "zod";
import { InvalidArgumentsError } from "../errors.ts";
import { HOST_NAME, expected, latitude, longitude, parseOrThrow } from "../validation.ts";

/**
 * The testbed stack's contract (ARCHITECTURE.md "Stack contracts"): its config keys, the site
 * schema they are read with, the paper's seven sites as the default, and the `clusters` output
 * that conference stacks and the service read.
 */

/** Config keys of the testbed stack, in the project's namespace. */
export const TESTBED_CONFIG = { sites: "sites", kubeconfigs: "kubeconfigs" } as const;

export const PROVIDERS = ["gke", "kubeconfig"] as const;
export type SiteProvider = (typeof PROVIDERS)[number];

/** How a cluster makes a conference's web and media ports reachable from the internet. */
export const EXPOSURES = ["loadBalancer", "nodePort"] as const;
export type Exposure = (typeof EXPOSURES)[number];

/**
 * vCPUs and memory of the GCE machine types we know, so that a site's capacity follows from its
 * machine type. GCE quotes memory in binary gigabytes ("3.75 GB" = 3840 MiB):
 * https://cloud.google.com/compute/docs/general-purpose-machines
 */
export const KNOWN_MACHINE_TYPES: Readonly<Record<string, { vcpu: number; memoryGiB: number }>> = {
  "n1-standard-1": { vcpu: 1, memoryGiB: 3.75 },
  "n1-standard-2": { vcpu: 2, memoryGiB: 7.5 },
  "n1-standard-4": { vcpu: 4, memoryGiB: 15 },
  "e2-standard-2": { vcpu: 2, memoryGiB: 8 },
  "e2-standard-4": { vcpu: 4, memoryGiB: 16 },
};

/** The paper's machine: 1 vCPU, 3.75 GB (seed 000, "Evaluation"). */
export const DEFAULT_MACHINE_TYPE = "n1-standard-1";
/** The paper ran the conference on one node and the load generator on another. */
export const DEFAULT_NODE_COUNT = 2;
/** The paper's nodes had 80 or 100 GB of network-attached disk. */
export const DEFAULT_DISK_SIZE_GB = 100;
/** Standard persistent disk: the paper's disks were "hard disks shared over network". */
export const DEFAULT_DISK_TYPE = "pd-standard";
export const DEFAULT_RELEASE_CHANNEL = "REGULAR";
/** A testbed is torn down often; GKE's own default (true) would make `pulumi destroy` fail. */
export const DEFAULT_DELETION_PROTECTION = false;
/** Zonal, one zone per site as the paper lists them; a regional cluster has its nodes in every zone. */
export const DEFAULT_REGIONAL = false;
/** The testbed runs with Cloud Logging and Monitoring off (ARCHITECTURE.md "Stack contracts"). */
export const DEFAULT_LOGGING = false;
export const DEFAULT_MONITORING = false;
export const DEFAULT_NETWORK = "default";
/** Participants join from anywhere, so media is open to the internet, and only media. */
export const DEFAULT_MEDIA_SOURCE_RANGES: readonly string[] = ["0.0.0.0/0"];
/** GKE gets cloud load balancers; existing clusters (flannel, no cloud LB) use node ports. */
export const DEFAULT_EXPOSURE: Readonly<Record<SiteProvider, Exposure>> = {
  gke: "loadBalancer",
  kubeconfig: "nodePort",
};

// Upper bounds that catch a unit or scope mix-up (millicores for cores, MiB for GiB, the whole
// cluster for one node) before it reaches a plan.
/** GKE allows at most 1,000 nodes per node pool in a zone (https://cloud.google.com/kubernetes-engine/quotas). */
export const MAX_NODES = 1000;
/** Above any node a conference cluster uses; 4000 is 4 cores given in millicores. */
export const MAX_VCPU_PER_NODE = 512;
/** 24 TiB, above any node a conference cluster uses; 32768 is 32 GiB given in MiB. */
export const MAX_MEMORY_GIB_PER_NODE = 24576;
/** A persistent disk holds at most 64 TiB (https://cloud.google.com/compute/docs/disks). */
export const MAX_DISK_SIZE_GB = 65536;
/** GKE's smallest boot disk. */
export const MIN_DISK_SIZE_GB = 10;

export const DISK_TYPES = ["pd-standard", "pd-balanced", "pd-ssd"] as const;
export const RELEASE_CHANNELS = ["RAPID", "REGULAR", "STABLE", "EXTENDED"] as const;
const oneOf = (values: readonly string[]) => `one of ${values.map((value) => `"${value}"`).join(", ")}`;

const MAX_SITE_NAME_LENGTH = 30;
/** A DNS label that starts with a letter, as GKE cluster names must. */
const SITE_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

const siteName = z
  .string({ error: expected("a string", 'name the site with a DNS label, e.g. "gcp-us-west1"') })
  .max(MAX_SITE_NAME_LENGTH, {
    error: `is longer than ${MAX_SITE_NAME_LENGTH} characters; shorten it (GKE cluster names are limited to 40 including Pulumi's suffix)`,
  })
  .regex(SITE_NAME, {
    error: "is not a DNS label; use lowercase letters, digits and '-', starting with a letter, e.g. \"gcp-us-west1\"",
  });

/** Where a cluster is; the decision maker measures participants' distance to it. */
export const clusterLocation = z.strictObject(
  {
    city: z.string({ error: expected("a string", "give the city the cluster is in") }).min(1, { error: "is empty; give the city the cluster is in" }),
    country: z.string({ error: expected("a string", "give the country the cluster is in") }).min(1, { error: "is empty; give the country the cluster is in" }),
    lat: latitude,
    lon: longitude,
  },
  { error: expected("a map", "give { city, country, lat, lon }") },
);

const nodeCount = z
  .number({ error: expected("a number", "give the number of nodes, e.g. 2") })
  .int({ error: (issue) => `${String(issue.input)} is not a whole number; give a whole number of nodes of at least 1` })
  .min(1, { error: (issue) => `${String(issue.input)} is not allowed; give a whole number of nodes of at least 1` })
  .max(MAX_NODES, { error: (issue) => `${String(issue.input)} is more than ${MAX_NODES}; give the number of nodes of this cluster, at most ${MAX_NODES}` });

const perNode = (what: string, max: number, mixUp: string) =>
  z
    .number({ error: expected("a number", `give the ${what} of one node`) })
    .positive({ error: `must be positive; give the ${what} of one node` })
    .max(max, { error: (issue) => `${String(issue.input)} is more than ${max}; give the ${what} of one node (${mixUp})` });
const vcpuPerNode = perNode("vCPU count", MAX_VCPU_PER_NODE, "not millicores");
const memoryGiBPerNode = perNode("memory in GiB", MAX_MEMORY_GIB_PER_NODE, "not MiB");

/** An IPv4 address or a DNS name. */
const publicAddress = z.string({ error: expected("a string", "give the address at which the nodes are reachable") }).regex(HOST_NAME, {
  error: (issue) => `${JSON.stringify(issue.input)} is neither an IPv4 address nor a DNS name; give the address at which the nodes are reachable`,
});

const exposure = z.enum(EXPOSURES, {
  error: (issue) => `${JSON.stringify(issue.input)} is not an exposure mode; use "loadBalancer" or "nodePort"`,
});

/** An IPv4 or IPv6 range in CIDR notation, e.g. "203.0.113.0/24" (IPv4 addresses in four decimal parts). */
function isCidr(text: string): boolean {
  const [address = "", prefix, ...rest] = text.split("/");
  if (prefix === undefined || rest.length > 0 || !/^\d{1,3}$/.test(prefix)) {
    return false;
  }
  return (ipaddr.IPv4.isValidFourPartDecimal(address) && Number(prefix) <= 32) || (ipaddr.IPv6.isValid(address) && Number(prefix) <= 128);
}

const sourceRange = z.string({ error: expected("a string", 'give a CIDR range, e.g. "203.0.113.0/24"') }).refine(isCidr, {
  error: (issue) => `${JSON.stringify(issue.input)} is not a CIDR range; give e.g. "203.0.113.0/24", or "0.0.0.0/0" for anywhere`,
});

const flag = (fix: string) => z.boolean({ error: expected("true or false", fix) });

const gkeSite = z
  .strictObject({
    name: siteName,
    provider: z.literal("gke"),
    location: clusterLocation,
    exposure: exposure.default(DEFAULT_EXPOSURE.gke),
    publicAddress: publicAddress.optional(),
    region: z
      .string({
        error: (issue) =>
          issue.input === undefined ? 'is required for a gke site; set the GCP region, e.g. "us-west1"' : expected("a string", 'set the GCP region, e.g. "us-west1"')(issue),
      })
      .min(1, { error: 'is empty; set the GCP region, e.g. "us-west1"' }),
    zone: z.string({ error: expected("a string", 'give a zone of the region, e.g. "us-west1-b"') }).optional(),
    regional: flag("true for a regional cluster, false for a zonal one").default(DEFAULT_REGIONAL),
    nodes: nodeCount.default(DEFAULT_NODE_COUNT),
    machineType: z.string({ error: expected("a string", `give a GCE machine type, e.g. "${DEFAULT_MACHINE_TYPE}"`) }).default(DEFAULT_MACHINE_TYPE),
    vcpuPerNode: vcpuPerNode.optional(),
    memoryGiBPerNode: memoryGiBPerNode.optional(),
    diskSizeGb: z
      .number({ error: expected("a number", `give the boot disk's size in GB, e.g. ${DEFAULT_DISK_SIZE_GB}`) })
      .int({ error: (issue) => `${String(issue.input)} is not a whole number; give the boot disk's size in GB` })
      .min(MIN_DISK_SIZE_GB, { error: `must be at least ${MIN_DISK_SIZE_GB} (GKE's minimum boot disk)` })
      .max(MAX_DISK_SIZE_GB, { error: (issue) => `${String(issue.input)} is more than ${MAX_DISK_SIZE_GB}; a persistent disk holds at most ${MAX_DISK_SIZE_GB} GB` })
      .default(DEFAULT_DISK_SIZE_GB),
    diskType: z.enum(DISK_TYPES, { error: expected(oneOf(DISK_TYPES)) }).default(DEFAULT_DISK_TYPE),
    logging: flag("true to send the cluster's logs to Cloud Logging").default(DEFAULT_LOGGING),
    monitoring: flag("true to send the cluster's metrics to Cloud Monitoring").default(DEFAULT_MONITORING),
    releaseChannel: z.enum(RELEASE_CHANNELS, { error: expected(oneOf(RELEASE_CHANNELS)) }).default(DEFAULT_RELEASE_CHANNEL),
    deletionProtection: flag("true to make pulumi destroy fail while it is set").default(DEFAULT_DELETION_PROTECTION),
    network: z
      .string({ error: expected("a string", `give the VPC network, e.g. "${DEFAULT_NETWORK}"`) })
      .min(1, { error: `is empty; give the VPC network, e.g. "${DEFAULT_NETWORK}"` })
      .default(DEFAULT_NETWORK),
    mediaSourceRanges: z
      .array(sourceRange, { error: expected("a list", 'give CIDR ranges, e.g. ["0.0.0.0/0"]') })
      .min(1, { error: 'is empty; give at least one CIDR range, e.g. ["0.0.0.0/0"] for anywhere' })
      .default([...DEFAULT_MEDIA_SOURCE_RANGES]),
  })
  .superRefine((site, ctx) => {
    if (site.regional && site.zone !== undefined) {
      ctx.addIssue({ code: "custom", path: ["zone"], message: "must not be set for a regional cluster; remove it or set regional: false" });
    }
    if (!site.regional && site.zone === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["zone"],
        message: `is required for a zonal gke site; set a zone of ${site.region}, e.g. "${site.region}-b", or set regional: true`,
      });
    }
    if (site.zone !== undefined && !site.zone.startsWith(`${site.region}-`)) {
      ctx.addIssue({ code: "custom", path: ["zone"], message: `"${site.zone}" is not in region "${site.region}"; use a zone such as "${site.region}-b"` });
    }
    if (site.exposure === "nodePort" && site.publicAddress === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["publicAddress"],
        message: "is required for a gke site with nodePort exposure; give an address at which its nodes are reachable from the internet",
      });
    }
    const known = KNOWN_MACHINE_TYPES[site.machineType];
    if (known === undefined && (site.vcpuPerNode === undefined || site.memoryGiBPerNode === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["machineType"],
        message: `"${site.machineType}" is not a machine type this program knows; set vcpuPerNode and memoryGiBPerNode for it`,
      });
    }
  });

const kubeconfigSite = z
  .strictObject({
    name: siteName,
    provider: z.literal("kubeconfig"),
    location: clusterLocation,
    exposure: exposure.default(DEFAULT_EXPOSURE.kubeconfig),
    publicAddress: publicAddress.optional(),
    nodes: nodeCount.default(DEFAULT_NODE_COUNT),
    vcpuPerNode,
    memoryGiBPerNode,
    context: z
      .string({ error: expected("a string", "name a context of the kubeconfig") })
      .min(1, { error: "is empty; name a context of the kubeconfig, or leave it out for its current-context" })
      .optional(),
  });

const site = z.discriminatedUnion("provider", [gkeSite, kubeconfigSite], {
  error: (issue) => {
    if (typeof issue.input !== "object" || issue.input === null || Array.isArray(issue.input)) {
      return expected("a map", "give a site { name, provider, location, ... }")(issue);
    }
    const given = (issue.input as { provider?: unknown } | undefined)?.provider;
    return given === undefined
      ? `is required; set provider to "gke" or "kubeconfig"`
      : `${JSON.stringify(given)} is not a known provider kind; use "gke" or "kubeconfig"`;
  },
});

const sites = z
  .array(site, { error: expected("a list of sites") })
  .min(1, { error: "is empty; give at least one site" })
  .superRefine((list, ctx) => {
    const firstIndex = new Map<string, number>();
    list.forEach((entry, index) => {
      const earlier = firstIndex.get(entry.name);
      if (earlier === undefined) {
        firstIndex.set(entry.name, index);
      } else {
        ctx.addIssue({
          code: "custom",
          path: [index, "name"],
          message: `"${entry.name}" is already the name of sites[${earlier}]; give every site a unique name`,
        });
      }
    });
  });

/** A site as written in config: optional fields may be left out. */
export type SiteInput = z.input<typeof site>;
/**
 * A validated site with every default applied. Parsing a Site again gives the same Site, so a
 * stack can pass what it parsed to a component, which validates its arguments once more.
 */
export type Site = z.output<typeof site>;
export type GkeSite = Extract<Site, { provider: "gke" }>;
export type KubeconfigSite = Extract<Site, { provider: "kubeconfig" }>;

/** Nodes, vCPUs and memory per node of a site: given, or known from its machine type. */
export function siteCapacity(site: Site): TestbedCluster["capacity"] {
  if (site.provider === "kubeconfig") {
    return { nodes: site.nodes, vcpuPerNode: site.vcpuPerNode, memoryGiBPerNode: site.memoryGiBPerNode };
  }
  // The schema refuses a machine type it does not know unless both amounts are given.
  const known = KNOWN_MACHINE_TYPES[site.machineType];
  return { nodes: site.nodes, vcpuPerNode: site.vcpuPerNode ?? known?.vcpu ?? 0, memoryGiBPerNode: site.memoryGiBPerNode ?? known?.memoryGiB ?? 0 };
}

/**
 * Validates a site list and applies defaults. Throws an InvalidArgumentsError naming each bad key
 * under `keyPrefix` (e.g. `switch-vaas:sites[2].region`) and how to fix it.
 */
export function parseSites(value: unknown, keyPrefix: string): Site[] {
  return parseOrThrow(sites, value, keyPrefix);
}

/**
 * The seven clusters of the paper's evaluation (seed 000, "Evaluation"). Coordinates are of the
 * named city. The paper gives the existing clusters' machines (flexiOps: 4 vCPUs, Arnes: 1 vCPU;
 * 3.75 or 4 GB) but not how many nodes they had; two is the least it ran on (conference + load
 * generator). GKE zones are ones that exist in each region
 * (https://cloud.google.com/compute/docs/regions-zones).
 */
/** A GKE site of the paper: "gcp-<region>", zonal in "<region>-b", every other setting the default. */
function paperGkeSite(region: string, location: SiteInput["location"]): SiteInput {
  return { name: `gcp-${region}`, provider: "gke", location, region, zone: `${region}-b` };
}

export const DEFAULT_SITES: readonly SiteInput[] = [
  {
    name: "flexiops-edinburgh",
    provider: "kubeconfig",
    location: { city: "Edinburgh", country: "GB", lat: 55.9533, lon: -3.1883 },
    nodes: 2,
    vcpuPerNode: 4,
    memoryGiBPerNode: 4,
  },
  {
    name: "arnes-ljubljana",
    provider: "kubeconfig",
    location: { city: "Ljubljana", country: "SI", lat: 46.0569, lon: 14.5058 },
    nodes: 2,
    vcpuPerNode: 1,
    memoryGiBPerNode: 4,
  },
  paperGkeSite("us-west1", { city: "The Dalles", country: "US", lat: 45.5946, lon: -121.1787 }),
  paperGkeSite("europe-west1", { city: "St. Ghislain", country: "BE", lat: 50.4542, lon: 3.8183 }),
  paperGkeSite("asia-east1", { city: "Changhua County", country: "TW", lat: 24.0518, lon: 120.5161 }),
  paperGkeSite("asia-southeast1", { city: "Jurong West", country: "SG", lat: 1.3404, lon: 103.709 }),
  paperGkeSite("asia-northeast1", { city: "Tokyo", country: "JP", lat: 35.6762, lon: 139.6503 }),
];

/** Kubeconfigs by site name. Secret: no message quotes a value. */
const SET_KUBECONFIG = `pulumi config set --secret --path '${TESTBED_CONFIG.kubeconfigs}.<site>' "$(cat kubeconfig.yaml)"`;
const kubeconfigs = z.record(z.string(), z.string({ error: expected("a string", `give the kubeconfig file's contents as text: ${SET_KUBECONFIG}`) }), {
  error: expected("a map from site name to kubeconfig", `set each site's: ${SET_KUBECONFIG}`),
});

/** Validates the kubeconfigs config; errors name each bad entry under `keyPrefix`, never its value. */
export function parseKubeconfigs(value: unknown, keyPrefix: string): Record<string, string> {
  return parseOrThrow(kubeconfigs, value, keyPrefix);
}

/**
 * Validates a testbed: the site list, and a kubeconfig for exactly the kubeconfig sites (by the
 * names of the kubeconfigs given). Messages name keys under `keyPrefix`; a stack passes
 * "switch-vaas:" so that they name its config keys and say how to set them.
 */
export function parseTestbed(value: { sites: unknown; kubeconfigNames: readonly string[] }, keyPrefix: string): Site[] {
  const sites = parseSites(value.sites, `${keyPrefix}${TESTBED_CONFIG.sites}`);
  const given = new Set(value.kubeconfigNames);
  const key = (site: string) => `${keyPrefix}${TESTBED_CONFIG.kubeconfigs}.${site}`;
  const howToSet = (site: string) => (keyPrefix === "" ? "" : `: pulumi config set --secret --path '${TESTBED_CONFIG.kubeconfigs}.${site}' "$(cat kubeconfig.yaml)"`);
  const problems: string[] = [];
  for (const site of sites) {
    if (site.provider === "kubeconfig" && !given.has(site.name)) {
      problems.push(`${key(site.name)} is missing; the kubeconfig site "${site.name}" needs its cluster's kubeconfig${howToSet(site.name)}`);
    }
  }
  const kubeconfigSites = new Set(sites.filter((site) => site.provider === "kubeconfig").map((site) => site.name));
  for (const name of given) {
    if (!kubeconfigSites.has(name)) {
      problems.push(`${key(name)} names no kubeconfig site; remove it or add a kubeconfig site called "${name}"`);
    }
  }
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  return sites;
}

const positive = (what: string) => z.number({ error: expected("a number", `give the ${what}`) }).positive({ error: "must be positive" });

/** How much a cluster has: the decision maker checks that a conference's pod fits. */
export const clusterCapacity = z.object(
  { nodes: positive("number of nodes"), vcpuPerNode: positive("vCPU count of one node"), memoryGiBPerNode: positive("memory of one node in GiB") },
  { error: expected("a map", "give { nodes, vcpuPerNode, memoryGiBPerNode }") },
);

/**
 * The testbed stack's `clusters` output as other stacks and the service read it (resolved, through
 * a StackReference). The component builds the same shape with Outputs for its secrets.
 */
export const testbedCluster = z.object({
  provider: z.enum(PROVIDERS),
  /** GCP region (gke sites). */
  region: z.string().optional(),
  /** GCP zone (zonal gke sites). */
  zone: z.string().optional(),
  location: clusterLocation,
  /** Secret. */
  kubeconfig: z.string().min(1),
  exposure: z.enum(EXPOSURES),
  /**
   * nodePort clusters: where their node ports are reachable from the internet. The site's
   * publicAddress, else (kubeconfig sites) the host of the kubeconfig's API server.
   */
  publicAddress: z.string().optional(),
  capacity: clusterCapacity,
});
export const testbedClusters = z.record(z.string(), testbedCluster);

/** The outputs of a testbed stack. */
export const TESTBED_OUTPUTS = { clusters: "clusters" } as const;

export type TestbedClusters = z.output<typeof testbedClusters>;
export type TestbedCluster = z.output<typeof testbedCluster>;
