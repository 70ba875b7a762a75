import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type CandidateCluster, type Objective, type Participant, type PlacementRequest, placeConference, sizeConference } from "../../domain/decision/index.ts";

/** The paper's seven sites, each with two 4-vCPU nodes free (room for any conference these tests make). */
const SITES: Record<string, [number, number]> = {
  "flexiops-edinburgh": [55.9533, -3.1883],
  "arnes-ljubljana": [46.0569, 14.5058],
  "gcp-us-west1": [45.5946, -121.1787],
  "gcp-europe-west1": [50.4542, 3.8183],
  "gcp-asia-east1": [24.0518, 120.5161],
  "gcp-asia-southeast1": [1.3404, 103.709],
  "gcp-asia-northeast1": [35.6762, 139.6503],
};
const roomy = (lat: number, lon: number): CandidateCluster => ({
  location: { lat, lon },
  capacity: { nodes: 2, vcpuPerNode: 16, memoryGiBPerNode: 64 },
  free: { cpu: "32", memory: "128Gi" },
});
const TESTBED = Object.fromEntries(Object.entries(SITES).map(([name, [lat, lon]]) => [name, roomy(lat, lon)]));

const request = (participants: Participant[], objective?: Objective): PlacementRequest => ({
  participants,
  expectedParticipants: participants.length,
  lastN: 5,
  simulcast: true,
  ...(objective === undefined ? {} : { objective }),
});

/** An independent reference: haversine, k = 2, 5 ms overhead. */
function referenceRtt(p: { lat: number; lon: number }, c: { lat: number; lon: number }): number {
  const rad = Math.PI / 180;
  const h = Math.sin(((c.lat - p.lat) * rad) / 2) ** 2 + Math.cos(p.lat * rad) * Math.cos(c.lat * rad) * Math.sin(((c.lon - p.lon) * rad) / 2) ** 2;
  const km = 2 * 6371.0088 * Math.asin(Math.sqrt(h));
  return (2 * km) / 100 + 5;
}

describe("placeConference", () => {
  it.each([
    ["Ljubljana", 46.05, 14.51, "arnes-ljubljana"],
    ["Glasgow", 55.86, -4.25, "flexiops-edinburgh"],
    ["Brussels", 50.85, 4.35, "gcp-europe-west1"],
    ["Portland", 45.52, -122.68, "gcp-us-west1"],
    ["Taipei", 25.03, 121.56, "gcp-asia-east1"],
    ["Kuala Lumpur", 3.14, 101.69, "gcp-asia-southeast1"],
    ["Osaka", 34.69, 135.5, "gcp-asia-northeast1"],
  ])("puts a conference in %s on the nearest cluster", (_city, lat, lon, expected) => {
    expect(placeConference(request([{ lat, lon }]), TESTBED).cluster).toBe(expected);
  });

  it("predicts RTTs as k × great-circle km / 100 plus the overhead", () => {
    const participants = [
      { lat: 46.05, lon: 14.51 },
      { lat: 35.68, lon: 139.69 },
    ];
    const placement = placeConference(request(participants), TESTBED);
    for (const entry of placement.ranking) {
      const [lat, lon] = SITES[entry.cluster]!;
      const rtts = participants.map((p) => referenceRtt(p, { lat, lon }));
      expect(entry.meanRttMs).toBeCloseTo((rtts[0]! + rtts[1]!) / 2, 5);
      expect(entry.worstPairRttMs).toBeCloseTo(rtts[0]! + rtts[1]!, 9);
    }
  });

  it("lets the worst pair objective choose differently from the mean", () => {
    // Four participants at A and one at B, 6,000 km east. X is 300 km off the A–B line, near A;
    // Y is on the line, 1,500 km from A. The mean favours X (near most participants); the worst
    // pair favours Y (no detour between A and B).
    const participants = [...Array.from({ length: 4 }, () => ({ lat: 0, lon: 0 })), { lat: 0, lon: 54 }];
    const candidates = { x: roomy(2.7, 0), y: roomy(0, 13.5) };
    const mean = placeConference(request(participants, "mean"), candidates);
    const worstPair = placeConference(request(participants, "worstPair"), candidates);
    expect([mean.cluster, worstPair.cluster]).toEqual(["x", "y"]);
    expect(worstPair.ranking[0]!.worstPairRttMs).toBeLessThan(mean.ranking[0]!.worstPairRttMs);
    expect(mean.ranking[0]!.meanRttMs).toBeLessThan(worstPair.ranking[0]!.meanRttMs);
  });

  it("reports the percentile it optimises, by nearest rank", () => {
    const participants = [10, 20, 30, 40].map((lon) => ({ lat: 0, lon }));
    const placement = placeConference(request(participants, { percentile: 50 }), { only: roomy(0, 0) });
    expect(placement.objective).toBe("p50");
    expect(placement.ranking[0]!.percentileRttMs).toBeCloseTo(referenceRtt({ lat: 0, lon: 20 }, { lat: 0, lon: 0 }), 9);
    expect(placement.ranking[0]!.objectiveMs).toBe(placement.ranking[0]!.percentileRttMs);
  });

  it("breaks ties by cluster name", () => {
    const twins = { b: roomy(46, 14), a: roomy(46, 14), c: roomy(46, 14) };
    expect(placeConference(request([{ lat: 46, lon: 14 }]), twins).ranking.map((r) => r.cluster)).toEqual(["a", "b", "c"]);
  });

  describe("capacity", () => {
    const size = sizeConference({ expectedParticipants: 20, lastN: -1, simulcast: true });
    const near = { lat: 46.05, lon: 14.51 };
    const participants = Array.from({ length: 20 }, () => near);

    it("excludes a cluster without the free CPU, saying why, and places on the next", () => {
      const clusters = { near: { ...roomy(46, 14.5), free: { cpu: "1", memory: "128Gi" } }, far: roomy(50.45, 3.82) };
      const placement = placeConference({ ...request(participants), lastN: -1 }, clusters);
      expect(placement.cluster).toBe("far");
      expect(placement.ranking.map((r) => [r.cluster, r.feasible, r.reason])).toEqual([
        ["far", true, undefined],
        ["near", false, `needs ${size.cpu} CPU but 1 is free`],
      ]);
      expect(placement.ranking[1]!.meanRttMs).toBeLessThan(placement.ranking[0]!.meanRttMs);
    });

    it("excludes a cluster whose nodes are too small for the pod, even with room in total", () => {
      const clusters = { small: { ...roomy(46, 14.5), capacity: { nodes: 10, vcpuPerNode: 1, memoryGiBPerNode: 1 } } };
      const placement = placeConference({ ...request(participants), lastN: -1 }, clusters);
      expect(placement.cluster).toBeNull();
      expect(placement.ranking[0]!.reason).toBe(`needs ${size.cpu} CPU in one pod but a node has 1 vCPU; needs ${size.memory} memory in one pod but a node has 1 GiB`);
    });

    it("excludes a cluster without the free memory", () => {
      const clusters = { tight: { ...roomy(46, 14.5), free: { cpu: "32", memory: "512Mi" } } };
      expect(placeConference({ ...request(participants), lastN: -1 }, clusters).ranking[0]!.reason).toBe(`needs ${size.memory} memory but 512Mi is free`);
    });
  });

  describe("measured RTTs", () => {
    const ljubljana = { lat: 46.05, lon: 14.51, country: "SI" };

    it("win over the model where they cover a participant", () => {
      const measured = { "arnes-ljubljana": [{ country: "SI", rttMs: 300 }] };
      const placement = placeConference(request([ljubljana]), TESTBED, { measured });
      const arnes = placement.ranking.find((r) => r.cluster === "arnes-ljubljana")!;
      expect(arnes.meanRttMs).toBe(300);
      expect(arnes.measuredParticipants).toBe(1);
      expect(placement.cluster).not.toBe("arnes-ljubljana");
    });

    it("take the smallest area containing the participant before the country", () => {
      const measured = {
        "arnes-ljubljana": [
          { country: "SI", rttMs: 300 },
          { area: { lat: 46, lon: 14.5, radiusKm: 1000 }, rttMs: 200 },
          { area: { lat: 46, lon: 14.5, radiusKm: 50 }, rttMs: 2 },
        ],
      };
      const arnes = placeConference(request([ljubljana]), TESTBED, { measured }).ranking.find((r) => r.cluster === "arnes-ljubljana")!;
      expect(arnes.meanRttMs).toBe(2);
    });

    it("leave participants they do not cover to the model", () => {
      const measured = { "arnes-ljubljana": [{ country: "AT", rttMs: 300 }] };
      const arnes = placeConference(request([ljubljana]), TESTBED, { measured }).ranking.find((r) => r.cluster === "arnes-ljubljana")!;
      expect(arnes.measuredParticipants).toBe(0);
      expect(arnes.meanRttMs).toBeCloseTo(referenceRtt(ljubljana, { lat: 46.0569, lon: 14.5058 }), 5);
    });
  });
});

const participant = fc.record({ lat: fc.double({ min: -89, max: 89, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }) });
const participants = fc.array(participant, { minLength: 1, maxLength: 30 });
const objective = fc.oneof(fc.constant<Objective>("mean"), fc.constant<Objective>("worstPair"), fc.integer({ min: 1, max: 100 }).map((p): Objective => ({ percentile: p })));
const clusters = fc
  .uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 10 })
  .chain((names) =>
    fc.tuple(
      ...names.map((name) =>
        fc.record({ lat: fc.double({ min: -89, max: 89, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }), cpu: fc.constantFrom("250m", "2", "64") }).map(
          ({ lat, lon, cpu }) => [name, { ...roomy(lat, lon), free: { cpu, memory: "128Gi" } }] as const,
        ),
      ),
    ),
  )
  .map((entries) => Object.fromEntries(entries));

describe("placeConference properties", () => {
  it("never chooses a cluster worse under the objective than any feasible one, and only feasible ones", () => {
    fc.assert(
      fc.property(participants, clusters, objective, (people, candidates, goal) => {
        const placement = placeConference(request(people, goal), candidates);
        const feasible = placement.ranking.filter((r) => r.feasible);
        expect(placement.ranking).toHaveLength(Object.keys(candidates).length);
        if (feasible.length === 0) {
          expect(placement.cluster).toBeNull();
          return;
        }
        const chosen = placement.ranking.find((r) => r.cluster === placement.cluster)!;
        expect(chosen.feasible).toBe(true);
        for (const other of feasible) {
          expect(chosen.objectiveMs).toBeLessThanOrEqual(other.objectiveMs);
        }
        for (const excluded of placement.ranking.filter((r) => !r.feasible)) {
          expect(excluded.reason).toMatch(/^needs /);
        }
      }),
    );
  });

  it("agrees with the haversine reference on every cluster's mean", () => {
    fc.assert(
      fc.property(participants, clusters, (people, candidates) => {
        for (const entry of placeConference(request(people), candidates).ranking) {
          const site = candidates[entry.cluster]!.location;
          const mean = people.reduce((sum, p) => sum + referenceRtt(p, site), 0) / people.length;
          // Within a microsecond: near-antipodal points are ill-conditioned for both formulas.
          expect(entry.meanRttMs).toBeCloseTo(mean, 3);
        }
      }),
    );
  });

  it("does not depend on the order of participants", () => {
    fc.assert(
      fc.property(
        participants.chain((people) => fc.tuple(fc.constant(people), fc.shuffledSubarray(people, { minLength: people.length, maxLength: people.length }))),
        clusters,
        objective,
        ([people, shuffled], candidates, goal) => {
          expect(placeConference(request(shuffled, goal), candidates)).toEqual(placeConference(request(people, goal), candidates));
        },
      ),
    );
  });

  it("is deterministic", () => {
    fc.assert(
      fc.property(participants, clusters, (people, candidates) => {
        expect(placeConference(request(people), candidates)).toEqual(placeConference(request(people), candidates));
      }),
    );
  });
});
