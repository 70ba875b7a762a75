import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AddressPool, type Layout, ROLES, assignAddresses, combineReports, parseReport, serviceDiscovery } from "../../domain/wae/index.ts";
import { ExhaustedError, InvalidArgumentsError } from "../../domain/errors.ts";

const POOL: AddressPool = { subnet: "192.0.2.0/28", gateway: "192.0.2.1", excluded: ["192.0.2.2", "192.0.2.12/30"] };
// 192.0.2.0/28: hosts .1-.14; minus gateway .1, .2 and .12-.15: .3 to .11 are usable (9 addresses).
const USABLE = Array.from({ length: 9 }, (_, i) => `192.0.2.${i + 3}`);

describe("network integration", () => {
  it("gives new edges the lowest free addresses, in host then role order", () => {
    const result = assignAddresses(POOL, { b: ["vod"], a: ["small", "large"] });
    expect(result).toEqual({
      addresses: { "a/small": "192.0.2.3", "a/large": "192.0.2.4", "b/vod": "192.0.2.5" },
      allocated: { "a/small": "192.0.2.3", "a/large": "192.0.2.4", "b/vod": "192.0.2.5" },
      released: {},
    });
  });

  it("keeps running edges' addresses, releases dropped ones and reuses them", () => {
    const first = assignAddresses(POOL, { a: ["small", "large"], b: ["vod"] });
    const second = assignAddresses(POOL, { a: ["large"], b: ["vod", "live"] }, first.addresses);
    expect(second.addresses).toEqual({ "a/large": "192.0.2.4", "b/vod": "192.0.2.5", "b/live": "192.0.2.3" });
    expect(second.released).toEqual({ "a/small": "192.0.2.3" });
    expect(second.allocated).toEqual({ "b/live": "192.0.2.3" });
  });

  it("fails clearly when the pool is exhausted", () => {
    const layout = Object.fromEntries(["a", "b", "c"].map((host) => [host, [...ROLES]]));
    expect(() => assignAddresses(POOL, layout)).toThrow(
      new ExhaustedError("192.0.2.0/28 has no free address for c/large: all 9 usable addresses are taken; widen the subnet or exclude fewer addresses"),
    );
  });

  it.each([
    ["a subnet that is no CIDR", { ...POOL, subnet: "192.0.2.0" }, 'subnet "192.0.2.0" is not a CIDR range; give e.g. "192.0.2.0/24"'],
    ["an IPv6 subnet", { ...POOL, subnet: "2001:db8::/64" }, 'subnet "2001:db8::/64" is IPv6; the PoP network is IPv4'],
    ["a gateway outside the subnet", { ...POOL, gateway: "198.51.100.1" }, 'gateway "198.51.100.1" is not an address of 192.0.2.0/28; give the router\'s address in the subnet'],
    ["an exclusion outside the subnet", { ...POOL, excluded: ["10.0.0.1"] }, 'excluded[0] "10.0.0.1" is not an address or range of 192.0.2.0/28'],
  ])("rejects %s", (_case, pool, message) => {
    expect(() => assignAddresses(pool, {})).toThrow(new InvalidArgumentsError([message]));
  });

  it("rejects previous addresses it could not have handed out", () => {
    expect(() => assignAddresses(POOL, {}, { "a/small": "192.0.2.1" })).toThrow('previous.a/small "192.0.2.1" is not a usable address of 192.0.2.0/28');
    expect(() => assignAddresses(POOL, {}, { "a/small": "192.0.2.3", "b/vod": "192.0.2.3" })).toThrow("previous.b/vod 192.0.2.3 is also the address of a/small");
  });

  const layouts = fc.array(
    fc.record({ a: fc.subarray([...ROLES]), b: fc.subarray([...ROLES]) }).map((layout): Layout => layout),
    { minLength: 1, maxLength: 12 },
  );

  it("over any sequence of layouts: never hands out an address twice, only usable ones, and keeps running edges' addresses", () => {
    fc.assert(
      fc.property(layouts, (sequence) => {
        let previous: Record<string, string> = {};
        for (const layout of sequence) {
          const { addresses, released } = assignAddresses(POOL, layout, previous);
          const values = Object.values(addresses);
          expect(new Set(values).size).toBe(values.length);
          expect(values.every((address) => USABLE.includes(address))).toBe(true);
          for (const [key, address] of Object.entries(previous)) {
            if (key in addresses) {
              expect(addresses[key as keyof typeof addresses]).toBe(address);
            } else {
              expect(released[key as keyof typeof released]).toBe(address);
            }
          }
          previous = addresses;
        }
      }),
    );
  });
});

describe("service discovery", () => {
  it("lists every role per host, running or not, and each role's endpoints", () => {
    const layout: Layout = { b: ["small"], a: ["small", "live"] };
    const { addresses } = assignAddresses(POOL, layout);
    expect(serviceDiscovery(layout, addresses)).toEqual({
      assignments: {
        a: [
          { role: "small", running: true, address: "192.0.2.3" },
          { role: "large", running: false },
          { role: "vod", running: false },
          { role: "live", running: true, address: "192.0.2.4" },
        ],
        b: [
          { role: "small", running: true, address: "192.0.2.5" },
          { role: "large", running: false },
          { role: "vod", running: false },
          { role: "live", running: false },
        ],
      },
      endpoints: { small: ["192.0.2.3", "192.0.2.5"], large: [], vod: [], live: ["192.0.2.4"] },
    });
  });
});

describe("instance manager reports", () => {
  const report = {
    pop: "vienna",
    host: "host1",
    periodStart: "2026-11-23T10:00:00Z",
    periodEnd: "2026-11-23T10:10:00Z",
    cpu: { capacityCores: 8, usedCores: 2.5 },
    network: { linkMbps: 1000, txMbps: 480 },
    requests: { small: 500, large: 150, vod: 50, live: 0 },
  };

  it.each([
    ["a period that ends before it starts", { ...report, periodEnd: "2026-11-23T09:00:00Z" }, "report.periodEnd is not after periodStart; a period ends after it starts"],
    ["a time that is not ISO 8601", { ...report, periodStart: "yesterday" }, 'report.periodStart "yesterday" is not an ISO 8601 time; give e.g. "2026-11-23T10:00:00Z"'],
    ["more cores in use than the host has", { ...report, cpu: { capacityCores: 8, usedCores: 12 } }, "report.cpu.usedCores 12 is more than the 8 cores the host has"],
    ["a negative request count", { ...report, requests: { ...report.requests, live: -1 } }, "report.requests.live -1 is negative; give the number of requests, 0 or more"],
    ["an unknown role", { ...report, requests: { ...report.requests, cache: 1 } }, 'report.requests has an unknown key "cache"; remove it or correct its spelling'],
    ["a link of zero capacity", { ...report, network: { linkMbps: 0, txMbps: 0 } }, "report.network.linkMbps is 0; give the link capacity in Mbit/s"],
    ["a link in kbit/s", { ...report, network: { linkMbps: 1_000_000, txMbps: 0 } }, "report.network.linkMbps 1000000 is more than 800000; give the link capacity in Mbit/s (not kbit/s)"],
    ["a time as a number", { ...report, periodStart: 1_795_000_000 }, 'report.periodStart must be a string; give an ISO 8601 time, e.g. "2026-11-23T10:00:00Z"'],
    ["a missing time", { ...report, periodEnd: undefined }, 'report.periodEnd is required; give an ISO 8601 time, e.g. "2026-11-23T10:00:00Z"'],
    ["a request count as text", { ...report, requests: { ...report.requests, small: "500" } }, "report.requests.small must be a number; give the number of requests (0 if none)"],
  ])("rejects %s", (_case, value, message) => {
    expect(() => parseReport(value)).toThrow(new InvalidArgumentsError([message]));
  });

  it("combines a period's reports: usage averaged per host by duration, requests summed", () => {
    const second = { ...report, periodStart: "2026-11-23T10:10:00Z", periodEnd: "2026-11-23T10:30:00Z", cpu: { capacityCores: 8, usedCores: 4 }, network: { linkMbps: 1000, txMbps: 600 } };
    const other = { ...report, host: "host0", requests: { small: 1, large: 2, vod: 3, live: 4 } };
    const { hosts, requests } = combineReports([report, second, other].map((value) => parseReport(value)));
    expect(hosts.map((host) => host.name)).toEqual(["host0", "host1"]);
    expect(hosts[1]).toEqual({ name: "host1", cpu: { capacityCores: 8, usedCores: (2.5 * 10 + 4 * 20) / 30 }, network: { linkMbps: 1000, txMbps: (480 * 10 + 600 * 20) / 30 } });
    expect(requests).toEqual({ small: 1001, large: 302, vod: 103, live: 4 });
  });
});

