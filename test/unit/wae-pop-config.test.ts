import fc from "fast-check";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readStackConfig } from "../../automation/engine/stack-config.ts";
import { type PopSpec, parsePopSpec } from "../../domain/contracts/cdn-pop.ts";
import { ExhaustedError } from "../../domain/errors.ts";
import { type Layout, ROLES } from "../../domain/wae/index.ts";
import { ipv4ToInt } from "../../domain/wae/network.ts";
import { nextPopConfig } from "../../domain/wae/pop-config.ts";
import { domainErrorMessage } from "../support/validation.ts";

const stacks = join(import.meta.dirname, "..", "..", "stacks");
const vienna: PopSpec = parsePopSpec(JSON.parse(readStackConfig(join(stacks, "Pulumi.pop-vienna.yaml")).config["switch-vaas:pop"]!), "pop");
const HOSTS = vienna.hosts.map((host) => host.name);
const isFixed = (key: string) => /\/(lb|mid|dns|im)$/.test(key);

const layouts = fc.record(Object.fromEntries(HOSTS.map((host) => [host, fc.subarray([...ROLES])])));

describe("nextPopConfig", () => {
  it("keeps hosts, services, instance managers and running edges where they are, and gives new edges free addresses", () => {
    const layout: Layout = { host1: ["small", "large"], host2: ["small", "vod", "live"], host3: ["small"] };
    const { pop, allocated, released } = nextPopConfig(vienna, layout);
    expect(pop.layout).toEqual(layout);
    expect(pop.hosts).toEqual(vienna.hosts);
    for (const [key, address] of Object.entries(vienna.addresses)) {
      const kept = isFixed(key) || (layout[key.split("/")[0]!] ?? []).some((role) => key.endsWith(`/${role}`));
      expect(pop.addresses[key], key).toBe(kept ? address : undefined);
    }
    expect(Object.keys(allocated).sort()).toEqual(Object.keys(pop.addresses).filter((key) => !(key in vienna.addresses)).sort());
    expect(Object.keys(released).sort()).toEqual(Object.keys(vienna.addresses).filter((key) => !(key in pop.addresses)).sort());
  });

  it("gives any sequence of layouts a valid PoP config with no address twice and the fixed addresses unmoved", () => {
    fc.assert(
      fc.property(fc.array(layouts, { minLength: 1, maxLength: 6 }), (sequence) => {
        let running = vienna;
        for (const layout of sequence) {
          const before = running;
          running = nextPopConfig(running, layout).pop;
          // The stack's own schema accepts it: every edge addressed, nothing shared, all in its subnet.
          expect(parsePopSpec(running, "pop")).toEqual(running);
          const values = Object.values(running.addresses).map(ipv4ToInt);
          expect(new Set(values).size).toBe(values.length);
          for (const [key, address] of Object.entries(before.addresses)) {
            if (isFixed(key) || key in running.addresses) {
              expect(running.addresses[key], key).toBe(address);
            }
          }
        }
      }),
      { numRuns: 100 },
    );
  });

  it("says when a subnet has no address left for a new edge", () => {
    const tiny: PopSpec = {
      ...vienna,
      hosts: vienna.hosts.slice(0, 1).map((host) => ({ ...host, subnet: "192.0.2.8/29", gateway: "192.0.2.9" })),
      layout: { host1: ["small"] },
      addresses: { "host1/lb": "192.0.2.10", "host1/mid": "192.0.2.11", "host1/dns": "192.0.2.12", "host1/im": "192.0.2.13", "host1/small": "192.0.2.14" },
    };
    expect(domainErrorMessage(ExhaustedError, () => nextPopConfig(tiny, { host1: ["small", "large", "vod"] }))).toBe(
      // Five host addresses, four of them the services and the instance manager: one left for edges, taken by small.
      "192.0.2.8/29 has no free address for host1/large: all 1 usable addresses are taken; widen the subnet or exclude fewer addresses",
    );
  });
});
