import * as pulumi from "@pulumi/pulumi";
import { describe, expect, it } from "vitest";
import { RecordingMocks, UNKNOWN_PLACEHOLDER, displayInputs, displayOutputs, evaluateOffline, secretDigests } from "../../automation/engine/offline.ts";
import { SECRET_MASK } from "../../automation/engine/engine.ts";

class Thing extends pulumi.CustomResource {
  declare readonly computed: pulumi.Output<string>;
  constructor(name: string, args: Record<string, pulumi.Input<unknown>>) {
    super("test:index:Thing", name, { ...args, computed: undefined });
  }
}

describe("offline engine", () => {
  it("records what a program registers, with inputs as the engine receives them", async () => {
    const { registrations } = await evaluateOffline(async () => {
      const first = new Thing("first", { size: 3 });
      new Thing("second", { peer: first.id, password: pulumi.secret("hunter2") });
      return {};
    });
    expect(registrations.map((r) => r.name)).toEqual(["first", "second"]);
    expect(displayInputs(registrations[1]!.inputs)).toEqual({ peer: "first-id", password: SECRET_MASK });
  });

  it("leaves provider-computed values unknown in a preview, and says so when printing", async () => {
    const { registrations, outputs } = await evaluateOffline(async () => {
      const thing = new Thing("thing", {});
      new Thing("dependent", { on: thing.computed });
      return { computed: thing.computed, known: pulumi.output("yes"), secret: pulumi.secret("s") };
    });
    expect(displayInputs(registrations[1]!.inputs)).toEqual({ on: UNKNOWN_PLACEHOLDER });
    expect(await displayOutputs(outputs)).toEqual({ computed: UNKNOWN_PLACEHOLDER, known: "yes", secret: SECRET_MASK });
  });

  it("rejects with an error thrown inside an apply instead of leaving it unhandled", async () => {
    await expect(
      evaluateOffline(async () => {
        const thing = new Thing("thing", {});
        new Thing("broken", {
          value: thing.id.apply((): string => {
            throw new Error("the apply failed");
          }),
        });
        return {};
      }),
    ).rejects.toThrow("the apply failed");
  });

  it("refuses invokes and stack references nobody answered", async () => {
    await expect(evaluateOffline(async (): Promise<unknown> => pulumi.runtime.invoke("test:index:lookup", {}))).rejects.toThrow(
      'offline engine: no answer for the invoke "test:index:lookup"',
    );
    await expect(evaluateOffline(async () => new pulumi.StackReference("elsewhere").outputs)).rejects.toThrow(
      'offline engine: stack "elsewhere" cannot be read offline',
    );
  });

  it("can evaluate again after a failure", async () => {
    const mocks = new RecordingMocks();
    await evaluateOffline(async () => ({ thing: new Thing("again", {}) }), { mocks });
    expect(mocks.registrations.map((r) => r.name)).toEqual(["again"]);
  });

  it("gives a resource the id its provider would, where one is computed, and the mocks' own otherwise", async () => {
    const mocks = new RecordingMocks(undefined, undefined, (resource) => (resource.name === "known" ? "0123abcd" : undefined));
    const { outputs } = await evaluateOffline(async () => ({ known: new Thing("known", {}).id, other: new Thing("other", {}).id }), { mocks, preview: false });
    expect(await displayOutputs(outputs)).toEqual({ known: "0123abcd", other: "other-id" });
  });

  it("digests each secret input by its path, so that a changed secret tells from an unchanged one once masked", async () => {
    const digestsOf = async (password: string) => {
      const { registrations } = await evaluateOffline(async () => ({ thing: new Thing("thing", { plain: "p", nested: { password: pulumi.secret(password) } }) }));
      return secretDigests(registrations[0]!.inputs, (text) => `digest of ${text}`);
    };
    // The SDK sends an object holding a secret as one secret: its path is the object's.
    expect(await digestsOf("hunter2")).toEqual({ nested: 'digest of {"password":"hunter2"}' });
    expect(await digestsOf("hunter3")).not.toEqual(await digestsOf("hunter2"));
  });
});
