import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { ROLES, type Role } from "../../automation/wae/model.ts";
import { edgeConfig, loadBalancerConfig, midCacheConfig } from "./nginx.ts";
import { type Component, type PopSpecInput, parsePopSpec } from "./spec.ts";

export interface CdnPopArgs {
  /** The PoP: hosts, the WAE's edge layout and every container's address. Validated first. */
  pop: PopSpecInput;
}

/** Every role listens on the HTTP port of its own address on the PoP network. */
const HTTP_PORT = 80;
/** Where a container keeps its generated configuration and nginx's working files. */
const PREFIX = "/srv/pop";
/** Runs the uploaded configuration with the working directories it expects. */
const COMMAND = ["sh", "-c", `mkdir -p ${PREFIX}/logs ${PREFIX}/tmp ${PREFIX}/cache && exec nginx -p ${PREFIX} -c ${PREFIX}/nginx.conf -g 'daemon off;'`];

/**
 * A CDN point of presence on Docker hosts: per host a Docker provider (over SSH for remote hosts)
 * and the PoP network — macvlan on the given parent interface, as in the paper, so every container
 * has its own address on the LAN, or a bridge network when no parent is given (one machine) — and
 * a container per running edge, plus the load balancer and mid-cache where their addresses say.
 *
 * A container's inputs depend only on its role, its address and the mid-cache's address, so a new
 * layout leaves unchanged edges as they are; containers have fixed names and addresses, so a
 * replaced one is deleted before its successor is created. The load balancer's configuration lists
 * the edges, so it is replaced when the set of edges changes.
 */
export class CdnPop extends pulumi.ComponentResource {
  /** The running edges' "address:port", by role. */
  readonly endpoints: Record<Role, string[]>;
  /** The load balancer's address: where the PoP's clients connect. */
  readonly loadBalancer: string;
  readonly midCache: string;

  constructor(name: string, args: CdnPopArgs, opts?: pulumi.ComponentResourceOptions) {
    const pop = parsePopSpec(args.pop, "pop");
    super("switch-vaas:cdn-pop:CdnPop", name, {}, opts);

    const addressOf = (host: string, component: Component) => pop.addresses[`${host}/${component}`];
    const placement = (component: "lb" | "mid") => {
      const key = Object.keys(pop.addresses).find((candidate) => candidate.endsWith(`/${component}`))!;
      return { host: key.split("/")[0]!, address: pop.addresses[key]! };
    };
    const mid = placement("mid");
    const lb = placement("lb");
    this.midCache = mid.address;
    this.loadBalancer = lb.address;
    this.endpoints = Object.fromEntries(
      ROLES.map((role) => [
        role,
        pop.hosts.flatMap((host) => ((pop.layout[host.name] ?? []).includes(role) ? [`${addressOf(host.name, role)!}:${HTTP_PORT}`] : [])),
      ]),
    ) as Record<Role, string[]>;

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
      const image = new docker.RemoteImage(`${name}-${host.name}-nginx`, { name: `nginx:${pop.imageTag}`, keepLocally: true }, hostOpts);

      const container = (component: Component, config: string) =>
        new docker.Container(
          `${name}-${host.name}-${component}`,
          {
            name: `pop-${pop.name}-${component}`,
            image: image.imageId,
            command: COMMAND,
            networksAdvanced: [{ name: network.name, ipv4Address: addressOf(host.name, component)! }],
            uploads: [{ file: `${PREFIX}/nginx.conf`, content: config }],
            labels: [
              { label: "switch-vaas/pop", value: pop.name },
              { label: "switch-vaas/role", value: component },
            ],
            restart: "unless-stopped",
          },
          { ...hostOpts, deleteBeforeReplace: true },
        );

      for (const role of ROLES.filter((candidate) => (pop.layout[host.name] ?? []).includes(candidate))) {
        container(
          role,
          edgeConfig({
            role,
            listen: { address: "0.0.0.0", port: HTTP_PORT },
            upstream: `${mid.address}:${HTTP_PORT}`,
            // Only the PoP network reads an edge's request counters.
            statusAllow: [host.subnet],
          }),
        );
      }
      if (mid.host === host.name) {
        container("mid", midCacheConfig({ listen: { address: "0.0.0.0", port: HTTP_PORT }, origin: pop.origin }));
      }
      if (lb.host === host.name) {
        container("lb", loadBalancerConfig({ listen: { address: "0.0.0.0", port: HTTP_PORT }, endpoints: this.endpoints, fallback: `${mid.address}:${HTTP_PORT}` }));
      }
    }

    this.registerOutputs({ endpoints: this.endpoints, loadBalancer: this.loadBalancer, midCache: this.midCache });
  }
}

