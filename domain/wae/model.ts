/**
 * The WAE's model (seed 002, "System Model"): edge roles, hosts as the instance managers measure
 * them, and the normalization module.
 */

/** Edge server types: small files, large files, video on demand, live streaming. */
export const ROLES = ["small", "large", "vod", "live"] as const;
export type Role = (typeof ROLES)[number];

export type RoleCounts = Record<Role, number>;

export interface Host {
  name: string;
  cpu: { capacityCores: number; usedCores: number };
  network: { linkMbps: number; txMbps: number };
}

/** Which roles run on which host. */
export type Layout = Record<string, Role[]>;

/**
 * Normalization: how much of the PoP's spare capacity a container on each host brings.
 *
 * The paper rescales CPU (C) and outgoing traffic (T) to [0, 1] and adds them, "equally
 * important" (Algorithm 1, line 1), then gives every container on a host that host's sum. We make
 * both terms the *spare* fraction, so that a busy host weighs less: c = 1 − used/capacity,
 * t = 1 − tx/link, each clamped to [0, 1], and w = (c + t) / 2 ∈ [0, 1]. A type's resource
 * share is D_i = Σ w_j over the hosts running it, normalised over the types (D^N = D / Σ D),
 * which puts it on the same simplex as the request distribution R^N = r / Σ r — the open
 * question in ../shared/reference/placement.md: only normalised over types do D and R compare.
 */
export function hostWeight(host: Host): number {
  const spareCpu = clamp01(1 - host.cpu.usedCores / host.cpu.capacityCores);
  const spareLink = clamp01(1 - host.network.txMbps / host.network.linkMbps);
  return (spareCpu + spareLink) / 2;
}

/** R^N: each role's share of the requests; all zero when there were none. */
export function demandShares(requests: RoleCounts): RoleCounts {
  const total = ROLES.reduce((sum, role) => sum + requests[role], 0);
  return mapRoles((role) => (total === 0 ? 0 : requests[role] / total));
}

/** D^N: each role's share of the spare capacity the layout gives it; all zero for an empty layout. */
export function resourceShares(layout: Layout, weights: ReadonlyMap<string, number>): RoleCounts {
  const raw = mapRoles(() => 0);
  for (const [host, roles] of Object.entries(layout)) {
    for (const role of roles) {
      raw[role] += weights.get(host) ?? 0;
    }
  }
  const total = ROLES.reduce((sum, role) => sum + raw[role], 0);
  return mapRoles((role) => (total === 0 ? 0 : raw[role] / total));
}

/** The largest |D^N_i − R^N_i|. */
export function worstError(shares: RoleCounts, demand: RoleCounts): number {
  return Math.max(...ROLES.map((role) => Math.abs(shares[role] - demand[role])));
}

export function mapRoles(value: (role: Role) => number): RoleCounts {
  return { small: value("small"), large: value("large"), vod: value("vod"), live: value("live") };
}

function clamp01(value: number): number {
  return value < 0 ? 0 : value > 1 ? 1 : value;
}
