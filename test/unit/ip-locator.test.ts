import { beforeAll, describe, expect, it } from "vitest";
import { greatCircleKm } from "../../domain/decision/index.ts";
import { type IpLocator, MmdbIpLocator, interpretRecord } from "../../automation/geolocation/ip-locator.ts";

const LJUBLJANA = { lat: 46.0569, lon: 14.5058 };
let locator: IpLocator;

beforeAll(async () => {
  locator = await MmdbIpLocator.open();
});

describe("IP geolocation against the shipped DB-IP Lite database", () => {
  it.each([
    ["193.2.1.66", "an address of ARNES, the network of Slovenia's universities, in Ljubljana"],
    ["::ffff:193.2.1.66", "the same address, IPv4-mapped"],
    ["2001:1470:8000::66", "an ARNES IPv6 address"],
  ])("places %s (%s) in Slovenia, within 50 km of Ljubljana", (ip) => {
    const answer = locator.locate(ip);
    expect(answer.status).toBe("located");
    expect(answer.location?.country).toBe("SI");
    expect(greatCircleKm(answer.location!, LJUBLJANA)).toBeLessThan(50);
  });

  it("places a University of Edinburgh address in Edinburgh", () => {
    const answer = locator.locate("129.215.0.1");
    expect(answer.location).toMatchObject({ city: "Edinburgh", country: "GB" });
  });

  it.each([
    ["10.0.0.1", "private", "is a private address, which says nothing about where the participant is"],
    ["192.168.1.20", "private", "is a private address, which says nothing about where the participant is"],
    ["100.64.0.1", "private", "is a carrierGradeNat address, which says nothing about where the participant is"],
    ["::1", "private", "is a loopback address, which says nothing about where the participant is"],
    ["fe80::1", "private", "is a linkLocal address, which says nothing about where the participant is"],
    ["192.0.2.1", "reserved", "is in the reserved range, not a public address"],
    ["224.0.0.1", "reserved", "is in the multicast range, not a public address"],
    ["0.0.0.0", "reserved", "is in the unspecified range, not a public address"],
    ["not-an-ip", "invalid", "is not an IP address"],
  ])("reports %s as %s, without a location", (ip, status, reason) => {
    expect(locator.locate(ip)).toEqual({ ip, status, reason });
  });
});

describe("reading database records", () => {
  it("reads DB-IP's flat records", () => {
    expect(interpretRecord("x", { city: "Ljubljana", country_code: "SI", latitude: 46.05, longitude: 14.46 })).toEqual({
      ip: "x",
      status: "located",
      location: { lat: 46.05, lon: 14.46, city: "Ljubljana", country: "SI" },
    });
  });

  it("reads MaxMind's records with their accuracy", () => {
    expect(
      interpretRecord("x", { city: { names: { en: "Edinburgh" } }, country: { iso_code: "GB" }, location: { latitude: 55.95, longitude: -3.2, accuracy_radius: 5 } }),
    ).toEqual({ ip: "x", status: "located", location: { lat: 55.95, lon: -3.2, city: "Edinburgh", country: "GB", accuracyKm: 5 } });
  });

  it("calls an answer accurate to 500 km or worse low-confidence, keeping what it says", () => {
    expect(interpretRecord("8.8.8.8", { country: { iso_code: "US" }, location: { latitude: 37.751, longitude: -97.822, accuracy_radius: 1000 } })).toEqual({
      ip: "8.8.8.8",
      status: "low-confidence",
      location: { lat: 37.751, lon: -97.822, country: "US", accuracyKm: 1000 },
      reason: "is only known to within 1000 km",
    });
  });

  it("calls a country-only answer low-confidence", () => {
    expect(interpretRecord("x", { city: "", country_code: "JP", latitude: 35.69, longitude: 139.69 })).toMatchObject({
      status: "low-confidence",
      reason: "is only known by country; the point is its centroid",
    });
  });

  it("reports an address the database does not have", () => {
    expect(interpretRecord("x", null)).toEqual({ ip: "x", status: "unknown", reason: "is not in the geolocation database" });
  });
});
