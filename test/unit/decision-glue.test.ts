import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConferenceSpec } from "../../domain/contracts/conference.ts";
import { DEFAULT_SITES, parseSites, siteCapacity } from "../../domain/contracts/testbed.ts";
import { candidateClusters, conferenceSpecFor, conferenceStackConfig, parseCandidateClusters, placeConference } from "../../domain/decision/index.ts";
import { ExhaustedError, InvalidArgumentsError } from "../../domain/errors.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";
import { domainErrorMessage, invalidArgumentsMessage } from "../support/validation.ts";

/** The paper's seven sites as the testbed's clusters output describes them. */
const TESTBED = Object.fromEntries(parseSites(DEFAULT_SITES, "sites").map((site) => [site.name, { location: site.location, capacity: siteCapacity(site) }]));
const GIBIBYTE = 1024 ** 3;

describe("candidateClusters", () => {
  it("gives every cluster its whole capacity when nothing runs", () => {
    const candidates = candidateClusters(TESTBED, []);
    expect(candidates["arnes-ljubljana"]).toEqual({
      location: { lat: 46.0569, lon: 14.5058 },
      capacity: { nodes: 2, vcpuPerNode: 1, memoryGiBPerNode: 4 },
      free: { cpu: "2000m", memory: "8192Mi" },
    });
    // What the decision maker's own input schema accepts.
    expect(parseCandidateClusters(candidates)).toEqual(candidates);
  });

  it("takes what running conferences hold, never below zero, and ignores clusters the testbed lost", () => {
    const candidates = candidateClusters(TESTBED, [
      { cluster: "arnes-ljubljana", resources: { cpu: "1500m", memory: "3Gi" } },
      { cluster: "arnes-ljubljana", resources: { cpu: "1", memory: "6Gi" } },
      { cluster: "gone", resources: { cpu: "8", memory: "8Gi" } },
    ]);
    expect(candidates["arnes-ljubljana"]?.free).toEqual({ cpu: "0m", memory: "0Mi" });
    expect(Object.keys(candidates).sort()).toEqual(Object.keys(TESTBED).sort());
  });

  it("never lets conferences placed one after another oversubscribe a cluster", () => {
    const participant = fc.record({ lat: fc.double({ min: -80, max: 80, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }) });
    const conference = fc.record({ participants: fc.array(participant, { minLength: 1, maxLength: 5 }), expected: fc.integer({ min: 1, max: 40 }) });
    fc.assert(
      fc.property(fc.array(conference, { minLength: 1, maxLength: 30 }), (conferences) => {
        const running: { cluster: string; resources: { cpu: string; memory: string } }[] = [];
        for (const [index, { participants, expected }] of conferences.entries()) {
          const request = { participants, expectedParticipants: expected, lastN: 5, simulcast: true };
          const placement = placeConference(request, candidateClusters(TESTBED, running));
          if (placement.cluster !== null) {
            running.push(conferenceSpecFor(`c${index}`, request, placement));
          }
        }
        for (const [name, { capacity }] of Object.entries(TESTBED)) {
          const mine = running.filter((spec) => spec.cluster === name);
          const millicores = mine.reduce((sum, spec) => sum + parseCpuMillicores(spec.resources.cpu)!, 0);
          const bytes = mine.reduce((sum, spec) => sum + parseMemoryBytes(spec.resources.memory)!, 0);
          expect(millicores).toBeLessThanOrEqual(capacity.nodes * capacity.vcpuPerNode * 1000);
          expect(bytes).toBeLessThanOrEqual(capacity.nodes * capacity.memoryGiBPerNode * GIBIBYTE);
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe("conferenceSpecFor and conferenceStackConfig", () => {
  const request = { participants: [{ lat: 46.05, lon: 14.51 }], expectedParticipants: 8, lastN: 4, simulcast: false };

  it("turn a placement into the conference stack's config, valid by its contract", () => {
    const placement = placeConference(request, candidateClusters(TESTBED, []));
    const spec = conferenceSpecFor("physics-101", request, placement);
    expect(spec).toEqual({
      id: "physics-101",
      cluster: placement.cluster,
      expectedParticipants: 8,
      lastN: 4,
      simulcast: false,
      resources: { cpu: placement.size.cpu, memory: placement.size.memory },
    });
    const config = conferenceStackConfig(spec, "organization/switch-vaas/testbed");
    expect(config).toEqual({
      "switch-vaas:program": { value: "conference", secret: false },
      "switch-vaas:conference": { value: JSON.stringify(spec), secret: false },
      "switch-vaas:testbedStack": { value: "organization/switch-vaas/testbed", secret: false },
    });
    expect(parseConferenceSpec(JSON.parse(config["switch-vaas:conference"]!.value), "conference")).toEqual(spec);
  });

  it("refuse when no cluster has room, saying why for each", () => {
    const full = candidateClusters({ "arnes-ljubljana": TESTBED["arnes-ljubljana"]! }, [{ cluster: "arnes-ljubljana", resources: { cpu: "2", memory: "8Gi" } }]);
    const placement = placeConference(request, full);
    expect(domainErrorMessage(ExhaustedError, () => conferenceSpecFor("physics-101", request, placement))).toBe(
      `no cluster has room for a conference of ${placement.size.cpu} CPU and ${placement.size.memory} memory (arnes-ljubljana: ${placement.ranking[0]!.reason})`,
    );
  });

  it("refuse an id that cannot name a stack", () => {
    const placement = placeConference(request, candidateClusters(TESTBED, []));
    expect(invalidArgumentsMessage(() => conferenceSpecFor("Physics 101", request, placement))).toBe(
      "switch-vaas:conference.id \"Physics 101\" is not a DNS label; use lowercase letters, digits and '-', starting and ending with a letter or digit",
    );
    expect(() => conferenceSpecFor("Physics 101", request, placement)).toThrow(InvalidArgumentsError);
  });
});
