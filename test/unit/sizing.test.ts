import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HD_PROFILE, PAPER_PROFILE, TARGET_UTILISATION, bridgeVcpu, forwardedStreams, sizeConference } from "../../domain/decision/index.ts";
import { CONTAINERS } from "../../domain/jitsi.ts";
import { parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";

describe("sizing calibration", () => {
  it("puts the paper's saturation point at exactly one vCPU: 18 participants, last-N unlimited, simulcast on", () => {
    expect(bridgeVcpu({ expectedParticipants: 18, lastN: -1, simulcast: true }, PAPER_PROFILE)).toBeCloseTo(1, 12);
  });

  it.each([
    [8, -1, 1.9],
    [14, -1, 3.5],
    [16, 5, 3.5],
  ])("reproduces HPI's HD load test: %d participants, last-N %d, about %d cores", (participants, lastN, cores) => {
    expect(bridgeVcpu({ expectedParticipants: participants, lastN, simulcast: true }, HD_PROFILE)).toBeCloseTo(cores, 0);
  });

  it("gives about 4 participants per vCPU in the HD profile", () => {
    const perVcpu = 12 / bridgeVcpu({ expectedParticipants: 12, lastN: -1, simulcast: true }, HD_PROFILE);
    expect(perVcpu).toBeGreaterThan(3.5);
    expect(perVcpu).toBeLessThan(4.5);
  });

  it("sizes the bridge for its load at the target utilisation, and the pod around it", () => {
    const size = sizeConference({ expectedParticipants: 18, lastN: -1, simulcast: true });
    expect(size.bridgeVcpu).toBeCloseTo(1, 12);
    expect(parseCpuMillicores(size.containers.jvb.cpu)).toBeGreaterThanOrEqual(1000 / TARGET_UTILISATION);
    // Bridge 1000/0.7 → 1429m; the pod T gives the bridge 0.85·T − 200m (web and prosody on their
    // shares, jicofo on its floor below 2 vCPU): T ≥ 1917m, rounded up to 1950m. Memory: 1 GiB + 18 × 16 MiB.
    expect(size).toMatchObject({ cpu: "1950m", memory: "1344Mi", profile: "paper" });
  });

  it("counts forwarded streams as participants × min(last-N, others)", () => {
    expect(forwardedStreams(10, -1)).toBe(90);
    expect(forwardedStreams(10, 3)).toBe(30);
    expect(forwardedStreams(10, 20)).toBe(90);
    expect(forwardedStreams(1, -1)).toBe(0);
    expect(forwardedStreams(10, 0)).toBe(0);
  });
});

const lastN = fc.integer({ min: -1, max: 50 });
const profile = fc.constantFrom(PAPER_PROFILE, HD_PROFILE);
const n = fc.integer({ min: 1, max: 300 });

describe("sizing properties", () => {
  it("never shrinks as participants grow", () => {
    fc.assert(
      fc.property(n, lastN, fc.boolean(), profile, (participants, last, simulcast, which) => {
        const smaller = sizeConference({ expectedParticipants: participants, lastN: last, simulcast }, which);
        const larger = sizeConference({ expectedParticipants: participants + 1, lastN: last, simulcast }, which);
        expect(larger.millicores).toBeGreaterThanOrEqual(smaller.millicores);
        expect(larger.bytes).toBeGreaterThanOrEqual(smaller.bytes);
      }),
    );
  });

  it("is bounded by last-N: linear in participants for a fixed last-N, and never above unlimited", () => {
    fc.assert(
      fc.property(n, fc.integer({ min: 0, max: 50 }), fc.boolean(), profile, (participants, last, simulcast, which) => {
        const bounded = bridgeVcpu({ expectedParticipants: participants, lastN: last, simulcast }, which);
        const perParticipant = bridgeVcpu({ expectedParticipants: last + 1, lastN: last, simulcast }, which) / (last + 1);
        expect(bounded).toBeLessThanOrEqual(participants * perParticipant + 1e-9);
        expect(bounded).toBeLessThanOrEqual(bridgeVcpu({ expectedParticipants: participants, lastN: -1, simulcast }, which) + 1e-12);
        expect(sizeConference({ expectedParticipants: participants, lastN: last, simulcast }, which).millicores).toBeLessThanOrEqual(
          sizeConference({ expectedParticipants: participants, lastN: -1, simulcast }, which).millicores,
        );
      }),
    );
  });

  it("splits into containers that add up to the size, requests as the conference component will split them", () => {
    fc.assert(
      fc.property(n, lastN, fc.boolean(), profile, (participants, last, simulcast, which) => {
        const size = sizeConference({ expectedParticipants: participants, lastN: last, simulcast }, which);
        expect(CONTAINERS.reduce((sum, c) => sum + parseCpuMillicores(size.containers[c].cpu)!, 0)).toBe(parseCpuMillicores(size.cpu));
        expect(CONTAINERS.reduce((sum, c) => sum + parseMemoryBytes(size.containers[c].memory)!, 0)).toBe(parseMemoryBytes(size.memory));
        expect(size.millicores % 50).toBe(0);
      }),
    );
  });

  it("hands out frozen sizes, so a caller cannot change another's", () => {
    const size = sizeConference({ expectedParticipants: 5, lastN: 5, simulcast: true });
    expect(Object.isFrozen(size)).toBe(true);
    expect(Object.isFrozen(size.containers.jvb)).toBe(true);
  });
});
