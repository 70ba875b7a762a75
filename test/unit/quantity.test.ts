import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatBytes, formatMillicores, parseCpuMillicores, parseMemoryBytes } from "../../domain/quantity.ts";

describe("Kubernetes quantities", () => {
  it.each([
    ["2", 2000],
    ["1500m", 1500],
    ["0.5", 500],
    [".25", 250],
    ["1.0001", 1001],
    ["250000u", 250],
    ["1n", 1],
    ["1e3", 1_000_000],
    ["2E-3", 2],
    ["+3", 3000],
    ["1k", 1_000_000],
  ])("CPU %s is %d millicores", (text, millicores) => {
    expect(parseCpuMillicores(text)).toBe(millicores);
  });

  it.each([
    ["4Gi", 4 * 1024 ** 3],
    ["512Mi", 512 * 1024 ** 2],
    ["1.5Gi", 1.5 * 1024 ** 3],
    ["1G", 1e9],
    ["1.5G", 1.5e9],
    ["128974848", 128974848],
    ["129e6", 129e6],
    ["123Ki", 123 * 1024],
    ["0.5", 1],
    ["1500m", 2],
  ])("memory %s is %d bytes", (text, bytes) => {
    expect(parseMemoryBytes(text)).toBe(bytes);
  });

  it.each(["", "two", "-1", "1.5.2", "Gi", "1gi", "1 Gi", "1Gb", "0x10", "1e", "1m5"])("rejects %j", (text) => {
    expect(parseCpuMillicores(text)).toBeUndefined();
    expect(parseMemoryBytes(text)).toBeUndefined();
  });

  it("formats so that parsing gives back the same amount", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 10_000_000 }), (bytes, millicores) => {
        expect(parseMemoryBytes(formatBytes(bytes))).toBe(bytes);
        expect(parseCpuMillicores(formatMillicores(millicores))).toBe(millicores);
      }),
    );
  });

  it("writes whole mebibytes as Mi", () => {
    expect(formatBytes(3 * 1024 * 1024)).toBe("3Mi");
    expect(formatBytes(1.5e9)).toBe("1500000000");
  });
});
