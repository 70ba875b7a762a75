import { INSTANCE_MANAGER, type PopSpec, SERVICES, parsePopSpec } from "../contracts/cdn-pop.ts";
import type { Layout } from "./model.ts";
import { ROLES } from "./model.ts";
import { type AddressAssignment, assignAddresses } from "./network.ts";

export interface NextPopConfig {
  /** The PoP stack's next `pop` config: the running one with the new layout and its edges' addresses. */
  pop: PopSpec;
  /** Edges new in the layout and edges dropped from it, with their addresses. */
  allocated: AddressAssignment["allocated"];
  released: AddressAssignment["released"];
}

/**
 * The network integration step of the PoP loop (ARCHITECTURE.md "PoP loop"): the running PoP
 * config, a new layout from computeLayout, and the addresses that follow from them → the config of
 * the next `up`. Hosts, the load balancer, mid-cache, DNS and every instance manager keep their
 * addresses; running edges keep theirs; new edges take free addresses of their host's subnet,
 * never one of another host on the same subnet. The result is validated as the stack would.
 */
export function nextPopConfig(running: PopSpec, layout: Layout): NextPopConfig {
  const fixed = Object.entries(running.addresses).filter(([key]) => {
    const component = key.split("/")[1];
    return component === INSTANCE_MANAGER || (SERVICES as readonly string[]).includes(component ?? "");
  });
  const isEdge = (key: string) => (ROLES as readonly string[]).includes(key.split("/")[1] ?? "");

  // Hosts on one subnet draw from one pool, so that no two of their edges share an address.
  const bySubnet = new Map<string, { gateway: string; hosts: Set<string> }>();
  for (const host of running.hosts) {
    const group = bySubnet.get(host.subnet) ?? { gateway: host.gateway, hosts: new Set<string>() };
    group.hosts.add(host.name);
    bySubnet.set(host.subnet, group);
  }
  const addresses: Record<string, string> = Object.fromEntries(fixed);
  const allocated: AddressAssignment["allocated"] = {};
  const released: AddressAssignment["released"] = {};
  for (const [subnet, group] of bySubnet) {
    const onGroup = (key: string) => group.hosts.has(key.split("/")[0] ?? "");
    const assignment = assignAddresses(
      { subnet, gateway: group.gateway, excluded: fixed.filter(([key]) => onGroup(key)).map(([, address]) => address) },
      Object.fromEntries(Object.entries(layout).filter(([host]) => group.hosts.has(host))),
      Object.fromEntries(Object.entries(running.addresses).filter(([key]) => onGroup(key) && isEdge(key))),
    );
    Object.assign(addresses, assignment.addresses);
    Object.assign(allocated, assignment.allocated);
    Object.assign(released, assignment.released);
  }
  const pop = parsePopSpec({ ...running, layout, addresses }, "pop");
  return { pop, allocated, released };
}
