import { arcKm, writeUnitVector } from "./geometry.ts";
import type { MeasuredRtt } from "./schema.ts";

/**
 * Predicted round-trip time between a participant and a cluster:
 * k × great-circle km / 100 + overheadMs, unless a measured figure covers the participant.
 *
 * Light in fibre covers about 100 km per ms of round trip, and Internet paths are on median about
 * twice the great-circle distance (Bozkurt et al. 2018: ×2.1; our fit on public WonderNetwork
 * data: median ×2.01), hence k = 2 (../shared/reference/placement.md §2). The overhead stands for
 * the participant's access network; it is the same for every cluster, so it changes the predicted
 * figures but not which cluster wins, except against measured figures, which include it.
 */
export interface LatencyModel {
  /** Path inflation over the great-circle distance. Defaults to DEFAULT_INFLATION. */
  k: number;
  /** Fixed round-trip overhead, ms. Defaults to DEFAULT_OVERHEAD_MS. */
  overheadMs: number;
}

export const DEFAULT_INFLATION = 2.0;
/** A typical broadband or mobile access round trip. */
export const DEFAULT_OVERHEAD_MS = 5;
export const DEFAULT_LATENCY_MODEL: LatencyModel = { k: DEFAULT_INFLATION, overheadMs: DEFAULT_OVERHEAD_MS };

/** A cluster's measured figures, prepared for fast lookup. */
export interface PreparedMeasurements {
  byCountry: Map<string, number>;
  /** Areas ordered smallest first, as unit vectors with their radius. */
  areas: { center: Float64Array; radiusKm: number; rttMs: number }[];
}

export function prepareMeasurements(measured: readonly MeasuredRtt[]): PreparedMeasurements {
  const byCountry = new Map<string, number>();
  const areas: PreparedMeasurements["areas"] = [];
  for (const entry of measured) {
    if ("country" in entry) {
      byCountry.set(entry.country.toUpperCase(), entry.rttMs);
    } else {
      const center = new Float64Array(3);
      writeUnitVector(entry.area.lat, entry.area.lon, center, 0);
      areas.push({ center, radiusKm: entry.area.radiusKm, rttMs: entry.rttMs });
    }
  }
  areas.sort((a, b) => a.radiusKm - b.radiusKm);
  return { byCountry, areas };
}

/** The measured RTT for the participant at `points[offset]` (country `country`), if any covers it. */
export function measuredRtt(measurements: PreparedMeasurements, points: Float64Array, offset: number, country: string | undefined): number | undefined {
  for (const area of measurements.areas) {
    if (arcKm(points, offset, area.center, 0) <= area.radiusKm) {
      return area.rttMs;
    }
  }
  return country === undefined ? undefined : measurements.byCountry.get(country);
}

/** The model's RTT for a great-circle distance. */
export function modelRttMs(model: LatencyModel, km: number): number {
  return (model.k * km) / 100 + model.overheadMs;
}
