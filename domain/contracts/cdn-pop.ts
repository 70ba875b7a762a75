import ipaddr from "ipaddr.js";
import { z } from "zod";
import { InvalidArgumentsError } from "../errors.ts";
import { DNS_DOMAIN, DNS_LABEL, expected, parseOrThrow } from "../validation.ts";
import { ROLES, type Role } from "../wae/model.ts";
import { type AddressPool, ipv4ToInt, usableAddresses } from "../wae/network.ts";
import { MAX_LINK_MBPS, edgeRole } from "../wae/schema.ts";

/**
 * The cdn-pop stack's contract (ARCHITECTURE.md "Stack contracts"): a CDN point of presence as
 * stack `pop-<name>` takes it — hosts, the WAE's edge layout, and an address for every container.
 * Besides the edges, one host each runs the load balancer ("lb"), the mid-cache ("mid") and the
 * DNS ("dns"), placed by their address keys.
 */

/** Config keys of a cdn-pop stack, in the project's namespace. */
export const CDN_POP_CONFIG = { pop: "pop", reportKeys: "reportKeys" } as const;

/** The stack of a PoP. */
export function popStackName(pop: string): string {
  return `pop-${pop}`;
}

export const SERVICES = ["lb", "mid", "dns"] as const;
export type Service = (typeof SERVICES)[number];
/** Every host runs an instance manager ("im"), on the PoP network so it reaches the host's edges. */
export const INSTANCE_MANAGER = "im";
export type Component = Role | Service | typeof INSTANCE_MANAGER;

const label = (what: string) =>
  z.string({ error: expected("a string", `name the ${what} with a DNS label`) }).regex(DNS_LABEL, {
    error: (issue) => `${JSON.stringify(issue.input)} is not a DNS label; use lowercase letters, digits and '-'`,
  });

/** The default when a host does not give its link's capacity: gigabit Ethernet. */
export const DEFAULT_LINK_MBPS = 1000;

const isIpv4Cidr = (text: string) => ipaddr.IPv4.isValidCIDRFourPartDecimal(text);
const isIpv4 = (text: string) => ipaddr.IPv4.isValidFourPartDecimal(text);
const REPORT_PROTOCOL = /^https?$/;

const popHost = z.strictObject(
  {
    name: label("host"),
    dockerHost: z
      .string({ error: expected("a string", 'give the Docker daemon, e.g. "ssh://pop@host1" or "unix:///var/run/docker.sock"') })
      .regex(/^(ssh|tcp|unix|npipe):\/\//, {
        error: (issue) => `${JSON.stringify(issue.input)} is not a Docker host URL; use ssh://, tcp:// or unix://`,
      }),
    sshOpts: z
      .array(z.string({ error: expected("a string", "give one ssh argument per entry") }), {
        error: expected("a list of ssh arguments", 'give e.g. ["-o", "StrictHostKeyChecking=yes"]'),
      })
      .optional(),
    parentInterface: z
      .string({ error: expected("a string", 'name the host\'s network interface, e.g. "eth0"') })
      .min(1, { error: 'is empty; name the host\'s network interface, e.g. "eth0", or leave it out for a bridge network' })
      .optional(),
    subnet: z.string({ error: expected("a string", 'give the edges\' IPv4 network, e.g. "192.0.2.0/24"') }).refine(isIpv4Cidr, {
      error: (issue) => `${JSON.stringify(issue.input)} is not an IPv4 CIDR range; give the edges' network, e.g. "192.0.2.0/24"`,
    }),
    linkMbps: z
      .number({ error: expected("a number", `give the parent interface's capacity in Mbit/s, e.g. ${DEFAULT_LINK_MBPS}`) })
      .positive({ error: "must be positive; give the parent interface's capacity in Mbit/s" })
      .max(MAX_LINK_MBPS, { error: (issue) => `${String(issue.input)} is more than ${MAX_LINK_MBPS}; give the parent interface's capacity in Mbit/s (not kbit/s)` })
      .default(DEFAULT_LINK_MBPS),
    gateway: z.string({ error: expected("a string", 'give the network\'s router address, e.g. "192.0.2.1"') }).refine(isIpv4, {
      error: (issue) => `${JSON.stringify(issue.input)} is not an IPv4 address; give the network's router address, e.g. "192.0.2.1"`,
    }),
  },
  { error: expected("a map", "give a host { name, dockerHost, subnet, gateway }") },
);

const popSpec = z
  .strictObject(
    {
      name: label("PoP"),
      hosts: z
        .array(popHost, { error: expected("a list of hosts", "give at least one { name, dockerHost, subnet, gateway }") })
        .min(1, { error: "is empty; a PoP needs at least one host" }),
      layout: z.record(z.string(), z.array(edgeRole, { error: expected("a list of edge roles", `give e.g. [${ROLES.join(", ")}]`) }), {
        error: expected("a map from host name to edge roles", "give e.g. { host1: [small, vod] }"),
      }),
      addresses: z.record(z.string(), z.string({ error: expected("a string", 'give an IPv4 address, e.g. "192.0.2.20"') }), {
        error: expected("a map from \"<host>/<role>\" to IPv4 address", 'give e.g. { "host1/lb": "192.0.2.10" }'),
      }),
      reportEndpoint: z.url({
        protocol: REPORT_PROTOCOL,
        error: (issue) =>
          typeof issue.input === "string"
            ? `${JSON.stringify(issue.input)} is not an http(s) URL; give the URL the instance managers send their reports to, e.g. "https://switch-vaas.example.org/v1/pops/vienna/reports"`
            : expected("a string", "give the URL the instance managers send their reports to")(issue),
      }),
      origin: z.string({ error: expected("a string", 'give the origin as "host:port"') }).regex(/^[^\s:]+:\d+$/, {
        error: (issue) => `${JSON.stringify(issue.input)} is not "host:port"; give the origin as e.g. "origin.example.org:80"`,
      }),
      registry: z
        .string({ error: expected("a string", 'give the registry the role images are pushed to (npm run images), e.g. "registry.example.org/switch-vaas"') })
        .min(1, { error: 'is empty; give the registry the role images are pushed to (npm run images), e.g. "registry.example.org/switch-vaas"' }),
      imageTag: z
        .string({ error: expected("a string", 'give the tag the role images were pushed with, e.g. "0.1.0"') })
        .min(1, { error: 'is empty; give the tag the role images were pushed with, e.g. "0.1.0"' }),
      zone: z
        .string({ error: expected("a string", 'give the PoP\'s DNS zone, e.g. "vienna.cdn.example.org"') })
        .regex(DNS_DOMAIN, { error: (issue) => `${JSON.stringify(issue.input)} is not a DNS zone; give e.g. "vienna.cdn.example.org"` })
        .optional(),
    },
    { error: expected("a map", "give { name, hosts, layout, addresses, reportEndpoint, origin, registry, imageTag }") },
  )
  .superRefine((pop, ctx) => {
    // A host's pool and its usable addresses, or undefined when its subnet and gateway give none
    // (reported once, here or by their own checks, however many addresses the host has).
    const hosts = new Map<string, { pool: AddressPool; usable: Set<number> } | undefined>();
    pop.hosts.forEach((host, index) => {
      if (hosts.has(host.name)) {
        ctx.addIssue({ code: "custom", path: ["hosts", index, "name"], message: `"${host.name}" is already the name of another host; give every host a unique name` });
      }
      const pool = { subnet: host.subnet, gateway: host.gateway };
      let usable: Set<number> | undefined;
      try {
        usable = usableAddresses(pool).set;
      } catch {
        if (isIpv4Cidr(host.subnet) && isIpv4(host.gateway)) {
          ctx.addIssue({
            code: "custom",
            path: ["hosts", index, "gateway"],
            message: `${JSON.stringify(host.gateway)} is not an address of ${host.subnet}; give the router's address in the subnet`,
          });
        }
      }
      hosts.set(host.name, usable === undefined ? undefined : { pool, usable });
    });
    for (const [host, roles] of Object.entries(pop.layout)) {
      if (!hosts.has(host)) {
        ctx.addIssue({ code: "custom", path: ["layout", host], message: "names no host of the PoP; remove it or add the host to hosts" });
      }
      if (new Set(roles).size !== roles.length) {
        ctx.addIssue({ code: "custom", path: ["layout", host], message: "lists a role twice; a host runs at most one edge of each role" });
      }
    }
    const placed = new Map<Service, string>();
    const taken = new Map<number, string>();
    for (const [key, address] of Object.entries(pop.addresses)) {
      const [host, component, ...rest] = key.split("/");
      if (host === undefined || component === undefined || rest.length > 0 || !hosts.has(host)) {
        ctx.addIssue({ code: "custom", path: ["addresses", key], message: 'is not "<host>/<role>" for a host of the PoP' });
        continue;
      }
      if (!(ROLES as readonly string[]).includes(component) && !(SERVICES as readonly string[]).includes(component) && component !== INSTANCE_MANAGER) {
        ctx.addIssue({ code: "custom", path: ["addresses", key], message: `names "${component}", which is not a role; use an edge role, "lb", "mid", "dns" or "im"` });
        continue;
      }
      if (component === INSTANCE_MANAGER) {
        // One per host, which the key itself ensures.
      } else if ((SERVICES as readonly string[]).includes(component)) {
        const where = placed.get(component as Service);
        if (where !== undefined) {
          ctx.addIssue({ code: "custom", path: ["addresses", key], message: `is a second ${component}; the PoP has one, on ${where}` });
        }
        placed.set(component as Service, host);
      } else if (!(pop.layout[host] ?? []).includes(component as Role)) {
        ctx.addIssue({ code: "custom", path: ["addresses", key], message: `is the address of an edge the layout does not run; remove it or add "${component}" to layout.${host}` });
      }
      const network = hosts.get(host);
      if (network === undefined) {
        continue;
      }
      const value = ipv4ToInt(address);
      if (value === undefined || !network.usable.has(value)) {
        ctx.addIssue({ code: "custom", path: ["addresses", key], message: `${JSON.stringify(address)} is not a usable address of ${host}'s subnet ${network.pool.subnet}` });
      } else if (taken.has(value)) {
        ctx.addIssue({ code: "custom", path: ["addresses", key], message: `${address} is also the address of ${taken.get(value)!}` });
      } else {
        taken.set(value, key);
      }
    }
    for (const [host, roles] of Object.entries(pop.layout)) {
      if (!hosts.has(host)) {
        continue;
      }
      for (const edge of roles) {
        if (pop.addresses[`${host}/${edge}`] === undefined) {
          ctx.addIssue({ code: "custom", path: ["addresses"], message: `has no address for the ${edge} edge on ${host}; add "${host}/${edge}"` });
        }
      }
    }
    for (const host of hosts.keys()) {
      if (pop.addresses[`${host}/${INSTANCE_MANAGER}`] === undefined) {
        ctx.addIssue({ code: "custom", path: ["addresses"], message: `has no address for ${host}'s instance manager; add "${host}/${INSTANCE_MANAGER}"` });
      }
    }
    for (const service of SERVICES) {
      if (!placed.has(service)) {
        ctx.addIssue({ code: "custom", path: ["addresses"], message: `has no ${service}; add "<host>/${service}" with its address` });
      }
    }
  });

export type PopSpec = z.output<typeof popSpec>;
export type PopSpecInput = z.input<typeof popSpec>;

/** Validates a PoP; errors name each bad field under `keyPrefix` and say how to fix it. */
export function parsePopSpec(value: unknown, keyPrefix: string): PopSpec {
  return parseOrThrow(popSpec, value, keyPrefix);
}

/** Every host's report key. Secret: no message quotes a value. */
const SET_REPORT_KEY = `pulumi config set --secret --path '${CDN_POP_CONFIG.reportKeys}.<host>' "$(openssl rand -hex 32)"`;
const reportKeys = z.record(
  z.string(),
  z.string({ error: expected("a string", `give a random key of at least 16 characters: ${SET_REPORT_KEY}`) }).min(16, { error: "is too short; give a random key of at least 16 characters" }),
  { error: expected("a map from host name to key", `set each host's: ${SET_REPORT_KEY}`) },
);

/** Validates the reportKeys config; errors name each bad entry under `keyPrefix`, never its value. */
export function parseReportKeys(value: unknown, keyPrefix: string): Record<string, string> {
  return parseOrThrow(reportKeys, value, keyPrefix);
}

/**
 * Validates a PoP and that exactly its hosts have report keys (by the names of the keys given).
 * Messages name keys under `keyPrefix`; a stack passes "switch-vaas:" so that they name its config
 * keys and say how to set them.
 */
export function parseCdnPop(value: { pop: unknown; reportKeyHosts: readonly string[] }, keyPrefix: string): PopSpec {
  const pop = parsePopSpec(value.pop, `${keyPrefix}${CDN_POP_CONFIG.pop}`);
  const hosts = new Set(pop.hosts.map((host) => host.name));
  const given = new Set(value.reportKeyHosts);
  const key = (host: string) => `${keyPrefix}${CDN_POP_CONFIG.reportKeys}.${host}`;
  const problems = [
    ...pop.hosts
      .filter((host) => !given.has(host.name))
      .map((host) =>
        keyPrefix === ""
          ? `${key(host.name)} is missing; every host's instance manager signs its reports with its own key`
          : `${key(host.name)} is missing; set it: pulumi config set --secret --path '${CDN_POP_CONFIG.reportKeys}.${host.name}' "$(openssl rand -hex 32)"`,
      ),
    ...[...given].filter((host) => !hosts.has(host)).map((host) => `${key(host)} names no host of the PoP; remove it or add the host to ${keyPrefix}${CDN_POP_CONFIG.pop}.hosts`),
  ];
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  return pop;
}

/** The outputs of a cdn-pop stack. */
export const cdnPopOutputs = z.object({
  /** The running edges' "address:port", by role. */
  endpoints: z.record(z.enum(ROLES), z.array(z.string())),
  /** The load balancer's address: where the PoP's clients connect. */
  loadBalancer: z.string(),
  midCache: z.string(),
  dns: z.string(),
});
export type CdnPopOutputs = z.output<typeof cdnPopOutputs>;
