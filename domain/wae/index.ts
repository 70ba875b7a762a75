/**
 * The Workload Automation Engine (seed 002): data collection, normalization, orchestration,
 * network integration and service discovery. A pure core: the service feeds it reports and
 * acts on its results.
 */
export { type Host, type Layout, ROLES, type Role, type RoleCounts, demandShares, hostWeight, resourceShares, worstError } from "./model.ts";
export { type InstanceManagerReport, combineReports, parseReport } from "./reports.ts";
export { DEFAULT_MAX_MOVES, DEFAULT_TOLERANCE, EXACT_MAX_HOSTS, HYSTERESIS, type LayoutInput, type LayoutResult, type Move, type Strategy, computeLayout, parseLayoutInput } from "./layout.ts";
export { type AddressAssignment, type AddressPool, type EdgeKey, assignAddresses, edgeKey } from "./network.ts";
export { type Assignment, type Discovery, serviceDiscovery } from "./discovery.ts";
