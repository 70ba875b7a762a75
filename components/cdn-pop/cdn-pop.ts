import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { type CdnPopOutputs, type Component, INSTANCE_MANAGER, type PopSpecInput, type Service, parseCdnPop } from "../../domain/contracts/cdn-pop.ts";
import { serviceDiscovery } from "../../domain/wae/discovery.ts";
import { ROLES } from "../../domain/wae/model.ts";
import { dnsmasqConfig } from "./dns.ts";
import { GIVEN_CONFIG, type RoleImage } from "./images.ts";
import { STATUS_PATH, loadBalancerConfig } from "./nginx.ts";

export interface CdnPopArgs {
  /** The PoP: hosts, the WAE's edge layout and every container's address. Validated first. */
  pop: PopSpecInput;
  /** Each host's key for signing its instance manager's reports, by host name; kept secret. */
  reportKeys: Record<string, pulumi.Input<string>>;
}

/** Every nginx role listens on the HTTP port of its own address on the PoP network. */
const HTTP_PORT = 80;
const DNS_PORT = 53;
/** Where the instance manager sees the host's /proc. */
const HOST_PROC = "/host/proc";
/** The interface whose traffic a bridge-network host reports. */
const DEFAULT_INTERFACE = "eth0";

/**
 * A CDN point of presence on Docker hosts: per host a Docker provider (over SSH for remote hosts)
 * and the PoP network — macvlan on the given parent interface, as in the paper, so every container
 * has its own address on the LAN, or a bridge network when no parent is given (one machine) — and
 * a container of its role image (components/cdn-pop/images.ts, `npm run images`) per running
 * edge, plus the load balancer, mid-cache and DNS where their addresses say.
 *
 * An edge's inputs depend only on its role, its address and the mid-cache's address, so a new
 * layout leaves unchanged edges as they are; containers have fixed names and addresses, so a
 * replaced one is deleted before its successor is created. The load balancer and the DNS role list
 * the edges, so they are replaced when the set of edges changes.
 */
export class CdnPop extends pulumi.ComponentResource {
  /** The stack's outputs (domain/contracts/cdn-pop.ts documents each). */
  readonly endpoints: CdnPopOutputs["endpoints"];
  readonly loadBalancer: CdnPopOutputs["loadBalancer"];
  readonly midCache: CdnPopOutputs["midCache"];
  readonly dns: CdnPopOutputs["dns"];

  constructor(name: string, args: CdnPopArgs, opts?: pulumi.ComponentResourceOptions) {
    const pop = parseCdnPop({ pop: args.pop, reportKeyHosts: Object.keys(args.reportKeys) }, "");
    super("switch-vaas:cdn-pop:CdnPop", name, {}, opts);

    const addressOf = (host: string, component: Component) => pop.addresses[`${host}/${component}`];
    const placement = (component: Service) => {
      const key = Object.keys(pop.addresses).find((candidate) => candidate.endsWith(`/${component}`))!;
      return { host: key.split("/")[0]!, address: pop.addresses[key]! };
    };
    const mid = placement("mid");
    const lb = placement("lb");
    const dns = placement("dns");
    this.midCache = mid.address;
    this.loadBalancer = lb.address;
    this.dns = dns.address;
    // The WAE's service discovery: which addresses serve each role.
    const discovered = serviceDiscovery(pop.layout, pop.addresses).endpoints;
    this.endpoints = Object.fromEntries(ROLES.map((role) => [role, discovered[role].map((address) => `${address}:${HTTP_PORT}`)])) as CdnPopOutputs["endpoints"];

    for (const host of pop.hosts) {
      const provider = new docker.Provider(`${name}-${host.name}`, { host: host.dockerHost, sshOpts: host.sshOpts }, { parent: this });
      const hostOpts = { parent: this, provider };
      const network = new docker.Network(
        `${name}-${host.name}`,
        {
          name: `pop-${pop.name}`,
          driver: host.parentInterface === undefined ? "bridge" : "macvlan",
          options: host.parentInterface === undefined ? {} : { parent: host.parentInterface },
          ipamConfigs: [{ subnet: host.subnet, gateway: host.gateway }],
        },
        hostOpts,
      );
      const images = new Map<RoleImage, docker.RemoteImage>();
      const imageId = (image: RoleImage) => {
        let remote = images.get(image);
        if (remote === undefined) {
          remote = new docker.RemoteImage(`${name}-${host.name}-${image}`, { name: `${pop.registry}/pop-${image}:${pop.imageTag}`, keepLocally: true }, hostOpts);
          images.set(image, remote);
        }
        return remote.imageId;
      };

      const container = (component: Component, image: RoleImage, settings: Pick<docker.ContainerArgs, "envs" | "uploads" | "mounts">) =>
        new docker.Container(
          `${name}-${host.name}-${component}`,
          {
            name: `pop-${pop.name}-${component}`,
            image: imageId(image),
            networksAdvanced: [{ name: network.name, ipv4Address: addressOf(host.name, component)! }],
            ...settings,
            labels: [
              { label: "switch-vaas/pop", value: pop.name },
              { label: "switch-vaas/role", value: component },
            ],
            restart: "unless-stopped",
          },
          { ...hostOpts, deleteBeforeReplace: true },
        );

      for (const role of ROLES.filter((candidate) => (pop.layout[host.name] ?? []).includes(candidate))) {
        // Only the PoP network reads an edge's request counters.
        container(role, `edge-${role}`, { envs: [`POP_MID=${mid.address}:${HTTP_PORT}`, `POP_STATUS_ALLOW=${host.subnet}`] });
      }
      if (mid.host === host.name) {
        container("mid", "mid", { envs: [`POP_ORIGIN=${pop.origin}`] });
      }
      if (lb.host === host.name) {
        const config = loadBalancerConfig({ listen: { address: "0.0.0.0", port: HTTP_PORT }, endpoints: this.endpoints, fallback: `${mid.address}:${HTTP_PORT}` });
        container("lb", "lb", { uploads: [{ file: GIVEN_CONFIG.lb, content: config }] });
      }
      // The instance manager finds this host's edges by container name (Docker's DNS on the PoP
      // network answers for this host's containers only), so its settings never change with the
      // layout and it keeps its last reading and waiting reports across periods.
      const edges = ROLES.map((role) => ({ role, statusUrl: `http://pop-${pop.name}-${role}${STATUS_PATH}` }));
      container(INSTANCE_MANAGER, "instance-manager", {
        // Secret, as the key in them is.
        envs: pulumi.secret(args.reportKeys[host.name]!).apply((key) => [
          `POP=${pop.name}`,
          `HOST=${host.name}`,
          `PARENT_INTERFACE=${host.parentInterface ?? DEFAULT_INTERFACE}`,
          `LINK_MBPS=${host.linkMbps}`,
          `EDGES=${JSON.stringify(edges)}`,
          `REPORT_ENDPOINT=${pop.reportEndpoint}`,
          `REPORT_KEY=${key}`,
          `STAT_FILE=${HOST_PROC}/stat`,
          `NET_DEV_FILE=${HOST_PROC}/1/net/dev`,
        ]),
        // The host's counters: its /proc, read-only; PID 1's network is the host's.
        mounts: [{ type: "bind", source: "/proc", target: HOST_PROC, readOnly: true }],
      });

      if (dns.host === host.name) {
        const config = dnsmasqConfig({ listen: { address: "0.0.0.0", port: DNS_PORT }, zone: pop.zone ?? `${pop.name}.cdn.internal`, loadBalancer: lb.address, midCache: mid.address, edges: discovered });
        container("dns", "dns", { uploads: [{ file: GIVEN_CONFIG.dns, content: config }] });
      }
    }

    this.registerOutputs({ endpoints: this.endpoints, loadBalancer: this.loadBalancer, midCache: this.midCache, dns: this.dns });
  }
}

