import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { beforeAll, describe, expect, it } from "vitest";
import { highsSolver } from "../../automation/solver/highs.ts";
import { CALIBRATION_BOUND, CALIBRATION_PERIODS, DEFAULT_REQUEST_COSTS, type HostSample, type RequestCosts, calibrate, hostCapacity, roleRateOn } from "../../domain/wae/capacity.ts";
import type { MilpSolver } from "../../domain/wae/milp.ts";
import { ROLES, type RoleCounts } from "../../domain/wae/model.ts";

let highs: MilpSolver;

beforeAll(async () => {
  highs = await highsSolver();
});

/** The costs the simulated hosts really have: none of them the defaults. */
const TRUE_COSTS: RequestCosts = {
  small: { cpuSeconds: 0.0012, bytes: 20_000 },
  large: { cpuSeconds: 0.005, bytes: 1_500_000 },
  vod: { cpuSeconds: 0.004, bytes: 600_000 },
  live: { cpuSeconds: 0.003, bytes: 900_000 },
};
const SECONDS = 600;

/** Seeded samples: `hosts` hosts over `periods` periods, each with its own background and a varying mix; `noise` the relative measurement error. */
function samples(hosts: number, periods: number, seed: number, noise = 0.02, roles: readonly (keyof RoleCounts)[] = ROLES): HostSample[] {
  const rng = xoroshiro128plus(seed);
  const random = () => uniformInt(rng, 0, 1_000_000) / 1_000_000;
  const background = Array.from({ length: hosts }, () => ({ cores: 0.2 + random(), mbps: 20 + 100 * random() }));
  const out: HostSample[] = [];
  for (let p = 0; p < periods; p++) {
    for (let h = 0; h < hosts; h++) {
      const served = Object.fromEntries(ROLES.map((role) => [role, roles.includes(role) ? Math.round(SECONDS * (20 + 200 * random())) : 0])) as RoleCounts;
      const cores = background[h]!.cores + ROLES.reduce((sum, role) => sum + (served[role] / SECONDS) * TRUE_COSTS[role].cpuSeconds, 0);
      const mbps = background[h]!.mbps + ROLES.reduce((sum, role) => sum + ((served[role] / SECONDS) * TRUE_COSTS[role].bytes * 8) / 1e6, 0);
      const jitter = () => 1 + noise * (2 * random() - 1);
      out.push({ host: `host${h}`, seconds: SECONDS, capacityCores: 8, usedCores: cores * jitter(), linkMbps: 10_000, txMbps: mbps * jitter(), served });
    }
  }
  return out;
}

const within = (actual: number, expected: number, share: number) => Math.abs(actual - expected) / expected <= share;

describe("WAE capacity model", () => {
  it("gives a host's edges what its background load leaves", () => {
    const sample: HostSample = {
      host: "h",
      seconds: 100,
      capacityCores: 4,
      usedCores: 1.5,
      linkMbps: 1000,
      txMbps: 300,
      // 100 small requests/s: 0.08 cores and 9.6 Mbit/s at the defaults.
      served: { small: 10_000, large: 0, vod: 0, live: 0 },
    };
    const capacity = hostCapacity(sample, DEFAULT_REQUEST_COSTS);
    expect(capacity.cores).toBeCloseTo(4 - (1.5 - 0.08), 9);
    expect(capacity.mbps).toBeCloseTo(1000 - (300 - 9.6), 9);
    // Small files are CPU-bound here, large files link-bound.
    expect(roleRateOn(capacity, DEFAULT_REQUEST_COSTS.small)).toBeCloseTo(capacity.cores / 0.0008, 6);
    expect(roleRateOn(capacity, DEFAULT_REQUEST_COSTS.large)).toBeCloseTo(capacity.mbps / 19.2, 6);
  });

  it("never gives a host negative capacity, nor counts edge load as background", () => {
    const busy: HostSample = { host: "h", seconds: 10, capacityCores: 2, usedCores: 2.1, linkMbps: 100, txMbps: 150, served: { small: 0, large: 0, vod: 0, live: 0 } };
    expect(hostCapacity(busy, DEFAULT_REQUEST_COSTS)).toEqual({ host: "h", cores: 0, mbps: 0 });
    const allEdges: HostSample = { ...busy, usedCores: 0.01, txMbps: 0.1, served: { small: 1_000, large: 0, vod: 0, live: 0 } };
    expect(hostCapacity(allEdges, DEFAULT_REQUEST_COSTS)).toEqual({ host: "h", cores: 2, mbps: 100 });
  });

  it("fits every role's costs from a window of reports to within 10 % (2 % measurement noise, 3 hosts)", () => {
    const calibration = calibrate(samples(3, CALIBRATION_PERIODS, 1), highs);
    expect(calibration.samples).toBe(3 * CALIBRATION_PERIODS);
    for (const role of ROLES) {
      expect(calibration.source[role].cpu, role).toBe("measured");
      expect(within(calibration.costs[role].cpuSeconds, TRUE_COSTS[role].cpuSeconds, 0.1), `${role} cpu ${calibration.costs[role].cpuSeconds}`).toBe(true);
    }
    for (const role of ["large", "vod", "live"] as const) {
      expect(calibration.source[role].bytes, role).toBe("measured");
      expect(within(calibration.costs[role].bytes, TRUE_COSTS[role].bytes, 0.1), `${role} bytes ${calibration.costs[role].bytes}`).toBe(true);
    }
    // Small files are under 1 % of the traffic, below what a fit can tell from 2 % noise: their default stands.
    expect(calibration.source.small.bytes).toBe("default");
    expect(calibration.costs.small.bytes).toBe(DEFAULT_REQUEST_COSTS.small.bytes);
  });

  it("is not thrown off by one period whose measurement went wrong", () => {
    const clean = samples(3, CALIBRATION_PERIODS, 2);
    // Period 4 of host0 read ten times its CPU and traffic (a burst of background work).
    const spoilt = clean.map((sample, i) => (i === 4 * 3 ? { ...sample, usedCores: sample.usedCores * 10, txMbps: sample.txMbps * 10 } : sample));
    const calibration = calibrate(spoilt, highs);
    for (const role of ROLES) {
      expect(within(calibration.costs[role].cpuSeconds, TRUE_COSTS[role].cpuSeconds, 0.1), `${role} cpu ${calibration.costs[role].cpuSeconds}`).toBe(true);
    }
  });

  it("keeps the default of a role it has not seen, and bounds what a fit may say", () => {
    const noLive = calibrate(samples(3, CALIBRATION_PERIODS, 3, 0.02, ["small", "large", "vod"]), highs);
    expect(noLive.source.live).toEqual({ cpu: "default", bytes: "default" });
    expect(noLive.costs.live).toEqual(DEFAULT_REQUEST_COSTS.live);
    expect(noLive.source.small.cpu).toBe("measured");
    // Reports that say small files cost 10 times the default (0.008 core-seconds, not 0.0012) are bounded.
    const absurd = samples(3, CALIBRATION_PERIODS, 4).map((sample) => ({ ...sample, usedCores: sample.usedCores + (sample.served.small / SECONDS) * (0.008 - 0.0012) }));
    const bounded = calibrate(absurd, highs);
    expect(bounded.source.small.cpu).toBe("bounded");
    expect(bounded.costs.small.cpuSeconds).toBe(DEFAULT_REQUEST_COSTS.small.cpuSeconds * CALIBRATION_BOUND);
  });

  it("keeps the defaults while the samples are too few to fit (one period of three hosts)", () => {
    const calibration = calibrate(samples(3, 1, 5), highs);
    expect(calibration.costs).toEqual(DEFAULT_REQUEST_COSTS);
    expect(calibration.samples).toBe(3);
  });

  it("with no samples at all, is the defaults", () => {
    expect(calibrate([], highs)).toEqual({ costs: DEFAULT_REQUEST_COSTS, source: Object.fromEntries(ROLES.map((role) => [role, { cpu: "default", bytes: "default" }])), samples: 0 });
  });
});
