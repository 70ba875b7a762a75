/**
 * The Workload Automation Engine (seed 002): data collection, normalization, orchestration,
 * network integration and service discovery. A pure core: the service feeds it reports and
 * acts on its results.
 */
export { type Host, type Layout, ROLES, type Role, type RoleCounts, demandShares, hostWeight, resourceShares, worstError } from "./model.ts";
export { type InstanceManagerReport, combineReports, parseReport } from "./reports.ts";
export { DEFAULT_HEADROOM, DEFAULT_MAX_MOVES, DEFAULT_TOLERANCE, HYSTERESIS, type LayoutInput, type LayoutResult, type Move, type Strategy, type Volume, computeLayout, parseLayoutInput } from "./layout.ts";
export { CALIBRATION_PERIODS, DEFAULT_REQUEST_COSTS, type HostSample, type RequestCosts, calibrate } from "./capacity.ts";
export { type AddressAssignment, type AddressPool, type EdgeKey, assignAddresses, edgeKey } from "./network.ts";
export { type Assignment, type Discovery, serviceDiscovery } from "./discovery.ts";
