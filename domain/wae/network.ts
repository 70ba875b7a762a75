import ipaddr from "ipaddr.js";
import { ExhaustedError, InvalidArgumentsError } from "../errors.ts";
import { type Layout, ROLES, type Role } from "./model.ts";

/**
 * The network integration module: every running edge gets an address of the PoP's subnet (the
 * paper's macvlan network, where edges are reachable directly). Running edges keep theirs, dropped
 * ones give theirs back, new ones take the lowest free one; no address is handed out twice.
 */

export interface AddressPool {
  /** IPv4 CIDR of the edges' network, e.g. "192.0.2.0/24". */
  subnet: string;
  /** The router; never handed out. */
  gateway: string;
  /** Addresses or CIDR ranges of the subnet that are taken by something else. Defaults to none. */
  excluded?: string[];
}

/** Edges are keyed "<host>/<role>", as the PoP stack's `addresses` config. */
export type EdgeKey = `${string}/${Role}`;

export interface AddressAssignment {
  /** Every running edge's address. */
  addresses: Record<EdgeKey, string>;
  /** Edges new in this layout, with the address they were given. */
  allocated: Record<EdgeKey, string>;
  /** Edges no longer in the layout, with the address they gave back. */
  released: Record<EdgeKey, string>;
}

export function edgeKey(host: string, role: Role): EdgeKey {
  return `${host}/${role}`;
}

/** The addresses of a layout, given the addresses the previous one had. */
export function assignAddresses(pool: AddressPool, layout: Layout, previous: Readonly<Record<string, string>> = {}): AddressAssignment {
  const usable = usableAddresses(pool);
  const wanted = Object.keys(layout)
    .sort()
    .flatMap((host) => ROLES.filter((role) => layout[host]!.includes(role)).map((role) => edgeKey(host, role)));
  const wantedSet = new Set<string>(wanted);

  const problems: string[] = [];
  const owner = new Map<number, string>();
  for (const [key, address] of Object.entries(previous)) {
    const value = ipv4ToInt(address);
    if (value === undefined || !usable.set.has(value)) {
      problems.push(`previous.${key} ${JSON.stringify(address)} is not a usable address of ${pool.subnet}; remove it or fix the pool`);
    } else if (owner.has(value)) {
      problems.push(`previous.${key} ${address} is also the address of ${owner.get(value)!}; an address belongs to one edge`);
    } else {
      owner.set(value, key);
    }
  }
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }

  const addresses: Record<EdgeKey, string> = {};
  const allocated: Record<EdgeKey, string> = {};
  const released: Record<EdgeKey, string> = {};
  const inUse = new Set<number>();
  for (const key of wanted) {
    const kept = previous[key];
    if (kept !== undefined) {
      addresses[key] = kept;
      inUse.add(ipv4ToInt(kept)!);
    }
  }
  for (const [key, address] of Object.entries(previous)) {
    if (!wantedSet.has(key)) {
      released[key as EdgeKey] = address;
    }
  }
  let cursor = 0;
  for (const key of wanted) {
    if (addresses[key] !== undefined) {
      continue;
    }
    while (cursor < usable.list.length && inUse.has(usable.list[cursor]!)) {
      cursor++;
    }
    if (cursor === usable.list.length) {
      throw new ExhaustedError(
        `${pool.subnet} has no free address for ${key}: all ${usable.list.length} usable addresses are taken; widen the subnet or exclude fewer addresses`,
      );
    }
    const address = intToIpv4(usable.list[cursor]!);
    inUse.add(usable.list[cursor]!);
    addresses[key] = address;
    allocated[key] = address;
  }
  return { addresses, allocated, released };
}

/** The subnet's host addresses minus gateway and exclusions, ascending; validates the pool. */
export function usableAddresses(pool: AddressPool): { list: number[]; set: Set<number> } {
  const problems: string[] = [];
  let network: [ipaddr.IPv4, number] | undefined;
  try {
    const parsed = ipaddr.parseCIDR(pool.subnet);
    if (parsed[0].kind() !== "ipv4") {
      problems.push(`subnet ${JSON.stringify(pool.subnet)} is IPv6; the PoP network is IPv4`);
    } else {
      network = parsed as [ipaddr.IPv4, number];
    }
  } catch {
    problems.push(`subnet ${JSON.stringify(pool.subnet)} is not a CIDR range; give e.g. "192.0.2.0/24"`);
  }
  if (network === undefined) {
    throw new InvalidArgumentsError(problems);
  }
  const [first, last] = blockOf(network);
  const inSubnet = (value: number) => value >= first && value <= last;
  // /31 and /32 have no network and broadcast addresses to leave out (RFC 3021).
  const low = last - first > 1 ? first + 1 : first;
  const high = last - first > 1 ? last - 1 : last;

  const gateway = ipv4ToInt(pool.gateway);
  if (gateway === undefined || !inSubnet(gateway)) {
    problems.push(`gateway ${JSON.stringify(pool.gateway)} is not an address of ${pool.subnet}; give the router's address in the subnet`);
  }
  const excluded = new Set<number>();
  for (const [index, entry] of (pool.excluded ?? []).entries()) {
    const range = rangeOf(entry);
    if (range === undefined || !inSubnet(range[0]) || !inSubnet(range[1])) {
      problems.push(`excluded[${index}] ${JSON.stringify(entry)} is not an address or range of ${pool.subnet}`);
      continue;
    }
    for (let value = range[0]; value <= range[1]; value++) {
      excluded.add(value);
    }
  }
  if (problems.length > 0) {
    throw new InvalidArgumentsError(problems);
  }
  const list: number[] = [];
  for (let value = low; value <= high; value++) {
    if (value !== gateway && !excluded.has(value)) {
      list.push(value);
    }
  }
  return { list, set: new Set(list) };
}

function rangeOf(entry: string): [number, number] | undefined {
  if (entry.includes("/")) {
    return ipaddr.IPv4.isValidCIDR(entry) ? blockOf(ipaddr.IPv4.parseCIDR(entry)) : undefined;
  }
  const value = ipv4ToInt(entry);
  return value === undefined ? undefined : [value, value];
}

/** The first and last address of a CIDR block (its base address need not be the first). */
function blockOf([base, prefix]: [ipaddr.IPv4, number]): [number, number] {
  const size = 2 ** (32 - prefix);
  const start = ipv4ToInt(base.toString())!;
  const first = start - (start % size);
  return [first, first + size - 1];
}

export function ipv4ToInt(address: string): number | undefined {
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) {
    return undefined;
  }
  return ipaddr.IPv4.parse(address)
    .toByteArray()
    .reduce((value, byte) => value * 256 + byte, 0);
}

export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}
