import { InvalidArgumentsError } from "../errors.ts";
import { type Layout, ROLES, type Role } from "./model.ts";
import { type EdgeKey, edgeKey, ipv4ToInt } from "./network.ts";

/**
 * The service discovery module: what each host's instance manager runs (every role, running or
 * not, with its address) and, per role, the endpoints the PoP's load balancer sends that content
 * type to.
 */

export interface Assignment {
  role: Role;
  running: boolean;
  /** When running. */
  address?: string;
}

export interface Discovery {
  assignments: Record<string, Assignment[]>;
  /** Addresses of the running edges of each role, ascending. */
  endpoints: Record<Role, string[]>;
}

export function serviceDiscovery(layout: Layout, addresses: Readonly<Record<EdgeKey, string>>): Discovery {
  const assignments: Record<string, Assignment[]> = {};
  const endpoints: Record<Role, string[]> = { small: [], large: [], vod: [], live: [] };
  for (const host of Object.keys(layout).sort()) {
    assignments[host] = ROLES.map((role) => {
      if (!layout[host]!.includes(role)) {
        return { role, running: false };
      }
      const address = addresses[edgeKey(host, role)];
      if (address === undefined) {
        throw new InvalidArgumentsError([`serviceDiscovery: the running edge ${edgeKey(host, role)} has no address; assign addresses first`]);
      }
      endpoints[role].push(address);
      return { role, running: true, address };
    });
  }
  for (const role of ROLES) {
    endpoints[role].sort((a, b) => ipv4ToInt(a)! - ipv4ToInt(b)!);
  }
  return { assignments, endpoints };
}
