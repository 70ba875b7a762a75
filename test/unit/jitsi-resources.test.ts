import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CONTAINERS, MIN_POD, bridgePart, javaHeap, podForBridge, splitResources } from "../../domain/jitsi.ts";
import { formatBytes, formatMillicores, parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";

const MIB = 1024 * 1024;

describe("splitting a conference's size across its containers", () => {
  it("gives the smallest pod's containers their floors", () => {
    expect(splitResources({ cpu: "500m", memory: "1Gi" })).toEqual({
      web: { cpu: "50m", memory: "128Mi" },
      prosody: { cpu: "100m", memory: "128Mi" },
      jicofo: { cpu: "200m", memory: "384Mi" },
      jvb: { cpu: "150m", memory: "384Mi" },
    });
    expect(MIN_POD).toEqual({ millicores: 500, bytes: 1024 * MIB });
  });

  it("gives the bridge most of a large pod", () => {
    const total = 8 * 1024 * MIB;
    const share = (perMille: number) => Math.floor((total * perMille) / 1000);
    expect(splitResources({ cpu: "10", memory: "8Gi" })).toEqual({
      web: { cpu: "500m", memory: formatBytes(share(50)) },
      prosody: { cpu: "1000m", memory: formatBytes(share(100)) },
      jicofo: { cpu: "1000m", memory: formatBytes(share(150)) },
      jvb: { cpu: "7500m", memory: formatBytes(total - share(50) - share(100) - share(150)) },
    });
  });

  it("always adds up exactly to the total, every part at least its floor", () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN_POD.millicores, max: 64_000 }), fc.integer({ min: MIN_POD.bytes, max: 2 ** 37 }), (millicores, bytes) => {
        const parts = splitResources({ cpu: formatMillicores(millicores), memory: formatBytes(bytes) });
        const cpu = CONTAINERS.map((c) => parseCpuMillicores(parts[c].cpu)!);
        const memory = CONTAINERS.map((c) => parseMemoryBytes(parts[c].memory)!);
        expect(cpu.reduce((a, b) => a + b)).toBe(millicores);
        expect(memory.reduce((a, b) => a + b)).toBe(bytes);
        expect(parseCpuMillicores(parts.jvb.cpu)).toBeGreaterThanOrEqual(150);
        expect(parseMemoryBytes(parts.jvb.memory)).toBeGreaterThanOrEqual(384 * MIB);
      }),
    );
  });

  it("refuses a pod below the floors", () => {
    expect(() => splitResources({ cpu: "400m", memory: "1Gi" })).toThrow("splitResources: 400m and 1024Mi are below the smallest pod, 500m and 1024Mi");
  });

  it("finds the smallest pod that gives the bridge what it needs", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 50_000 }), fc.constantFrom("cpu" as const, "memory" as const), (need, kind) => {
        const pod = podForBridge(need, kind);
        expect(bridgePart(pod, kind)).toBeGreaterThanOrEqual(need);
        const floor = kind === "cpu" ? MIN_POD.millicores : MIN_POD.bytes;
        if (pod > floor) {
          expect(bridgePart(pod - 1, kind)).toBeLessThan(need);
        }
      }),
    );
  });

  it("sets JVM heaps at 60% of the container's memory", () => {
    expect(javaHeap("1000Mi")).toBe("600m");
    expect(javaHeap("384Mi")).toBe("230m");
  });
});
