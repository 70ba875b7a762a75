import { describe, expect, it } from "vitest";
import { isAbandonedProgramCall } from "../../automation/engine/engine.ts";

/**
 * Which unhandled rejections the service's process lets pass: only an inline program's call to a
 * resource monitor that has shut down, as @pulumi/pulumi's runtime words them (runtime/resource.js
 * rewrites the message of a call that ended UNAVAILABLE or CANCELLED, and keeps gRPC's code and
 * details). Anything else stops the service.
 */

/** An error as @grpc/grpc-js makes it and the Pulumi runtime passes it on. */
function rpcError(code: number, message: string, details: string): Error {
  return Object.assign(new Error(message), { code, details });
}

describe("an unhandled rejection the service lets pass", () => {
  it("is a call to a resource monitor that shut down, as the runtime words it", () => {
    expect(isAbandonedProgramCall(rpcError(14, "Resource monitor is terminating", "resource monitor shut down while sending resource outputs"))).toBe(true);
    expect(isAbandonedProgramCall(rpcError(14, "14 UNAVAILABLE: resource monitor shut down while sending resource outputs", "resource monitor shut down while sending resource outputs"))).toBe(true);
    expect(isAbandonedProgramCall(rpcError(1, "failed to register new resource conf-x [kubernetes:core/v1:Namespace]: Resource monitor is terminating", "Cancelled on client"))).toBe(true);
  });

  it("is nothing else: another status, another failure, or no gRPC call at all", () => {
    expect(isAbandonedProgramCall(rpcError(2, "Resource monitor is terminating", ""))).toBe(false);
    expect(isAbandonedProgramCall(rpcError(14, "14 UNAVAILABLE: No connection established", "No connection established"))).toBe(false);
    expect(isAbandonedProgramCall(new Error("Resource monitor is terminating"))).toBe(false);
    expect(isAbandonedProgramCall({ code: 14, details: "resource monitor shut down", message: "Resource monitor is terminating" })).toBe(false);
    expect(isAbandonedProgramCall(undefined)).toBe(false);
  });
});
